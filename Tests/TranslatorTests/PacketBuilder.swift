import Packet
import TestPackets
@testable import Translator

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

func makeEngine(prefix: String = "2001:db8:64::/96", eam: [(String, String)] = [], pool: String? = "192.0.2.128/25",
                own4: String? = "192.0.2.1", zeroChecksum: ZeroChecksumPolicy = .drop) throws -> Engine {
    let settings = TranslatorSettings(
        prefix: try NAT64Prefix(IPv6Prefix.parse(prefix)),
        eam: EAMTable(try eam.map { try EAMTable.Entry(ipv4: IPv4Prefix.parse($0.0), ipv6: IPv6Prefix.parse($0.1)) }),
        own4: own4.flatMap(IPv4Address.init), zeroChecksum: zeroChecksum)
    let p = try pool.map { DynamicPool(range: try IPv4Prefix.parse($0), idleTimeout: 7200, stateFile: nil) }
    return Engine(settings: settings, pool: p)
}
