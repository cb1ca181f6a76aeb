import Foundation
import Glibc
import Packet
import Testing

@Suite struct AddressTextTests {
    @Test(arguments: [
        ("2001:db8::1", "2001:db8::1"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  // RFC 5952 §4.2.3: first of equal runs
        ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),  // §4.2.3: the longest run
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),  // §4.2.2: one zero group stays
        ("::", "::"),
        ("::1", "::1"),
        ("1::", "1::"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
        ("64:ff9b::c000:221", "64:ff9b::192.0.2.33"),
        ("2001:db8:122:344::192.0.2.33", "2001:db8:122:344::c000:221"),
    ])
    func canonicalText(input: String, expected: String) throws {
        let a = try #require(IPv6Address(input))
        #expect(a.description == expected)
        #expect(IPv6Address(expected) == a)
    }

    @Test(arguments: ["", ":", ":::", "1:::2", "1::2::3", "12345::", "g::", "1:2:3:4:5:6:7:8:9",
                      "1:2:3:4:5:6:7", "::1%eth0", "::256.0.0.1", "::1.2.3", "1.2.3.4::", " ::1"])
    func rejectsMalformedIPv6(input: String) {
        #expect(IPv6Address(input) == nil)
    }

    @Test(arguments: ["1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1..2.3", "a.b.c.d", "1.2.3.4 ", ""])
    func rejectsMalformedIPv4(input: String) {
        #expect(IPv4Address(input) == nil)
    }

    /// Cross-check against glibc's inet_ntop/inet_pton on random addresses. glibc
    /// writes no mixed notation for the well-known prefix and writes "::a.b.c.d"
    /// for the deprecated IPv4-compatible form, so those two ranges are left out.
    @Test func textMatchesGlibcOnRandomAddresses() throws {
        var rng = SystemRandomNumberGenerator()
        for i in 0..<20_000 {
            var a = IPv6Address(high: rng.next(), low: rng.next())
            // Random addresses rarely contain zero runs; zero some groups on purpose.
            var g = a.groups
            for j in 0..<8 where (i >> j) & 1 == 1 { g[j] = 0 }
            a = IPv6Address(groups: g)
            if IPv6Prefix.wellKnownNAT64.contains(a) || IPv6Prefix(address: .init(high: 0, low: 0), length: 96).contains(a) { continue }
            var raw = a.bytes
            var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            try #require(inet_ntop(AF_INET6, &raw, &buf, socklen_t(buf.count)) != nil)
            let glibc = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            #expect(a.description == glibc)
            #expect(IPv6Address(glibc) == a)
        }
    }

    @Test func ipv4RoundTrip() throws {
        let a = try #require(IPv4Address("192.0.2.33"))
        #expect(a.rawValue == 0xC000_0221)
        #expect(a.description == "192.0.2.33")
        #expect(a.bytes == [192, 0, 2, 33])
        #expect(IPv4Address(bytes: a.bytes) == a)
    }
}

@Suite struct PrefixTests {
    @Test func parsesAndRejectsHostBits() throws {
        let p = try IPv6Prefix.parse("2001:db8:64::/96")
        #expect(p.length == 96)
        #expect(throws: AddressParseError.hostBitsSet("2001:db8::1/64", masked: "2001:db8::/64")) {
            try IPv6Prefix.parse("2001:db8::1/64")
        }
        #expect(throws: AddressParseError.hostBitsSet("192.0.2.1/24", masked: "192.0.2.0/24")) {
            try IPv4Prefix.parse("192.0.2.1/24")
        }
        #expect(throws: AddressParseError.badLength("2001:db8::/129", maximum: 128)) { try IPv6Prefix.parse("2001:db8::/129") }
        #expect(throws: AddressParseError.badLength("192.0.2.0/", maximum: 32)) { try IPv4Prefix.parse("192.0.2.0/") }
        #expect(throws: AddressParseError.malformedAddress("192.0.2/24")) { try IPv4Prefix.parse("192.0.2/24") }
        #expect(try IPv4Prefix.parse("192.0.2.7").length == 32)
    }

    @Test func containsAndOverlaps() throws {
        let a = try IPv4Prefix.parse("192.0.2.0/24"), b = try IPv4Prefix.parse("192.0.2.128/25")
        let c = try IPv4Prefix.parse("198.51.100.0/24")
        #expect(a.contains(b) && !b.contains(a))
        #expect(a.overlaps(b) && b.overlaps(a) && !a.overlaps(c))
        #expect(a.last.description == "192.0.2.255" && b.size == 128)
        #expect(try IPv4Prefix.parse("0.0.0.0/0").contains(c))
        let x = try IPv6Prefix.parse("2001:db8::/32"), y = try IPv6Prefix.parse("2001:db8:64::/96")
        let z = try IPv6Prefix.parse("2001:db9::/32")
        #expect(x.contains(y) && x.overlaps(y) && y.overlaps(x) && !x.overlaps(z))
        #expect(y.contains(try #require(IPv6Address("2001:db8:64::c000:221"))))
        #expect(!y.contains(try #require(IPv6Address("2001:db8:64::1:c000:221"))))
        for len in [0, 1, 63, 64, 65, 127, 128] {
            let p = IPv6Prefix(address: IPv6Address(high: .max, low: .max), length: len)
            #expect(p.contains(IPv6Address(high: .max, low: .max)))
            #expect(len == 0 || !p.contains(IPv6Address(high: 0, low: 0)))
        }
    }

    @Test func endpoints() throws {
        #expect(try IPEndpoint.parse("192.0.2.53", defaultPort: 53).description == "192.0.2.53:53")
        #expect(try IPEndpoint.parse("192.0.2.53:5353", defaultPort: 53).port == 5353)
        #expect(try IPEndpoint.parse("2001:db8::53", defaultPort: 53).description == "[2001:db8::53]:53")
        #expect(try IPEndpoint.parse("[2001:db8::53]:54", defaultPort: 53).port == 54)
        #expect(throws: AddressParseError.malformedPort("192.0.2.53:0")) { try IPEndpoint.parse("192.0.2.53:0", defaultPort: 53) }
        #expect(throws: AddressParseError.malformedPort("[::1]:70000")) { try IPEndpoint.parse("[::1]:70000", defaultPort: 53) }
        #expect(throws: AddressParseError.malformedAddress("[::1")) { try IPEndpoint.parse("[::1", defaultPort: 53) }
    }
}

@Suite struct CodableTests {
    @Test func addressesAndPrefixesTravelAsText() throws {
        let values: [IPPrefix] = [try IPPrefix.parse("2001:db8:64::/96"), try IPPrefix.parse("192.0.2.0/25")]
        let json = try JSONEncoder().encode(values)
        #expect(String(decoding: json, as: UTF8.self) == #"["2001:db8:64::\/96","192.0.2.0\/25"]"#)
        #expect(try JSONDecoder().decode([IPPrefix].self, from: json) == values)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([IPPrefix].self, from: Data(#"["192.0.2.1/24"]"#.utf8)) }
        let a = IPAddress("2001:db8::1")!
        #expect(try JSONDecoder().decode(IPAddress.self, from: JSONEncoder().encode(a)) == a)
    }
}
