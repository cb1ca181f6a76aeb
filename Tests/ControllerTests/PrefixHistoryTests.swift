@testable import Configuration
@testable import Reconcile
@testable import Netlink
import Foundation
import Packet
import Testing

/// Make before break, as the controller sees it: which prefixes a config
/// keeps (routes, rules) while clients may still hold the old one.
@Suite struct PrefixHistoryTests {
    func config(prefix: String, maxTTL: String = "20s", pref64: String = "16s", stateDir: String = "/var/lib/sixgate") throws -> Config {
        var text = try String(contentsOf: repoRoot.appendingPathComponent("examples/full.toml"), encoding: .utf8)
        text = text.replacingOccurrences(of: "prefix = \"2001:db8:64::/96\"", with: "prefix = \"\(prefix)\"")
            .replacingOccurrences(of: "state_dir = \"/var/lib/sixgate\"", with: "state_dir = \"\(stateDir)\"")
            .replacingOccurrences(of: "max_ttl = \"30m\"", with: "max_ttl = \"\(maxTTL)\"")
            .replacingOccurrences(of: "pref64_lifetime = \"30m\"", with: "pref64_lifetime = \"\(pref64)\"")
        return try ConfigLoader.parse(text, source: "test.toml")
    }

    @Test func aChangedPrefixRetiresAfterTheLongestAnswer() throws {
        let a = try config(prefix: "2001:db8:64::/96"), b = try config(prefix: "2001:db8:46::/96")
        let first = PrefixHistory.next(after: nil, config: a, now: 1000)
        #expect(first.current == "2001:db8:64::/96" && first.hold == 20 && first.retiring.isEmpty)
        #expect(PrefixHistory.next(after: first, config: a, now: 1500) == first, "the same config changes nothing")
        let changed = PrefixHistory.next(after: first, config: b, now: 2000)
        #expect(changed.current == "2001:db8:46::/96")
        #expect(changed.retiring == [.init("2001:db8:64::/96", until: 2025)], "max(DNS64 max_ttl 20 s, PREF64 16 s) and 5 s to stop")
        #expect(changed.active(at: 2024).map(\.value.description) == ["2001:db8:64::/96"])
        #expect(changed.active(at: 2025).isEmpty)
        #expect(PrefixHistory.next(after: changed, config: b, now: 2026).retiring.isEmpty, "an expired prefix is forgotten")
        let back = PrefixHistory.next(after: changed, config: a, now: 2005)
        #expect(back.current == "2001:db8:64::/96" && back.retiring == [.init("2001:db8:46::/96", until: 2030)],
                "a prefix that comes back is current, not retiring")
    }

    @Test func aLoweredTTLStillCoversTheAnswersGivenBefore() throws {
        let long = try config(prefix: "2001:db8:64::/96", maxTTL: "1h", pref64: "16s")
        let short = try config(prefix: "2001:db8:64::/96"), other = try config(prefix: "2001:db8:46::/96")
        let lowered = PrefixHistory.next(after: PrefixHistory.next(after: nil, config: long, now: 0), config: short, now: 100)
        #expect(lowered.hold == 20 && lowered.earlierAnswersUntil == 3700)
        #expect(PrefixHistory.next(after: lowered, config: other, now: 200).retiring.map(\.until) == [3700])
        #expect(PrefixHistory.next(after: lowered, config: other, now: 5000).retiring.map(\.until) == [5025])
        let odd = try config(prefix: "2001:db8:64::/96", maxTTL: "10s", pref64: "17s")
        #expect(PrefixHistory.hold(for: odd) == 24, "PREF64 lifetimes go out in units of 8 s, rounded up")
    }

    @Test func withoutDNS64Or6bed4NothingIsOwed() throws {
        var text = try String(contentsOf: repoRoot.appendingPathComponent("examples/full.toml"), encoding: .utf8)
        text = text.replacingOccurrences(of: "[sixbedfour]\nenabled = true", with: "[sixbedfour]\nenabled = false")
            .replacingOccurrences(of: "[dns64]\nenabled = true", with: "[dns64]\nenabled = false")
        let a = try ConfigLoader.parse(text, source: "a.toml")
        let b = try ConfigLoader.parse(text.replacingOccurrences(of: "2001:db8:64::/96", with: "2001:db8:46::/96"), source: "b.toml")
        #expect(PrefixHistory.hold(for: a) == 0)
        #expect(PrefixHistory.next(after: PrefixHistory.next(after: nil, config: a, now: 0), config: b, now: 10).retiring.isEmpty)
    }

    @Test func theRetiringPrefixKeepsItsRouteAndRules() throws {
        let b = try config(prefix: "2001:db8:46::/96")
        let env = Environment(links: [LinkInfo(name: "eth0", index: 2, isUp: true, mtu: 1500, kind: "veth"),
                                      LinkInfo(name: "eth1", index: 3, isUp: true, mtu: 1500, kind: "veth")], addresses: [])
        let old = try NAT64Prefix(IPv6Prefix.parse("2001:db8:64::/96"))
        let plain = try DesiredState(config: b, environment: env)
        let both = try DesiredState(config: b, environment: env, retiring: [old])
        #expect(both.routes.map(\.description).filter { $0.hasSuffix("/96 dev sg-nat64 metric 1024") }
            == ["2001:db8:46::/96 dev sg-nat64 metric 1024", "2001:db8:64::/96 dev sg-nat64 metric 1024"])
        #expect(!plain.table.nftText.contains("2001:db8:64::"))
        let text = both.table.nftText
        for rule in ["iifname != \"sg-nat64\" ip6 saddr 2001:db8:64::/96", "oifname \"sg-nat64\" ip6 daddr 2001:db8:64::/96 ip6 saddr @clients6",
                     "oifname \"sg-nat64\" ip6 daddr 2001:db8:64::/96 counter name \"nat64_refused\""] {
            #expect(text.contains(rule), "\(rule)\n\(text)")
        }
    }

    @Test func aChangedPoolKeepsItsHostsForTheIdleTimeout() throws {
        var text = try String(contentsOf: repoRoot.appendingPathComponent("examples/full.toml"), encoding: .utf8)
        text = text.replacingOccurrences(of: "pool_idle_timeout = \"2h\"", with: "pool_idle_timeout = \"10m\"")
        let a = try ConfigLoader.parse(text, source: "a.toml")
        let b = try ConfigLoader.parse(text.replacingOccurrences(of: "pool4 = \"192.0.2.128/25\"", with: "pool4 = \"198.51.100.128/25\""), source: "b.toml")
        let changed = PrefixHistory.next(after: PrefixHistory.next(after: nil, config: a, now: 0), config: b, now: 100)
        #expect(changed.pool == "198.51.100.128/25" && changed.retiring.isEmpty)
        #expect(changed.activePools(at: 100) == [.init(try IPv4Prefix.parse("192.0.2.128/25"), until: 700)])
        #expect(changed.nextDeadline(after: 100) == 700 && changed.nextDeadline(after: 700) == nil)
        let env = Environment(links: [LinkInfo(name: "eth0", index: 2, isUp: true, mtu: 1500, kind: "veth"),
                                      LinkInfo(name: "eth1", index: 3, isUp: true, mtu: 1500, kind: "veth")], addresses: [])
        let d = try DesiredState(config: b, environment: env, retiringPools: changed.activePools(at: 100).map(\.value))
        #expect(d.routes.map(\.description).contains("192.0.2.128/25 dev sg-nat64 metric 0"))
        let nft = d.table.nftText
        for rule in ["ip daddr 192.0.2.128/25 ct state established,related counter name \"pool4_return\"",
                     "oifname \"eth0\" ip saddr 192.0.2.128/25 counter name \"pool4_masquerade\" masquerade"] {
            #expect(nft.contains(rule), "\(rule)\n\(nft)")
        }
        // An old pool the new config maps to a server (EAM) goes at once.
        let c = try ConfigLoader.parse(text.replacingOccurrences(of: "pool4 = \"192.0.2.128/25\"", with: "pool4 = \"198.51.100.128/25\"")
            .replacingOccurrences(of: "ipv4 = \"203.0.113.10/32\"", with: "ipv4 = \"192.0.2.130/32\""), source: "c.toml")
        #expect(PrefixHistory.next(after: PrefixHistory.next(after: nil, config: a, now: 0), config: c, now: 100).retiringPools.isEmpty)
    }

    @Test func savedAndLoaded() throws {
        let dir = NSTemporaryDirectory() + "sixgate-history-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(PrefixHistory.load(stateDir: dir) == nil)
        let h = PrefixHistory(current: "2001:db8:46::/96", hold: 20, earlierAnswersUntil: 0, retiring: [.init("2001:db8:64::/96", until: 4_000_000_000)],
                              pool: "192.0.2.128/25", poolHold: 7200, retiringPools: [])
        try h.save(stateDir: dir)
        #expect(PrefixHistory.load(stateDir: dir) == h)
        // The daemon runs the history only when it was made for its config.
        #expect(PrefixHistory.running(try config(prefix: "2001:db8:46::/96", stateDir: dir)) == h)
        #expect(PrefixHistory.running(try config(prefix: "2001:db8:47::/96", stateDir: dir)) == nil, "another prefix")
        #expect(PrefixHistory.running(try config(prefix: "2001:db8:46::/96")) == nil, "another state_dir")
    }
}
