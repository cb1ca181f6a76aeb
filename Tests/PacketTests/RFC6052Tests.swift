import Packet
import Testing

@Suite struct RFC6052Tests {
    /// RFC 6052 §2.4, every row of the table, plus the well-known prefix example.
    static let vectors: [(String, String, String)] = [
        ("2001:db8::/32", "192.0.2.33", "2001:db8:c000:221::"),
        ("2001:db8:100::/40", "192.0.2.33", "2001:db8:1c0:2:21::"),
        ("2001:db8:122::/48", "192.0.2.33", "2001:db8:122:c000:2:2100::"),
        ("2001:db8:122:300::/56", "192.0.2.33", "2001:db8:122:3c0:0:221::"),
        ("2001:db8:122:344::/64", "192.0.2.33", "2001:db8:122:344:c0:2:2100:0"),
        ("2001:db8:122:344::/96", "192.0.2.33", "2001:db8:122:344::192.0.2.33"),
        ("64:ff9b::/96", "192.0.2.33", "64:ff9b::192.0.2.33"),
    ]

    @Test(arguments: vectors)
    func tableRow(prefix: String, v4: String, v6: String) throws {
        let p = try NAT64Prefix(IPv6Prefix.parse(prefix))
        let a4 = try #require(IPv4Address(v4)), a6 = try #require(IPv6Address(v6))
        #expect(p.embed(a4) == a6)
        #expect(p.extract(a6) == a4)
    }

    @Test func allLengthsAreCovered() {
        #expect(Set(Self.vectors.map { Int($0.0.split(separator: "/")[1])! }) == NAT64Prefix.allowedLengths)
    }

    @Test(arguments: [32, 40, 48, 56, 64, 96])
    func roundTripsRandomAddresses(length: Int) throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<10_000 {
            let high: UInt64 = rng.next()
            var low: UInt64 = rng.next()
            low &= 0x00FF_FFFF_FFFF_FFFF  // a /96 must leave the u-octet zero
            let p = try NAT64Prefix(IPv6Prefix(address: IPv6Address(high: high, low: low), length: length))
            let v4 = IPv4Address(rawValue: rng.next())
            let v6 = p.embed(v4)
            #expect(p.prefix.contains(v6))
            #expect(v6.bytes[8] == 0, "u-octet must stay zero")
            #expect(p.extract(v6) == v4)
            // Bits after the IPv4 address and the u-octet (the suffix) are zero.
            if length < 96 {
                let end = length + 32 + 8
                #expect(IPv6Prefix(address: v6, length: end).address == v6, "suffix after bit \(end) must be zero")
            }
        }
    }

    @Test func extractOutsidePrefixIsNil() throws {
        let p = try NAT64Prefix(IPv6Prefix.parse("2001:db8:64::/96"))
        #expect(p.extract(try #require(IPv6Address("2001:db8:65::1"))) == nil)
    }

    @Test func rejectsBadPrefixes() throws {
        #expect(throws: NAT64Prefix.Invalid.length(80)) { try NAT64Prefix(IPv6Prefix.parse("2001:db8::/80")) }
        let u = try IPv6Prefix.parse("2001:db8:0:0:100::/96")
        #expect(throws: NAT64Prefix.Invalid.nonZeroUOctet(u)) { try NAT64Prefix(u) }
    }

    /// RFC 6052 §3.1 through the one shared function.
    @Test func wellKnownPrefixRefusesNonGlobal() throws {
        let wkp = NAT64Prefix.wellKnown
        let nsp = try NAT64Prefix(IPv6Prefix.parse("2001:db8:64::/96"))
        for text in ["10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "127.0.0.1", "169.254.1.1",
                     "100.64.0.1", "192.0.2.1", "198.51.100.1", "203.0.113.1", "0.1.2.3", "224.0.0.1",
                     "255.255.255.255", "198.18.0.1", "198.19.255.255", "192.0.0.8", "192.88.99.1"] {
            let a = try #require(IPv4Address(text))
            #expect(!wkp.canRepresent(a), "\(text) is non-global")
            #expect(nsp.canRepresent(a), "a network-specific prefix represents \(text)")
        }
        for text in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "192.0.3.1", "198.20.0.1", "223.255.255.255"] {
            let a = try #require(IPv4Address(text))
            #expect(wkp.canRepresent(a), "\(text) is global")
        }
    }
}
