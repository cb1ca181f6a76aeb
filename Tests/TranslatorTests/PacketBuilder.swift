import Packet
@testable import Translator

/// Builds test packets with correct checksums, and checks translated ones
/// independently of the engine (full recomputation, never incremental).
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

    static func icmpv6(type: UInt8, code: UInt8, rest: UInt32 = 0, body: [UInt8], src: String, dst: String) -> [UInt8] {
        var m: [UInt8] = [type, code, 0, 0, UInt8(rest >> 24), UInt8(rest >> 16 & 0xFF), UInt8(rest >> 8 & 0xFF), UInt8(rest & 0xFF)] + body
        let c = l4Checksum(m, proto: 58, src: src, dst: dst)
        m[2] = UInt8(c >> 8)
        m[3] = UInt8(c & 0xFF)
        return m
    }

    static func icmpv4(type: UInt8, code: UInt8, rest: UInt32 = 0, body: [UInt8]) -> [UInt8] {
        var m: [UInt8] = [type, code, 0, 0, UInt8(rest >> 24), UInt8(rest >> 16 & 0xFF), UInt8(rest >> 8 & 0xFF), UInt8(rest & 0xFF)] + body
        var c = InternetChecksum()
        c.add(m)
        m[2] = UInt8(c.value >> 8)
        m[3] = UInt8(c.value & 0xFF)
        return m
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

final class Emitted { var packets: [[UInt8]] = [] }

/// Runs the engine on a copy of `packet` and returns the outcome and the bytes;
/// when it became fragments, all but the last go to `emitted`, and the
/// bytes are the last one's.
func run(_ engine: Engine, _ packet: [UInt8], now: UInt64 = 1000, emitted: Emitted = Emitted()) -> (Outcome, [UInt8]) {
    var offload = Offload()
    return run(engine, packet, now: now, emitted: emitted, offload: &offload)
}

/// The same for a packet with offload metadata, which comes back as the translation left it.
func run(_ engine: Engine, _ packet: [UInt8], now: UInt64 = 1000, emitted: Emitted = Emitted(), offload: inout Offload) -> (Outcome, [UInt8]) {
    let capacity = Engine.headroom + packet.count + 64
    let buf = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
    defer { buf.deallocate() }
    packet.withUnsafeBytes { (buf + Engine.headroom).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    let o = engine.process(buf, start: Engine.headroom, length: packet.count, now: now, offload: &offload)
    switch o {
    case .forward(let s, let l), .reply(let s, let l):
        return (o, Array(UnsafeRawBufferPointer(start: buf + s, count: l)))
    case .fragments(var fragments):
        // Each copied before the next is made over its tail.
        var copies: [[UInt8]] = []
        while let f = fragments.next(in: buf) { copies.append(Array(UnsafeRawBufferPointer(start: buf + f.start, count: f.length))) }
        emitted.packets += copies.dropLast()
        return (o, copies.last ?? [])
    case .drop:
        return (o, [])
    }
}

/// Independent checks of a translated packet's checksums.
enum Verify {
    static func ipv4Header(_ p: [UInt8]) -> Bool {
        var c = InternetChecksum()
        c.add(Array(p[0..<20]))
        return c.value == 0
    }

    /// The upper-layer checksum of an IPv4 packet (ICMP: no pseudo-header).
    static func l4of4(_ p: [UInt8]) -> Bool {
        let seg = Array(p[20...])
        var c = InternetChecksum()
        if p[9] != 1 { c.addPseudoHeader(source: IPv4Address(bytes: p[12..<16]), destination: IPv4Address(bytes: p[16..<20]), protocol: p[9], length: seg.count) }
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

func makeEngine(prefix: String = "2001:db8:64::/96", eam: [(String, String)] = [], pool: String? = "192.0.2.128/25",
                own4: String? = "192.0.2.1", zeroChecksum: ZeroChecksumPolicy = .drop) throws -> Engine {
    let settings = TranslatorSettings(
        prefix: try NAT64Prefix(IPv6Prefix.parse(prefix)),
        eam: EAMTable(try eam.map { try EAMTable.Entry(ipv4: IPv4Prefix.parse($0.0), ipv6: IPv6Prefix.parse($0.1)) }),
        own4: own4.flatMap(IPv4Address.init), zeroChecksum: zeroChecksum)
    let p = try pool.map { DynamicPool(range: try IPv4Prefix.parse($0), idleTimeout: 7200, stateFile: nil) }
    return Engine(settings: settings, pool: p)
}
