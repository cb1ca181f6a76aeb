import ControlProtocol
import Configuration
@testable import DNS64
import Foundation
@testable import Mux
import Packet
@testable import SixBedFour
import Translator

/// One harness per parser: each takes arbitrary bytes, must never trap,
/// and asserts what must hold of any answer (a translated packet fits its
/// buffer, a decoded message encodes again).
enum Harness: String, CaseIterable {
    case engine, dns, dns64, sixbedfour, config, control, differential, mux

    func run(_ data: UnsafeRawBufferPointer) {
        switch self {
        case .engine: Self.engine(data)
        case .dns: Self.dns(data)
        case .dns64: Self.dns64(data)
        case .sixbedfour: Self.sixBedFour(data)
        case .config: _ = try? ConfigLoader.parse(String(decoding: data, as: UTF8.self), source: "fuzz.toml")
        case .control: _ = ControlRequest.decode(Data(data))
        case .differential: Self.differential(data)
        case .mux: Self.mux(data)
        }
    }

    /// A buffer with the engine's headroom and room to grow, reused.
    nonisolated(unsafe) static let buffer = UnsafeMutableRawPointer.allocate(byteCount: Engine.headroom + 70_000, alignment: 16)

    static let translator: Engine = {
        let settings = TranslatorSettings(
            prefix: try! NAT64Prefix(IPv6Prefix.parse("2001:db8:64::/96")),
            eam: EAMTable([EAMTable.Entry(ipv4: try! IPv4Prefix.parse("203.0.113.0/28"), ipv6: try! IPv6Prefix.parse("2001:db8:2::/124"))]),
            own4: IPv4Address("192.0.2.1"), rfc6791: try! IPv4Prefix.parse("192.0.2.64/30"))
        return Engine(settings: settings, pool: DynamicPool(range: try! IPv4Prefix.parse("192.0.2.128/25"), idleTimeout: 7200, stateFile: nil,
                                                            clientLimit: DynamicPool.ClientLimit(addresses: 4, length: 64)))
    }()

    /// The first 10 bytes are offload metadata (a virtio-net header, as the
    /// TUN device gives it), the rest the packet.
    static func engine(_ data: UnsafeRawBufferPointer) {
        guard data.count >= Offload.size, data.count - Offload.size <= 65_535 else { return }
        let length = data.count - Offload.size
        let start = Engine.headroom
        (buffer + start).copyMemory(from: data.baseAddress! + Offload.size, byteCount: length)
        var header = [UInt8](data.prefix(Offload.size))  // copied: Offload reads through a mutable pointer
        var offload = header.withUnsafeMutableBytes { Offload(reading: $0.baseAddress!) }
        switch translator.process(buffer, start: start, length: length, now: 1000, offload: &offload) {
        case .forward(let s, let l), .reply(let s, let l):
            precondition(s >= 0 && l >= 20 && s + l <= Engine.headroom + 70_000, "an outcome outside the buffer: \(s) \(l)")
        case .fragments(var f):
            var n = 0
            while let part = f.next(in: buffer) {
                precondition(part.start >= 0 && part.length <= 1280 + 48, "a fragment outside the buffer")
                n += 1
                precondition(n < 100, "no end to the fragments")
            }
        case .drop:
            break
        }
    }

    /// The cache's fast path (QueryHead) and the decoder each take any
    /// input; what decodes, encodes and decodes again.
    static func dns(_ data: UnsafeRawBufferPointer) {
        _ = QueryHead(data)
        guard let m = try? Wire.decode(Array(data)) else { return }
        precondition((try? Wire.decode(Wire.encode(m))) != nil, "a decoded message that does not decode once encoded")
    }

    static let synthesis = Synthesis(prefix: try! NAT64Prefix(IPv6Prefix.parse("2001:db8:64::/96")))

    /// DNS64's decisions on any message as the query and as each upstream
    /// answer (the upstream stubbed by the input itself).
    static func dns64(_ data: UnsafeRawBufferPointer) {
        guard let m = try? Wire.decode(Array(data)) else { return }
        _ = Synthesis.clientValidates(m)
        _ = synthesis.decide(query: m, aaaaResponse: m)
        let answer = synthesis.answer(query: m, aaaaResponse: m, aResponse: m)
        _ = Wire.encode(answer)
        _ = Wire.encode(synthesis.passedOn(m))
    }

    static let router = SixBedFourRouter(settings: RouterSettings(
        endpoint: UDPEndpoint(address: IPv4Address("192.0.2.1")!, port: 25790), prefix: IPv6Address("2001:db8:c000:201::")!.high,
        advertisement: ND.Advertisement(prefix: IPv6Address("2001:db8:c000:201::")!.high)))

    /// The first byte picks the side (even: a peer's datagram, odd: the TUN
    /// device), the next six the peer's endpoint.
    static func sixBedFour(_ data: UnsafeRawBufferPointer) {
        guard data.count >= 7, data.count - 7 <= 2000 else { return }
        let length = data.count - 7
        buffer.copyMemory(from: data.baseAddress! + 7, byteCount: length)
        let from = UDPEndpoint(address: IPv4Address(bytes: data[1..<5]), port: UInt16(data[5]) << 8 | UInt16(data[6]))
        if data[0] & 1 == 0 {
            _ = router.fromPeer(buffer, length: length, from: from, now: 1000)
        } else {
            _ = router.fromTUN(buffer, length: length, now: 1000)
        }
    }

    /// The multiplexer's peeks, TLS and HTTP, on any first bytes: a name
    /// they find is a host name as the routes compare them.
    static func mux(_ data: UnsafeRawBufferPointer) {
        let bytes = Array(data)
        for peek in [ClientHello.peek(bytes), HTTPHost.peek(bytes)] {
            if case .name(let n) = peek { precondition(HostName.normalized(n.utf8) == n, "a name the routes would not compare: \(n)") }
        }
    }
}
