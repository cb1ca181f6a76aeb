@testable import Configuration
@testable import Reconcile
import ControlProtocol
import Packet
import SixBedFour
import Testing

/// verify reads the PREF64 option (RFC 8781) out of a router advertisement:
/// checked against advertisements the 6bed4 router itself writes.
@Suite struct VerifyTests {
    func advertisement(pref64: String?) throws -> [UInt8] {
        let prefix = try pref64.map { try NAT64Prefix(IPv6Prefix.parse($0)) }
        let ad = ND.Advertisement(prefix: 0x2001_0db8_6bed_0004, pref64: prefix)
        let p = UnsafeMutableRawPointer.allocate(byteCount: 512, alignment: 8)
        defer { p.deallocate() }
        let n = ND.writeRA(p, ad, for: UDPEndpoint(address: IPv4Address(rawValue: 0xC000_0201), port: 25790))
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }

    @Test(arguments: ["2001:db8:64::/96", "2001:db8:64::/64", "2001:db8:64::/56", "2001:db8:6400::/48", "2001:db8:6400::/40", "2001:db8::/32", "64:ff9b::/96"])
    func pref64IsReadWithItsLength(_ prefix: String) throws {
        #expect(Verifier.pref64(inRA: try advertisement(pref64: prefix)) == prefix)
    }

    @Test func noPref64NoAdvertisementNoAnswer() throws {
        #expect(Verifier.pref64(inRA: try advertisement(pref64: nil)) == nil)
        var truncated = try advertisement(pref64: "2001:db8:64::/96")
        truncated.removeLast(8)
        #expect(Verifier.pref64(inRA: truncated) == nil, "an option running past the end is not read")
        var notRA = try advertisement(pref64: "2001:db8:64::/96")
        notRA[40] = 133
        #expect(Verifier.pref64(inRA: notRA) == nil)
    }
}

/// What `apply` tells a running daemon changes, per part.
@Suite struct ReloadChangesTests {
    static let base = """
        prefix = "2001:db8:64::/96"
        [gateway]
        uplink4 = "eth0"
        inside6 = "eth1"
        clients = ["2001:db8:1::/64"]
        [nat64]
        pool4 = "192.0.2.128/25"
        [dns64]
        upstreams = ["2001:db8:53::53"]

        """

    func changes(_ old: String, _ new: String) throws -> [String: String] {
        try ReloadAnswer.changes(from: ConfigLoader.parse(old, source: "old"), to: ConfigLoader.parse(new, source: "new"))
    }

    @Test func theSameConfigChangesNothing() throws {
        #expect(try changes(Self.base, Self.base) == ["translator": "unchanged", "dns64": "unchanged", "6bed4": "unchanged"])
    }

    @Test func aNewPrefixChangesEveryPartThatRuns() throws {
        let renumbered = Self.base.replacingOccurrences(of: "2001:db8:64::/96", with: "2001:db8:65::/96")
        #expect(try changes(Self.base, renumbered) == ["translator": "changed", "dns64": "changed", "6bed4": "unchanged"])
    }

    @Test func aSectionChangesItsPartOnly() throws {
        #expect(try changes(Self.base, Self.base + "timeout = \"1s\"\n") == ["translator": "unchanged", "dns64": "changed", "6bed4": "unchanged"])
        let pool = Self.base.replacingOccurrences(of: "192.0.2.128/25", with: "192.0.2.0/25")
        #expect(try changes(Self.base, pool) == ["translator": "changed", "dns64": "unchanged", "6bed4": "unchanged"])
        // The clients are DNS64's default access list.
        let clients = Self.base.replacingOccurrences(of: "clients = [\"2001:db8:1::/64\"]", with: "clients = [\"2001:db8:1::/64\", \"2001:db8:3::/64\"]")
        #expect(try changes(Self.base, clients)["dns64"] == "changed")
    }

    @Test func partsStartAndStop() throws {
        let with6bed4 = Self.base.replacingOccurrences(of: "[dns64]\n", with: "[sixbedfour]\nenabled = true\naddress4 = \"198.51.100.1\"\nprefix = \"2001:db8:6b::/48\"\n[dns64]\n")
        #expect(try changes(Self.base, with6bed4)["6bed4"] == "started")
        #expect(try changes(with6bed4, Self.base)["6bed4"] == "stopped")
        #expect(try changes(Self.base, with6bed4)["dns64"] == "changed", "the 6bed4 prefix joins DNS64's default access list")
    }
}

/// During a renumbering the RA carries the new PREF64 and the old one with
/// lifetime 0 (RFC 8781 §4); verify reads both, and our peer takes only the new.
@Suite struct WithdrawnPref64Tests {
    @Test func theOldPrefixIsWithdrawnWithLifetimeZero() throws {
        let new = try NAT64Prefix(IPv6Prefix.parse("2001:db8:46::/96")), old = try NAT64Prefix(IPv6Prefix.parse("2001:db8:64::/96"))
        let ad = ND.Advertisement(prefix: 0x2001_0db8_6bed_0004, pref64: new, pref64Lifetime: 1800, retiredPref64: [old])
        let p = UnsafeMutableRawPointer.allocate(byteCount: 512, alignment: 8)
        defer { p.deallocate() }
        let n = ND.writeRA(p, ad, for: UDPEndpoint(address: IPv4Address(rawValue: 0xC000_0201), port: 25790))
        #expect(n == ad.length)
        #expect(Verifier.pref64(inRA: Array(UnsafeRawBufferPointer(start: p, count: n))) == "2001:db8:46::/96, 2001:db8:64::/96 (lifetime 0)")
        let learned = try #require(ND.readRA(p, length: n))
        #expect(learned.pref64 == new && learned.pref64Lifetime == 1800, "the withdrawn one is not taken")
        #expect(learned.routes == [new.prefix, old.prefix], "flows on the old prefix still route to the router")
    }
}
