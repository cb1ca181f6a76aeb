import TestPackets
import Packet
import Testing
@testable import Translator

/// RFC 4884 extensions (MPLS labels, interface information) after the
/// quoted datagram of an ICMP error, across the translation (RFC 7915 §4.2,
/// §5.2): the length field is recomputed for the translated datagram, which
/// is padded as the new family wants, the extension goes along whole, or,
/// when it cannot, not at all.
@Suite struct ICMPExtensionTests {
    /// An ICMP extension structure (RFC 4884 §7): version 2, then one
    /// object of `size` bytes (class 2, interface information).
    static func extensionStructure(size: Int = 12) -> [UInt8] {
        var object: [UInt8] = [UInt8(size >> 8), UInt8(size & 0xFF), 2, 0x0A] + (0..<(size - 4)).map { UInt8(0x40 + $0 % 64) }
        object = Array(object.prefix(size))
        var s: [UInt8] = [0x20, 0, 0, 0] + object
        var c = InternetChecksum()
        c.add(s)
        s[2] = UInt8(c.value >> 8)
        s[3] = UInt8(c.value & 0xFF)
        return s
    }

    /// c6's UDP datagram as it left towards s4, the first `bytes` of it.
    static func quoted4(bytes: Int) -> [UInt8] {
        let udp = Build.udp(sport: 5000, dport: 9, data: Array(repeating: 0x11, count: 300), src: "192.0.2.128", dst: s4)
        return Array(Build.ipv4(src: "192.0.2.128", dst: s4, proto: 17, ttl: 63, payload: udp).prefix(bytes))
    }

    /// s6's Port Unreachable for c4's datagram, quoting its first 128 bytes
    /// (length 16, in words of 8), then `extension`.
    static func unreachable6(extension ext: [UInt8]) -> [UInt8] {
        let udp = Build.udp(sport: 40000, dport: 81, data: Array(repeating: 0x22, count: 300), src: c4in6, dst: s6)
        let quoted = Array(Build.ipv6(src: c4in6, dst: s6, next: 17, hop: 63, payload: udp).prefix(128))
        return Build.ipv6(src: s6, dst: c4in6, next: 58, payload: Build.icmpv6(type: 1, code: 4, rest: 16 << 24, body: quoted + ext, src: s6, dst: c4in6))
    }

    func engineWithC6() throws -> Engine {
        let e = try makeEngine(eam: eam)
        // c6 gets its pool address, 192.0.2.128.
        _ = run(e, Build.ipv6(src: c6, dst: s4in6, next: 17, payload: Build.udp(sport: 5000, dport: 9, data: [1], src: c6, dst: s4in6)))
        return e
    }

    @Test func fromIPv4TheDatagramIsPaddedTo8AndTheExtensionFollows() throws {
        let e = try engineWithC6()
        let ext = Self.extensionStructure()
        // Time Exceeded with a 128-byte datagram field: length 32 (words of 4).
        let err = Build.ipv4(src: "198.51.100.1", dst: "192.0.2.128", proto: 1,
                             payload: Build.icmpv4(type: 11, code: 0, rest: 32 << 16, body: Self.quoted4(bytes: 128) + ext))
        let (o, v6) = run(e, err)
        guard case .forward = o else { Issue.record("\(o)"); return }
        let icmp = Array(v6[40...])
        #expect(icmp[0] == 3 && icmp[1] == 0, "time exceeded")
        // 128 - 20 + 40 = 148 bytes of datagram, padded to 152: 19 words of 8.
        #expect(icmp[4] == 19, "the length field counts the translated, padded datagram: \(icmp[4])")
        #expect(icmp.count == 8 + 152 + ext.count)
        #expect(icmp[8] >> 4 == 6 && IPv6Address(bytes: icmp[16..<32]).description == c6, "the quoted packet is IPv6")
        #expect(icmp[(8 + 148)..<(8 + 152)] == [0, 0, 0, 0], "zero padding")
        #expect(Array(icmp[(8 + 152)...]) == ext, "the extension, whole and unchanged")
        #expect(Verify.l4of6(v6))
    }

    @Test func fromIPv6TheDatagramIsPaddedTo128AndTheExtensionFollows() throws {
        let e = try makeEngine(eam: eam)
        let ext = Self.extensionStructure()
        let err = Self.unreachable6(extension: ext)
        let (o, v4) = run(e, err)
        guard case .forward = o else { Issue.record("\(o)"); return }
        let icmp = Array(v4[20...])
        #expect(icmp[0] == 3 && icmp[1] == 3, "port unreachable")
        // 128 - 40 + 20 = 108 bytes of datagram, padded to the minimum of 128: 32 words of 4.
        #expect(icmp[5] == 32, "the length field: \(icmp[5])")
        #expect(icmp.count == 8 + 128 + ext.count)
        #expect(icmp[8] >> 4 == 4 && IPv4Address(bytes: icmp[20..<24]).description == c4, "the quoted packet is IPv4")
        #expect(icmp[(8 + 108)..<(8 + 128)].allSatisfy { $0 == 0 }, "zero padding")
        #expect(Array(icmp[(8 + 128)...]) == ext)
        #expect(Verify.ipv4Header(v4) && Verify.l4of4(v4))
    }

    /// An extension that would make the ICMPv4 error pass 576 bytes is left
    /// out, never cut: the length field is 0 and the message ends with the
    /// datagram.
    @Test func anExtensionThatDoesNotFitIsLeftOut() throws {
        let e = try makeEngine(eam: eam)
        let ext = Self.extensionStructure(size: 500)
        let err = Self.unreachable6(extension: ext)
        let (o, v4) = run(e, err)
        guard case .forward = o else { Issue.record("\(o)"); return }
        let icmp = Array(v4[20...])
        #expect(icmp[5] == 0 && icmp.count == 8 + 108, "no length, no extension: \(icmp[5]) \(icmp.count)")
        #expect(Verify.ipv4Header(v4) && Verify.l4of4(v4))
    }

    /// Fragmentation Needed becomes Packet Too Big, which has no length
    /// field: the extension stays behind.
    @Test func aTypeWithoutALengthFieldCarriesNoExtension() throws {
        let e = try engineWithC6()
        let err = Build.ipv4(src: "198.51.100.1", dst: "192.0.2.128", proto: 1,
                             payload: Build.icmpv4(type: 3, code: 4, rest: 32 << 16 | 1400, body: Self.quoted4(bytes: 128) + Self.extensionStructure()))
        let (o, v6) = run(e, err)
        guard case .forward = o else { Issue.record("\(o)"); return }
        let icmp = Array(v6[40...])
        #expect(icmp[0] == 2 && icmp.count == 8 + 148, "packet too big, the datagram alone: \(icmp.count)")
        #expect(Verify.l4of6(v6))
    }
}
