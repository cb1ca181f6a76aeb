@testable import Configuration
@testable import Reconcile
@testable import Netlink
import Packet
import Testing

/// The desired state is a pure function: these tests need no kernel and no root.
@Suite struct DesiredStateTests {
    let env = Environment(links: [LinkInfo(name: "eth0", index: 2, isUp: true, mtu: 1500, kind: "veth"),
                                  LinkInfo(name: "eth1", index: 3, isUp: true, mtu: 1500, kind: "veth")],
                          addresses: [])

    func full() throws -> Config { try ConfigLoader.load(path: repoRoot.appendingPathComponent("examples/full.toml").path) }

    @Test func fullExampleDerivesLinksRoutesAndSysctls() throws {
        let d = try DesiredState(config: full(), environment: env)
        #expect(d.links.map(\.name) == ["sg-nat64", "sg-6bed4"])
        #expect(d.links[0].multiQueue && d.links[0].mtu == 1500 && d.links[1].mtu == 1280)
        #expect(d.routes.map(\.description) == [
            "2001:db8:64::/96 dev sg-nat64 metric 1024", "192.0.2.128/25 dev sg-nat64 metric 0",
            "198.51.100.20/32 dev sg-nat64 metric 0", "203.0.113.10/32 dev sg-nat64 metric 0", "203.0.113.32/28 dev sg-nat64 metric 0",
            "2001:db8:6b:bed::/64 dev sg-6bed4 metric 1024",
        ])
        #expect(d.sysctls.map(\.key) == ["net.ipv6.conf.all.forwarding", "net.ipv4.conf.eth0.forwarding", "net.ipv4.conf.sg-nat64.forwarding"])
        #expect(d.routeProtocol == 164)
        #expect(d.addresses.map(\.description) == ["2001:db8:6b:bed::/128 dev sg-6bed4", "fe80::/128 dev sg-6bed4"])
    }

    /// A [[mux]] address mapped alone is taken as its IPv6 side; when the
    /// kernel routes every entry (tcp there), nothing of the relaying
    /// process is installed: no mark rule, no table of its own, no mux chain.
    @Test func aMuxOnlyInTheKernelInstallsNoRelay() throws {
        let base = CheckMessagesTests.base + """
            [[nat64.eam]]
            ipv4 = "203.0.113.20"
            ipv6 = "2001:db8:ff::20"
            [[mux]]
            listen = "203.0.113.20:5222"
            kind = "tcp"
            default = "[2001:db8:2::30]:5222"

            """
        let kernelOnly = try ConfigLoader.parse(base, source: "t.toml")
        let d = try DesiredState(config: kernelOnly, environment: env)
        #expect(!kernelOnly.muxRelays && d.rules.isEmpty, "\(d.rules)")
        #expect(d.localRoutes.map(\.destination.description) == ["2001:db8:ff::20/128"])
        #expect(d.table.chain("mux") == nil && d.table.chain("mux_dnat")?.rules.count == 1)
        let relayed = try ConfigLoader.parse(base + "[[mux]]\nlisten = \"203.0.113.20:443\"\nkind = \"tls-sni\"\n[[mux.route]]\nname = \"a.example\"\nbackend = \"[2001:db8:2::1]:443\"\n",
                                             source: "t.toml")
        let r = try DesiredState(config: relayed, environment: env)
        #expect(relayed.muxRelays && r.rules.count == 1 && r.table.chain("mux") != nil)
        #expect(r.localRoutes.map(\.destination.description) == ["2001:db8:ff::20/128", "::/0"], "one local route for both entries, and the mark's table")
    }

    @Test func everyRuleHasACounterAndAComment() throws {
        let t = DesiredTable.table(for: try full())
        let rules = t.chains.flatMap(\.rules)
        #expect(rules.count > 10)
        for r in rules {
            #expect(r.comment?.isEmpty == false)
            #expect(r.exprs.contains { if case .objref = $0 { true } else { false } }, "\(r.displayText)")
        }
        // Every counter a rule names exists, and every counter is used.
        let named = Set(rules.flatMap(\.exprs).compactMap { if case .objref(_, let n) = $0 { n } else { nil } })
        #expect(named == Set(t.counters.map(\.name)))
        let sets = Set(rules.flatMap(\.exprs).compactMap { if case .lookup(let s, _) = $0 { s } else { nil } })
        #expect(sets == Set(t.sets.map(\.name)))
    }

    @Test func withoutPoolThereIsNoMasquerade() throws {
        let c = try ConfigLoader.parse("""
            [gateway]
            uplink4 = "eth0"
            inside6 = "eth1"
            clients = ["2001:db8:1::/64"]
            [dns64]
            enabled = false
            """, source: "t.toml")
        let t = DesiredTable.table(for: c)
        #expect(t.chain("postrouting") == nil)
        #expect(t.chain("input") == nil, "no DNS64, no 6bed4: no service rules")
        #expect(!t.nftText.contains("masquerade"))
        let d = try DesiredState(config: c, environment: env)
        #expect(d.routes.map(\.description) == ["64:ff9b::/96 dev sg-nat64 metric 1024"])
    }

    @Test func adjacentMappingsShareARoute() throws {
        var text = "prefix = \"2001:db8:64::/96\"\n[gateway]\nuplink4 = \"eth0\"\ninside6 = \"eth1\"\nclients = [\"2001:db8:1::/64\"]\n[dns64]\nenabled = false\n"
        for i in 0..<16 { text += "[[nat64.eam]]\nipv4 = \"203.0.113.\(i)/32\"\nipv6 = \"2001:db8:2::\(i)/128\"\n" }
        let d = try DesiredState(config: ConfigLoader.parse(text, source: "t.toml"), environment: env)
        #expect(d.routes.map(\.destination.description).contains("203.0.113.0/28"))
        #expect(d.table.sets.first { $0.name == "eam4" }?.elements.map(\.description) == ["203.0.113.0/28"])
    }

    @Test func refusesMissingAndForeignInterfaces() throws {
        let c = try full()
        #expect(throws: DesiredStateError.missingInterface(key: "gateway.uplink4", name: "eth0")) {
            try DesiredState(config: c, environment: Environment(links: [env.links[1]], addresses: []))
        }
        let taken = Environment(links: env.links + [LinkInfo(name: "sg-nat64", index: 9, isUp: true, mtu: 1500, kind: "veth")], addresses: [])
        #expect(throws: DesiredStateError.foreignLink(key: "nat64.device", name: "sg-nat64", kind: "veth")) {
            try DesiredState(config: c, environment: taken)
        }
    }

    @Test func intervalMathRoundTrips() {
        let input: [IPPrefix] = ["192.0.2.0/25", "192.0.2.128/25", "198.51.100.7/32", "2001:db8::/33", "2001:db8:8000::/33", "::/0"]
            .map { try! IPPrefix.parse($0) }
        #expect(IntervalMath.normalize(input).map(\.description) == ["192.0.2.0/24", "198.51.100.7/32", "::/0"])
        let odd = IntervalMath.cover(from: 1, to: 6, bits: 32).map(\.description)
        #expect(odd == ["0.0.0.1/32", "0.0.0.2/31", "0.0.0.4/31", "0.0.0.6/32"])
    }
}
