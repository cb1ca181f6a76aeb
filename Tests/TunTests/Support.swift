import Packet

// Test packets for the Tun types. A test target cannot import another's
// helpers: these are the few of TranslatorTests' PacketBuilder.swift and
// SixBedFourTests' WireTests.swift that the tests here use, copied.

/// Runs `body` on a zeroed 2048-byte buffer and returns the first `n` bytes, n being what body returns.
func written(_ body: (UnsafeMutableRawPointer) -> Int) -> [UInt8] {
    let p = UnsafeMutableRawPointer.allocate(byteCount: 2048, alignment: 8)
    defer { p.deallocate() }
    p.initializeMemory(as: UInt8.self, repeating: 0, count: 2048)
    let n = body(p)
    return Array(UnsafeRawBufferPointer(start: p, count: n))
}

func withPacket<T>(_ bytes: [UInt8], _ body: (UnsafeMutableRawPointer, Int) -> T) -> T {
    var b = bytes
    return b.withUnsafeMutableBytes { body($0.baseAddress!, $0.count) }
}

/// Builds test packets with correct checksums.
enum Build {
    static func be16(_ v: Int) -> [UInt8] { [UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

    static func ipv6(src: String, dst: String, next: UInt8, hop: UInt8 = 64, tc: UInt8 = 0, payload: [UInt8]) -> [UInt8] {
        var p: [UInt8] = [0x60 | tc >> 4, tc << 4, 0, 0] + be16(payload.count) + [next, hop]
        p += IPv6Address(src)!.bytes + IPv6Address(dst)!.bytes
        return p + payload
    }

    static func ipv4(src: String, dst: String, proto: UInt8, ttl: UInt8 = 64, tos: UInt8 = 0, id: Int = 0x1234, flags: Int = 0x4000, payload: [UInt8]) -> [UInt8] {
        var h: [UInt8] = [0x45, tos] + be16(20 + payload.count) + be16(id) + be16(flags) + [ttl, proto, 0, 0]
        h += IPv4Address(src)!.bytes + IPv4Address(dst)!.bytes
        var c = InternetChecksum()
        c.add(h)
        h[10] = UInt8(c.value >> 8)
        h[11] = UInt8(c.value & 0xFF)
        return h + payload
    }

    /// UDP with its checksum for the given addresses (pseudo-header of either family).
    static func udp(sport: Int, dport: Int, data: [UInt8], src: String, dst: String) -> [UInt8] {
        var u = be16(sport) + be16(dport) + be16(8 + data.count) + [0, 0] + data
        let c = l4Checksum(u, proto: 17, src: src, dst: dst)
        u[6] = UInt8(c >> 8)
        u[7] = UInt8(c & 0xFF)
        return u
    }

    static func tcp(sport: Int, dport: Int, src: String, dst: String) -> [UInt8] {
        var t = be16(sport) + be16(dport) + [0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02] + be16(65535) + [0, 0, 0, 0]
        let c = l4Checksum(t, proto: 6, src: src, dst: dst)
        t[16] = UInt8(c >> 8)
        t[17] = UInt8(c & 0xFF)
        return t
    }

    static func l4Checksum(_ seg: [UInt8], proto: UInt8, src: String, dst: String) -> UInt16 {
        var c = InternetChecksum()
        if let s = IPv6Address(src), let d = IPv6Address(dst) {
            c.addPseudoHeader(source: s, destination: d, nextHeader: proto, length: seg.count)
        } else {
            c.addPseudoHeader(source: IPv4Address(src)!, destination: IPv4Address(dst)!, protocol: proto, length: seg.count)
        }
        c.add(seg)
        let v = c.value
        return proto == 17 && v == 0 ? 0xFFFF : v
    }
}

/// Independent checks of a packet's checksums.
enum Verify {
    static func ipv4Header(_ p: [UInt8]) -> Bool {
        var c = InternetChecksum()
        c.add(Array(p[0..<20]))
        return c.value == 0
    }

    /// The upper-layer checksum of an IPv4 packet.
    static func l4of4(_ p: [UInt8]) -> Bool {
        let seg = Array(p[20...])
        var c = InternetChecksum()
        c.addPseudoHeader(source: IPv4Address(bytes: p[12..<16]), destination: IPv4Address(bytes: p[16..<20]), protocol: p[9], length: seg.count)
        c.add(seg)
        return c.value == 0
    }

    static func l4of6(_ p: [UInt8]) -> Bool {
        let seg = Array(p[40...])
        var c = InternetChecksum()
        c.addPseudoHeader(source: IPv6Address(bytes: p[8..<24]), destination: IPv6Address(bytes: p[24..<40]), nextHeader: p[6], length: seg.count)
        c.add(seg)
        return c.value == 0
    }
}
