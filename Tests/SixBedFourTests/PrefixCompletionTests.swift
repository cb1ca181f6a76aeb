import Packet
import SixBedFour
import Testing

@Suite struct PrefixCompletionTests {
    /// The spec's §4 table, observed on the reference router with `-l 192.0.2.1`.
    @Test(arguments: [
        ("::/0", UInt16(0x0BED), "fc64:bed:c000:201::/64"),
        ("fc64::/16", 0x0BED, "fc64:bed:c000:201::/64"),
        ("fc64::/16", 0x1234, "fc64:1234:c000:201::/64"),
        ("2001:db8::/32", 0x0BED, "2001:db8:c000:201::/64"),
        ("2001:db8:1::/48", 0x0BED, "2001:db8:1:bed::/64"),
        ("2001:db8:1::/48", 0x0ABC, "2001:db8:1:abc::/64"),
        ("2001:db8:1:2::/64", 0x0BED, "2001:db8:1:2::/64"),
        ("2002::/16", 0x0BED, "2002:bed:c000:201::/64"),
    ])
    func completesLikeTheReference(input: String, netID: UInt16, expected: String) throws {
        let router = try #require(IPv4Address("192.0.2.1"))
        let got = try SixBedFourPrefix.complete(IPv6Prefix.parse(input), routerAddress: router, netID: netID)
        #expect(got == (try IPv6Prefix.parse(expected)))
    }

    @Test func refusesWhatTheReferenceRefuses() throws {
        let router = try #require(IPv4Address("192.0.2.1"))
        #expect(throws: SixBedFourPrefix.Invalid.length(40)) {
            try SixBedFourPrefix.complete(IPv6Prefix.parse("2001:db8::/40"), routerAddress: router)
        }
        let ula = try IPv6Prefix.parse("fd12:3456::/32")
        #expect(throws: SixBedFourPrefix.Invalid.uniqueLocalNeedsSlash64(ula)) {
            try SixBedFourPrefix.complete(ula, routerAddress: router)
        }
        #expect(try SixBedFourPrefix.complete(IPv6Prefix.parse("fd12:3456:789a:1::/64"), routerAddress: router).length == 64)
    }
}
