import TestPackets
import Packet
import SixBedFour
import Testing

func hex(_ s: String) -> [UInt8] {
    let d = Array(s.filter { !$0.isWhitespace }.utf8)
    return stride(from: 0, to: d.count, by: 2).map { UInt8(String(decoding: d[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
}


/// `bytes` with its ICMPv6 checksum recomputed, after a test changed a field.
func resealed(_ bytes: [UInt8]) -> [UInt8] {
    var b = bytes
    b[42] = 0
    b[43] = 0
    let c = withPacket(b) { ND.checksum($0, length: $1) }
    b[42] = UInt8(c >> 8)
    b[43] = UInt8(c & 0xFF)
    return b
}


func ep(_ a: String, _ port: UInt16) -> UDPEndpoint { UDPEndpoint(address: IPv4Address(a)!, port: port) }

@Suite struct AddressTests {
    /// Spec §13: every vector both ways.
    @Test(arguments: [
        ("2001:db8:c000:201::", "192.0.2.11", 52034, 1, "2001:db8:c000:201:c000:20b:cb42:1"),
        ("2001:db8:c000:201::", "192.0.2.1", 25790, 0, "2001:db8:c000:201:c000:201:64be:0"),
        ("2001:db8:c000:201::", "203.0.113.20", 40465, 1, "2001:db8:c000:201:c800:7114:9e11:c001"),
        ("fc64:bed:c000:201::", "198.51.100.7", 50000, 0x2A5, "fc64:bed:c000:201:c433:6407:c350:82a5"),
        ("2001:db8:1:2::", "203.0.113.255", 65534, 0x3FFF, "2001:db8:1:2:c800:71ff:fffe:ffff"),
        ("2001:db8:cb00:7101::", "198.51.100.2", 49152, 2, "2001:db8:cb00:7101:c433:6402:c000:8002"),
    ])
    func vectors(prefix: String, v4: String, port: Int, lanip: Int, expected: String) {
        let p = IPv6Address(prefix)!.high
        let a = SixBedFourAddress.encode(prefix: p, endpoint: ep(v4, UInt16(port)), lanip: UInt16(lanip))
        #expect(a == IPv6Address(expected)!)
        let (e, l) = SixBedFourAddress.decode(a)
        #expect(e == ep(v4, UInt16(port)) && l == UInt16(lanip))
        #expect(SixBedFourAddress.validates(a, from: ep(v4, UInt16(port)), prefix: p))
        #expect(!SixBedFourAddress.validates(a, from: ep(v4, UInt16(port) ^ 2), prefix: p), "another port")
        #expect(!SixBedFourAddress.validates(a, from: ep(v4, UInt16(port)), prefix: p ^ 1), "another prefix")
    }

    @Test func linkLayerHasTheLowPortByteFirst() {
        #expect(ep("192.0.2.1", 25790).linkLayer == [0xBE, 0x64, 0xC0, 0x00, 0x02, 0x01])
    }
}

@Suite struct NDWireTests {
    let prefix = IPv6Address("2001:db8:c000:201::")!.high
    let referenceRS = hex("600000000010 3aff" + String(repeating: "00", count: 16) + "ff020000000000000000000000000002 85007aae00000000 0101000000000001")

    @Test func rsIsTheReferencePeersByteForByte() {
        #expect(written { ND.writeRS($0) } == referenceRS)
        #expect(withPacket(referenceRS) { ND.isAcceptableRS($0, length: $1) })
    }

    @Test func rsAcceptance() {
        // Without options (recomputed checksum), accepted.
        var bare = Array(referenceRS[0..<48])
        bare[5] = 8
        #expect(withPacket(resealed(bare)) { ND.isAcceptableRS($0, length: $1) })
        var hop = referenceRS
        hop[7] = 64
        #expect(!withPacket(hop) { ND.isAcceptableRS($0, length: $1) }, "hop limit must be 255")
        var sum = referenceRS
        sum[43] ^= 1
        #expect(!withPacket(sum) { ND.isAcceptableRS($0, length: $1) }, "bad checksum")
    }

    /// Spec §13: the RA to 192.0.2.11:52034 for 2001:db8::/32 completed with 192.0.2.1.
    @Test func raVector() {
        let ra = written { ND.writeRA($0, ND.Advertisement(prefix: prefix), for: ep("192.0.2.11", 52034)) }
        #expect(ra == hex("6000000000303afffe800000000000000000000000000000ff020000000000000000000000000001"
            + "8600892a0018ffffffffffffffffffff030472c0ffffffffffffffff0000000020010db8c0000201c000020bcb420000"))
    }

    @Test func raWithRoutesAppendsTheirPIOs() {
        let ad = ND.Advertisement(prefix: prefix, routes: [try! IPv6Prefix.parse("2001:db8:aaaa::/48"), try! IPv6Prefix.parse("2001:db8:bbbb:cc00::/56")])
        let ra = written { ND.writeRA($0, ad, for: ep("192.0.2.11", 52034)) }
        #expect(Array(ra[88...]) == hex("03043000ffffffffffffffff0000000020010db8aaaa00000000000000000000"
            + "03043800ffffffffffffffff0000000020010db8bbbbcc000000000000000000"))
        #expect(withPacket(ra) { ND.checksum($0, length: $1) } == 0)
    }

    /// RFC 8781: the PREF64 option, and the NAT64 prefix as one more route;
    /// what our peer reads back.
    @Test func raCarriesPREF64AndItsRoute() throws {
        let nat64 = try NAT64Prefix(IPv6Prefix.parse("2001:db8:64::/96"))
        let ad = ND.Advertisement(prefix: prefix, pref64: nat64, pref64Lifetime: 1800)
        let ra = written { ND.writeRA($0, ad, for: ep("192.0.2.11", 52034)) }
        #expect(ra.count == ad.length && ra.count == 88 + 32 + 16)
        #expect(Array(ra[120...]) == hex("2602 0708 20010db8 00640000 00000000"), "type 38, length 2, 1800 s = 225 units of 8 s, PLC 0 (/96)")
        let learned = try #require(withPacket(ra) { ND.readRA($0, length: $1) })
        #expect(learned.prefix114 == IPv6Address("2001:db8:c000:201:c000:20b:cb42:0"))
        #expect(learned.routes == [nat64.prefix])
        #expect(learned.pref64 == nat64 && learned.pref64Lifetime == 1800)
    }

    /// Spec §13: the NA from router 192.0.2.1 to 2001:db8:c000:201:c000:20c:8dc4:1.
    @Test func naVector() {
        let na = written { ND.writeNA($0, router: ep("192.0.2.1", 25790), prefix: prefix, to: IPv6Address("2001:db8:c000:201:c000:20c:8dc4:1")!) }
        #expect(na == hex("6000000000203afffe80000000000000000000000000000020010db8c0000201c000020c8dc40001"
            + "8800e0b3c000000020010db8c0000201c000020164be00000201be64c0000201"))
    }

    @Test func raWithAnotherPIOLengthIsRefused() {
        var ra = written { ND.writeRA($0, ND.Advertisement(prefix: prefix), for: ep("192.0.2.11", 52034)) }
        ra[58] = 64
        #expect(withPacket(resealed(ra)) { ND.readRA($0, length: $1) } == nil)
    }
}
