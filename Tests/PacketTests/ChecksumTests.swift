import Packet
import Testing

/// Packets captured from the Linux kernel (ping and ping -6 on a namespace's
/// loopback), so their checksums were computed by code other than ours.
enum Captured {
    static let icmpv4Echo = hex("45000030762640004001c6a47f0000017f0000010800d1eb0e770001aeea0b6b00000000372204000000000010111213")
    static let icmpv4Reply = hex("4500003076270000400106a47f0000017f0000010000d9eb0e770001aeea0b6b00000000372204000000000010111213")
    static let icmpv6Echo = hex("600a792700143a400000000000000000000000000000000100000000000000000000000000000001800053120e780001000102030405060708090a0b")
    static let icmpv6Reply = hex("6002c05600143a400000000000000000000000000000000100000000000000000000000000000001810052120e780001000102030405060708090a0b")

    static func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex {
            let j = s.index(i, offsetBy: 2)
            out.append(UInt8(s[i..<j], radix: 16)!)
            i = j
        }
        return out
    }
}

@Suite struct ChecksumTests {
    func sum(_ bytes: ArraySlice<UInt8>) -> UInt16 {
        var c = InternetChecksum()
        c.add(Array(bytes))
        return c.value
    }

    @Test func ipv4HeaderChecksumOfCapturedPackets() {
        for p in [Captured.icmpv4Echo, Captured.icmpv4Reply] {
            #expect(sum(p[0..<20]) == 0, "a valid header sums to zero")
            var zeroed = Array(p[0..<20])
            zeroed[10] = 0
            zeroed[11] = 0
            #expect(sum(zeroed[...]) == UInt16(p[10]) << 8 | UInt16(p[11]))
        }
        // RFC 1071's worked example, §3: words 0001 f203 f4f5 f6f7 sum to ddf2.
        #expect(sum([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]) == ~UInt16(0xddf2))
    }

    @Test func icmpv4ChecksumOfCapturedPackets() {
        for p in [Captured.icmpv4Echo, Captured.icmpv4Reply] {
            #expect(sum(p[20...]) == 0)
        }
    }

    @Test func icmpv6ChecksumWithPseudoHeader() {
        for p in [Captured.icmpv6Echo, Captured.icmpv6Reply] {
            let src = IPv6Address(bytes: p[8..<24]), dst = IPv6Address(bytes: p[24..<40])
            var c = InternetChecksum()
            c.addPseudoHeader(source: src, destination: dst, nextHeader: 58, length: p.count - 40)
            c.add(Array(p[40...]))
            #expect(c.value == 0, "ICMPv6 checksum covers the RFC 8200 pseudo-header")
        }
    }

    @Test func oddLengthIsPaddedWithZero() {
        #expect(sum([0xAB]) == ~UInt16(0xAB00))
    }

    /// Rewrite the destination of a captured packet and update incrementally: the
    /// result must equal a full recomputation, and the packet must verify.
    @Test func incrementalUpdateMatchesRecomputation() throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            var p = Captured.icmpv4Echo
            let old = IPv4Address(bytes: p[16..<20]), new = IPv4Address(rawValue: rng.next())
            p.replaceSubrange(16..<20, with: new.bytes)
            let before = UInt16(p[10]) << 8 | UInt16(p[11])
            let after = InternetChecksum.update(before, removing: old, adding: new)
            p[10] = UInt8(after >> 8)
            p[11] = UInt8(after & 0xFF)
            #expect(sum(p[0..<20]) == 0)

            var q = Captured.icmpv6Echo
            let old6 = IPv6Address(bytes: q[24..<40]), new6 = IPv6Address(high: rng.next(), low: rng.next())
            q.replaceSubrange(24..<40, with: new6.bytes)
            let c6 = UInt16(q[42]) << 8 | UInt16(q[43])
            let u6 = InternetChecksum.update(c6, removing: old6, adding: new6)
            q[42] = UInt8(u6 >> 8)
            q[43] = UInt8(u6 & 0xFF)
            var c = InternetChecksum()
            c.addPseudoHeader(source: IPv6Address(bytes: q[8..<24]), destination: new6, nextHeader: 58, length: q.count - 40)
            c.add(Array(q[40...]))
            #expect(c.value == 0)
        }
    }

    /// RFC 1624 §4's example: HC = 0xDD2F, m = 0x5555 -> m' = 0x3285. Eqn. 2 gives
    /// 0xFFFF, which no full computation yields; eqn. 3 gives the right 0x0000.
    @Test func rfc1624Example() {
        #expect(InternetChecksum.update(0xDD2F, removing: 0x5555, adding: 0x3285) == 0x0000)
        #expect(InternetChecksum.update(0x0000, removing: 0x3285, adding: 0x5555) == 0xDD2F)
    }
}
