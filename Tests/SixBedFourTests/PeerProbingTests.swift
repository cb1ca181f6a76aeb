import Packet
@testable import SixBedFour
import Testing

/// Our peer probes a peer in contact a few times, then backs off: a peer
/// that never answers directly (the reference) is not probed forever.
@Suite struct PeerProbingTests {
    let prefix = IPv6Address("2001:db8:c000:201::")!.high
    let server = ep("192.0.2.1", 25790)
    let mine = ep("198.51.100.7", 50000)
    let other = ep("203.0.113.20", 40465)

    /// An IPv6 packet from `src` to `dst`: UDP, or ICMPv6 of `icmpType`.
    func packet(from src: IPv6Address, to dst: IPv6Address, icmpType: UInt8? = nil) -> [UInt8] {
        var p = [UInt8](repeating: 0, count: 64)
        p[0] = 0x60
        p[5] = 24
        p[6] = icmpType == nil ? 17 : 58
        p[7] = 255
        p.replaceSubrange(8..<24, with: src.bytes)
        p.replaceSubrange(24..<40, with: dst.bytes)
        if let icmpType { p[40] = icmpType }
        return p
    }

    @Test func probesStopAfterThreeAndBackOffToFiveMinutes() {
        let engine = PeerEngine(server: server)
        let me = SixBedFourAddress.encode(prefix: prefix, endpoint: mine, lanip: 1)
        let peer = SixBedFourAddress.encode(prefix: prefix, endpoint: other, lanip: 1)
        engine.advertised(ND.Learned(prefix114: me), address: me, now: 0)
        var probes: [Double] = []
        var now = 0.0
        engine.send = { to, p, _ in if to == other, p.load(fromByteOffset: 40, as: UInt8.self) == ND.neighborSolicitation { probes.append(now) } }
        func feed(_ bytes: [UInt8], from: UDPEndpoint) {
            var b = bytes
            b.withUnsafeMutableBytes { engine.fromUDP($0.baseAddress!, length: $0.count, from: from, now: now) }
        }
        func send() {
            var b = packet(from: me, to: peer)
            b.withUnsafeMutableBytes { engine.fromTUN($0.baseAddress!, length: $0.count, now: now) }
        }
        // The peer talks to us through the router all along; we send to it twice a second.
        while now < 600 {
            if now.truncatingRemainder(dividingBy: 10) == 0 { feed(packet(from: peer, to: me), from: server) }
            send()
            now += 0.5
        }
        #expect(probes == [0, 1, 2, 6, 14, 30, 62, 126, 254, 510], "\(probes)")
        #expect(engine.counters.probes == 10 && engine.counters.probeAnswers == 0)

        // An answer ends the back-off: the path is direct, and the next probe
        // (once it goes quiet) comes a second later, not minutes.
        feed(packet(from: peer, to: me, icmpType: ND.neighborAdvertisement), from: other)
        #expect(engine.counters.probeAnswers == 1 && engine.probing[other] == nil)
        let before = engine.counters.sentDirect
        send()
        #expect(engine.counters.sentDirect == before + 1, "sent straight to the peer")
        probes = []
        let answered = now
        while now < answered + 5 {
            send()
            now += 0.5
        }
        #expect(probes.first.map { $0 - answered } == 2.5, "probing again after 2 s of silence: \(probes)")
    }
}
