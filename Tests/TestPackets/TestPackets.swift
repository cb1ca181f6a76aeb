import Packet

// Test packets that several test targets build and check: a test target
// cannot import another's helpers, so they live in this library.

/// Runs `body` on a zeroed 2048-byte buffer and returns the first `n` bytes, n being what body returns.
public func written(_ body: (UnsafeMutableRawPointer) -> Int) -> [UInt8] {
    let p = UnsafeMutableRawPointer.allocate(byteCount: 2048, alignment: 8)
    defer { p.deallocate() }
    p.initializeMemory(as: UInt8.self, repeating: 0, count: 2048)
    let n = body(p)
    return Array(UnsafeRawBufferPointer(start: p, count: n))
}

/// Runs `body` on a mutable copy of `bytes`.
public func withPacket<T>(_ bytes: [UInt8], _ body: (UnsafeMutableRawPointer, Int) -> T) -> T {
    var b = bytes
    return b.withUnsafeMutableBytes { body($0.baseAddress!, $0.count) }
}

/// Builds test packets with correct checksums, and checks translated ones
/// independently of the engine (full recomputation, never incremental).
public enum Build {
    public static func be16(_ v: Int) -> [UInt8] { [UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

    public static func ipv6(src: String, dst: String, next: UInt8, hop: UInt8 = 64, tc: UInt8 = 0, payload: [UInt8]) -> [UInt8] {
        var p: [UInt8] = [0x60 | tc >> 4, tc << 4, 0, 0] + be16(payload.count) + [next, hop]
        p += IPv6Address(src)!.bytes + IPv6Address(dst)!.bytes
        return p + payload
    }

    public static func ipv4(src: String, dst: String, proto: UInt8, ttl: UInt8 = 64, tos: UInt8 = 0, id: Int = 0x1234, flags: Int = 0x4000, payload: [UInt8]) -> [UInt8] {
        var h: [UInt8] = [0x45, tos] + be16(20 + payload.count) + be16(id) + be16(flags) + [ttl, proto, 0, 0]
        h += IPv4Address(src)!.bytes + IPv4Address(dst)!.bytes
        var c = InternetChecksum()
        c.add(h)
        h[10] = UInt8(c.value >> 8)
        h[11] = UInt8(c.value & 0xFF)
        return h + payload
    }

    /// UDP with its checksum for the given addresses (pseudo-header of either family).
    public static func udp(sport: Int, dport: Int, data: [UInt8], src: String, dst: String) -> [UInt8] {
        var u = be16(sport) + be16(dport) + be16(8 + data.count) + [0, 0] + data
        let c = l4Checksum(u, proto: 17, src: src, dst: dst)
        u[6] = UInt8(c >> 8)
        u[7] = UInt8(c & 0xFF)
        return u
    }

    public static func tcp(sport: Int, dport: Int, src: String, dst: String) -> [UInt8] {
        var t = be16(sport) + be16(dport) + [0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02] + be16(65535) + [0, 0, 0, 0]
        let c = l4Checksum(t, proto: 6, src: src, dst: dst)
        t[16] = UInt8(c >> 8)
        t[17] = UInt8(c & 0xFF)
        return t
    }

    public static func icmpv6(type: UInt8, code: UInt8, rest: UInt32 = 0, body: [UInt8], src: String, dst: String) -> [UInt8] {
        var m: [UInt8] = [type, code, 0, 0, UInt8(rest >> 24), UInt8(rest >> 16 & 0xFF), UInt8(rest >> 8 & 0xFF), UInt8(rest & 0xFF)] + body
        let c = l4Checksum(m, proto: 58, src: src, dst: dst)
        m[2] = UInt8(c >> 8)
        m[3] = UInt8(c & 0xFF)
        return m
    }

    public static func icmpv4(type: UInt8, code: UInt8, rest: UInt32 = 0, body: [UInt8]) -> [UInt8] {
        var m: [UInt8] = [type, code, 0, 0, UInt8(rest >> 24), UInt8(rest >> 16 & 0xFF), UInt8(rest >> 8 & 0xFF), UInt8(rest & 0xFF)] + body
        var c = InternetChecksum()
        c.add(m)
        m[2] = UInt8(c.value >> 8)
        m[3] = UInt8(c.value & 0xFF)
        return m
    }

    public static func l4Checksum(_ seg: [UInt8], proto: UInt8, src: String, dst: String) -> UInt16 {
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

/// Independent checks of a translated packet's checksums.
public enum Verify {
    public static func ipv4Header(_ p: [UInt8]) -> Bool {
        var c = InternetChecksum()
        c.add(Array(p[0..<20]))
        return c.value == 0
    }

    /// The upper-layer checksum of an IPv4 packet (ICMP: no pseudo-header).
    public static func l4of4(_ p: [UInt8]) -> Bool {
        let seg = Array(p[20...])
        var c = InternetChecksum()
        if p[9] != 1 { c.addPseudoHeader(source: IPv4Address(bytes: p[12..<16]), destination: IPv4Address(bytes: p[16..<20]), protocol: p[9], length: seg.count) }
        c.add(seg)
        return c.value == 0
    }

    public static func l4of6(_ p: [UInt8]) -> Bool {
        let seg = Array(p[40...])
        var c = InternetChecksum()
        c.addPseudoHeader(source: IPv6Address(bytes: p[8..<24]), destination: IPv6Address(bytes: p[24..<40]), nextHeader: p[6], length: seg.count)
        c.add(seg)
        return c.value == 0
    }
}
