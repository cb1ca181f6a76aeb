@testable import Controller
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
