import Configuration
import Reconcile
import Foundation
import Packet
import Testing

/// The repository root, found from this file, so tests read the shipped examples.
let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func parse(_ text: String) throws(ConfigError) -> Config {
    try ConfigLoader.parse(text, source: "test.toml")
}

/// The diagnostics of a config that must be refused.
func problems(_ text: String) -> [ConfigDiagnostic] {
    do {
        _ = try parse(text)
        Issue.record("the config was accepted")
        return []
    } catch {
        return error.diagnostics
    }
}

let base = """
    [gateway]
    uplink4 = "eth0"
    inside6 = "eth1"
    clients = ["2001:db8:1::/64"]

    [dns64]
    upstreams = ["2001:db8:53::53"]

    """

@Suite struct ConfigExamplesTests {
    @Test func fullExampleIsValidAndMeansWhatItSays() throws {
        let c = try ConfigLoader.load(path: repoRoot.appendingPathComponent("examples/full.toml").path)
        #expect(c.prefix.description == "2001:db8:64::/96")
        #expect(c.gateway.clients.map(\.description) == ["2001:db8:1::/64", "2001:db8:3::/64"])
        #expect(c.nat64.pool4?.description == "192.0.2.128/25")
        #expect(c.nat64.eam.count == 3)
        #expect(c.nat64.eam[1].ipv6.description == "2001:db8:2::20/124")
        #expect(c.nat64.poolIdleTimeout == .seconds(7200))
        #expect(c.dns64.upstreams.map(\.description) == ["[2001:db8:53::53]:53", "[2001:db8:53::54]:53"])
        #expect(c.sixbedfour.routerPrefix?.description == "2001:db8:6b:bed::/64")
        #expect(c.dns64Allow.map(\.description) == ["2001:db8:1::/64", "2001:db8:3::/64", "2001:db8:6b:bed::/64"])
        #expect(c.controller.routeProtocol == 164)
    }

    @Test func minimalExampleGetsTheDefaults() throws {
        let c = try ConfigLoader.load(path: repoRoot.appendingPathComponent("examples/minimal.toml").path)
        #expect(c.prefix.isWellKnown)
        #expect(c.nat64.enabled && c.nat64.datapath == .auto && c.nat64.device == "sg-nat64")
        #expect(c.nat64.udpZeroChecksum == .drop && c.nat64.lowestIPv6MTU == 1280)
        #expect(c.dns64.exclude == [.ipv4Mapped])
        #expect(c.dns64.listen.map(\.description) == ["[::]:53"])
        #expect(!c.sixbedfour.enabled)
        #expect(c.dns64Allow == [.v6(try IPv6Prefix.parse("2001:db8:1::/64"))], "never an open resolver by default")
    }

    /// Every examples/NAME.toml, not only those named above, is a valid config
    /// and has its rendered table in nft/NAME.nft (`make golden` writes it).
    @Test func everyExampleIsValidAndRendered() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: repoRoot.appendingPathComponent("examples").path)
            .filter { $0.hasSuffix(".toml") }.map { String($0.dropLast(5)) }
        #expect(names.contains("full") && names.contains("minimal"), "\(names)")
        for name in names {
            do {
                _ = try ConfigLoader.load(path: repoRoot.appendingPathComponent("examples/\(name).toml").path)
            } catch {
                Issue.record("examples/\(name).toml: \(error.diagnostics)")
            }
            #expect(FileManager.default.fileExists(atPath: repoRoot.appendingPathComponent("nft/\(name).nft").path),
                    "nft/\(name).nft is missing: run `make golden`")
        }
    }

    @Test func everySchemaKeyIsShownInTheFullExample() throws {
        let text = try String(contentsOf: repoRoot.appendingPathComponent("examples/full.toml"), encoding: .utf8)
        for table in Schema.tables {
            if !table.name.isEmpty {
                #expect(text.contains(table.isArray ? "[[\(table.name)]]" : "[\(table.name)]"))
            }
            for key in table.keys {
                #expect(text.contains("\(key.name) = "), "examples/full.toml should show \(table.name).\(key.name)")
            }
        }
    }

    @Test func readmeReferenceIsGeneratedFromTheSchema() throws {
        let readme = try String(contentsOf: repoRoot.appendingPathComponent("README.md"), encoding: .utf8)
        #expect(readme.contains(Schema.markdownReference()), "README.md is out of date: paste `sixgatectl reference` into it")
    }
}

@Suite struct ConfigMistakesTests {
    /// Eight different mistakes in one file: all are reported, each with its line.
    @Test func reportsEveryMistakeAtOnceWithLines() {
        let text = """
            prefix = "2001:db8:64::/80"

            [gateway]
            uplink4 = "eth0"
            inside6 = "eth1"
            clients = [
                "2001:db8:1::/64",
                "2001:db8:1::1/64",
            ]

            [nat64]
            pool4 = "192.0.2.0/24"
            rfc6791_pool = "192.0.2.64/30"
            mtu = "1500"
            pool_idel_timeout = "2h"

            [[nat64.eam]]
            ipv4 = "203.0.113.300/32"
            ipv6 = "2001:db8:2::10/128"

            [dns64]
            upstreams = ["[2001:db8:53::53]:99999"]

            [sixbedfour]
            enabled = true
            address4 = "198.51.100.1"
            prefix = "2001:db8::/40"
            """
        let found = problems(text)
        let got = found.map { "\($0.line ?? 0) \($0.key)" }
        #expect(got == [
            "1 prefix",
            "8 gateway.clients[1]",
            "13 nat64.rfc6791_pool",
            "14 nat64.mtu",
            "15 nat64.pool_idel_timeout",
            "18 nat64.eam[0].ipv4",
            "22 dns64.upstreams[0]",
            "27 sixbedfour.prefix",
        ])
        #expect(found.allSatisfy { $0.file == "test.toml" && !$0.fix.isEmpty })
        #expect(found[0].problem.contains("/80"))
        #expect(found[1].fix.contains("2001:db8:1::/64"), "suggests the masked prefix")
        #expect(found[2].problem.contains("nat64.pool4"))
        #expect(found[4].fix.contains("`pool_idle_timeout`"), "did you mean")
        #expect(found[6].problem.contains("port"))
    }

    @Test func wellKnownPrefixWithNonGlobalMapping() {
        let found = problems(base + """
            [[nat64.eam]]
            ipv4 = "10.0.0.0/24"
            ipv6 = "2001:db8:2::/120"
            [[nat64.eam]]
            ipv4 = "203.0.113.9/32"
            ipv6 = "2001:db8:2::1:9/128"
            """)
        #expect(found.map(\.key) == ["nat64.eam[0].ipv4", "nat64.eam[1].ipv4"])
        #expect(found[0].line == 9 && found[1].line == 12)
        #expect(found[0].problem.contains("RFC 6052"))
        #expect(found[0].fix.contains("network-specific"))
    }

    @Test func nonZeroUOctetAndHostBits() {
        let u = problems("prefix = \"2001:db8:0:0:100::/96\"\n" + base)
        #expect(u.map(\.key) == ["prefix"])
        #expect(u.first?.problem.contains("u-octet") == true)
        #expect(u.first?.fix.contains("2001:db8::/96") == true)
        let h = problems("prefix = \"2001:db8:64::1/96\"\n" + base)
        #expect(h.first?.problem.contains("bits set beyond") == true)
        #expect(h.first?.fix.contains("2001:db8:64::/96") == true)
    }

    @Test func overlapsBetweenPoolsPrefixAndMappings() {
        let found = problems("prefix = \"2001:db8:64::/96\"\n" + base + """
            [nat64]
            pool4 = "192.0.2.0/25"
            address4 = "192.0.2.5"
            [[nat64.eam]]
            ipv4 = "192.0.2.100/32"
            ipv6 = "2001:db8:64::99/128"
            [[nat64.eam]]
            ipv4 = "203.0.113.0/31"
            ipv6 = "2001:db8:2::/127"
            [[nat64.eam]]
            ipv4 = "203.0.113.1/32"
            ipv6 = "2001:db8:2::1/128"
            """)
        let keys = found.map(\.key)
        #expect(keys.contains("nat64.address4"), "own address inside the pool")
        #expect(keys.contains("nat64.eam[0].ipv4"), "mapping inside the pool")
        #expect(keys.contains("nat64.eam[0].ipv6"), "mapping inside the NAT64 prefix")
        #expect(keys.contains("nat64.eam[2].ipv4") && keys.contains("nat64.eam[2].ipv6"), "mappings overlap each other")
        #expect(found.count == 5, "\(found)")
    }

    @Test func clientPrefixInsideNAT64Prefix() {
        let found = problems("prefix = \"2001:db8::/32\"\n" + base)
        #expect(found.map(\.key) == ["gateway.clients[0]"])
    }

    @Test func unknownKeysGetSuggestions() {
        let found = problems(base + """
            [nat64]
            upstreams = ["2001:db8::53"]
            [dns46]
            x = 1
            """)
        #expect(found.count == 2)
        #expect(found[0].key == "nat64.upstreams" && found[0].fix.contains("[dns64]"))
        #expect(found[1].key == "dns46" && found[1].fix.contains("`dns64`"))
    }

    @Test func missingRequiredKeys() {
        let found = problems("[nat64]\n")
        #expect(Set(found.map(\.key)) == ["gateway", "dns64"])
        let g = problems("[gateway]\nuplink4 = \"eth0\"\n[dns64]\nenabled = false\n")
        #expect(Set(g.map(\.key)) == ["gateway.inside6", "gateway.clients"])
    }

    @Test func typesAndRanges() {
        let found = problems(base + """
            [nat64]
            enabled = "yes"
            datapath = "ebpf"
            pool_idle_timeout = "2 hours"
            device = "a/b"
            [controller]
            route_protocol = 255
            state_dir = "var/lib"
            """)
        #expect(found.map(\.key) == ["nat64.enabled", "nat64.datapath", "nat64.pool_idle_timeout", "nat64.device",
                                     "controller.route_protocol", "controller.state_dir"])
        #expect(found[1].fix.contains("\"tun\""))
    }

    @Test func routeProtocolOfOtherSoftwareIsRefused() {
        let found = problems(base + "[controller]\nroute_protocol = 16\n")
        #expect(found.map(\.key) == ["controller.route_protocol"])
        #expect(found.first?.problem.contains("dhcp") == true)
    }

    @Test func syntaxErrorsCarryTheirLine() {
        let found = problems("prefix = \"64:ff9b::/96\"\n[gateway\nuplink4 = 1\n")
        #expect(found.count == 1)
        #expect(found[0].line == 2)
        #expect(found[0].problem.contains("syntax"))
    }

    @Test func unreadableFile() {
        do {
            _ = try ConfigLoader.load(path: "/nonexistent/sixgate.toml")
            Issue.record("loaded a missing file")
        } catch {
            #expect(error.diagnostics.first?.line == nil)
            #expect(error.description.contains("/nonexistent/sixgate.toml"))
        }
    }
}
