import TestPackets
import Glibc
import Packet
import Testing
import Tun

/// The Coalescer writes into a SOCK_SEQPACKET socket, which keeps each write
/// a message of its own as a TUN device keeps each packet.
final class CoalescerHarness {
    let joiner = Coalescer()
    let queue: TunQueue
    let reader: Int32
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: Offload.size + 70000, alignment: 16)

    init() throws {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0, &fds) == 0 else { throw CoalescerHarnessError() }
        var size: Int32 = 4 << 20
        setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        queue = TunQueue(fd: fds[0], device: "test")
        reader = fds[1]
        _ = fcntl(reader, F_SETFL, O_NONBLOCK)
    }

    deinit {
        close(queue.fd)
        close(reader)
        buffer.deallocate()
    }

    func write(_ packet: [UInt8], offload: Offload = Offload()) {
        packet.withUnsafeBytes { b in
            (buffer + Offload.size).copyMemory(from: b.baseAddress!, byteCount: b.count)
        }
        joiner.write(buffer + Offload.size, length: packet.count, offload: offload, to: queue)
    }

    /// What reached the "device": each write's offload header and packet.
    func written() -> [(Offload, [UInt8])] {
        joiner.flush()
        var out: [(Offload, [UInt8])] = []
        let m = UnsafeMutableRawPointer.allocate(byteCount: 70000, alignment: 16)
        defer { m.deallocate() }
        while true {
            let n = recv(reader, m, 70000, 0)
            guard n >= Offload.size else { return out }
            out.append((Offload(reading: m), Array(UnsafeRawBufferPointer(start: m + Offload.size, count: n - Offload.size))))
        }
    }
}

struct CoalescerHarnessError: Error {}

/// Cuts a super-packet the way the kernel does (our Segmenter, which tests
/// elsewhere hold to the kernel's output) and returns the datagrams.
func segments(_ o: Offload, _ p: [UInt8]) -> [[UInt8]] {
    var p = p, out: [[UInt8]] = []
    let scratch = UnsafeMutableRawPointer.allocate(byteCount: 70000, alignment: 16)
    defer { scratch.deallocate() }
    p.withUnsafeMutableBytes { b in
        _ = Segmenter.packets(of: b.baseAddress!, length: b.count, offload: o, scratch: scratch) { q, n in
            out.append(Array(UnsafeRawBufferPointer(start: q, count: n)))
        }
    }
    return out
}

@Suite struct CoalescerTests {
    static let src4 = "192.0.2.128", dst4 = "203.0.113.2", src6 = "2001:db8:64::c633:6402", dst6 = "2001:db8:2::2"

    static func datagram4(_ i: Int, size: Int = 64, sport: Int = 4000, id: Int? = nil, flags: Int = 0) -> [UInt8] {
        let data = (0..<size).map { UInt8(truncatingIfNeeded: $0 &+ i) }
        return Build.ipv4(src: src4, dst: dst4, proto: 17, id: id ?? 0x100 + i, flags: flags,
                          payload: Build.udp(sport: sport, dport: 9000, data: data, src: src4, dst: dst4))
    }

    static func datagram6(_ i: Int, size: Int = 64) -> [UInt8] {
        let data = (0..<size).map { UInt8(truncatingIfNeeded: $0 &+ 3 * i) }
        return Build.ipv6(src: src6, dst: dst6, next: 17, payload: Build.udp(sport: 5000, dport: 9000, data: data, src: src6, dst: dst6))
    }

    /// Ten datagrams and a shorter last one become one super-packet, which
    /// the kernel's segmentation turns back into exactly those datagrams.
    @Test func datagramsOfOneFlowBecomeOneSuperPacketBothFamilies() throws {
        for v6 in [false, true] {
            let h = try CoalescerHarness()
            let sent = (0..<10).map { v6 ? Self.datagram6($0) : Self.datagram4($0) } + [v6 ? Self.datagram6(10, size: 20) : Self.datagram4(10, size: 20)]
            for d in sent { h.write(d) }
            let out = h.written()
            try #require(out.count == 1)
            let (o, p) = out[0]
            let ip = v6 ? 40 : 20
            #expect(o.isUDPSegmented && o.gsoSize == 64 && o.checksumPending && Int(o.checksumStart) == ip && o.checksumOffset == 6
                    && Int(o.headerLength) == ip + 8)
            #expect(p.count == ip + 8 + 10 * 64 + 20)
            // The field holds the pseudo-header sum over the whole length, as
            // the kernel expects of a checksum it is to complete per datagram.
            var pseudo = InternetChecksum()
            if v6 {
                pseudo.addPseudoHeader(source: IPv6Address(Self.src6)!, destination: IPv6Address(Self.dst6)!, nextHeader: 17, length: p.count - 40)
            } else {
                pseudo.addPseudoHeader(source: IPv4Address(Self.src4)!, destination: IPv4Address(Self.dst4)!, protocol: 17, length: p.count - 20)
                #expect(Verify.ipv4Header(p))
            }
            #expect(UInt16(p[ip + 6]) << 8 | UInt16(p[ip + 7]) == ~pseudo.value)
            #expect(segments(o, p) == sent)
            #expect(h.joiner.joined == 11 && h.joiner.superPackets == 1)
        }
    }

    /// What may not join is written as it was, in order: another flow, a
    /// larger datagram after a smaller one, a corrupt checksum, no checksum,
    /// a fragment, something that is not UDP.
    @Test func whatCannotJoinIsWrittenUnchangedAndInOrder() throws {
        let h = try CoalescerHarness()
        var corrupt = Self.datagram4(3)
        corrupt[corrupt.count - 1] ^= 0xFF
        var noChecksum = Self.datagram4(4)
        noChecksum[26] = 0
        noChecksum[27] = 0
        let sent = [
            Self.datagram4(0), Self.datagram4(1, sport: 4001), Self.datagram4(2, size: 20), Self.datagram4(5, size: 64),
            corrupt, noChecksum, Self.datagram4(6, flags: 0x2000), Build.ipv4(src: Self.src4, dst: Self.dst4, proto: 6, payload: Build.tcp(sport: 1, dport: 2, src: Self.src4, dst: Self.dst4)),
        ]
        for d in sent { h.write(d) }
        let out = h.written()
        #expect(out.map(\.1) == sent)
        #expect(out.allSatisfy { $0.0 == Offload() })
        #expect(h.joiner.joined == 0)
    }

    /// A datagram whose checksum the kernel left to complete (its field holds
    /// the pseudo-header sum) joins, and so does one the kernel vouched for.
    @Test func pendingAndVouchedChecksumsJoin() throws {
        let h = try CoalescerHarness()
        var pending = Self.datagram4(1)
        var pseudo = InternetChecksum()
        pseudo.addPseudoHeader(source: IPv4Address(Self.src4)!, destination: IPv4Address(Self.dst4)!, protocol: 17, length: pending.count - 20)
        pending[26] = UInt8(~pseudo.value >> 8)
        pending[27] = UInt8(~pseudo.value & 0xFF)
        var partial = Offload()
        partial.flags = Offload.needsChecksum
        partial.checksumStart = 20
        partial.checksumOffset = 6
        var vouched = Self.datagram4(2)
        vouched[27] ^= 0x55  // wrong, but the kernel said it verified it
        var valid = Offload()
        valid.flags = Offload.dataValid
        h.write(Self.datagram4(0))
        h.write(pending, offload: partial)
        h.write(vouched, offload: valid)
        let out = h.written()
        try #require(out.count == 1)
        #expect(segments(out[0].0, out[0].1).count == 3 && h.joiner.joined == 3)
    }

    /// At most `maxSegments` datagrams go into one super-packet.
    @Test func superPacketsAreBounded() throws {
        let h = try CoalescerHarness()
        let sent = (0..<(Coalescer.maxSegments + 6)).map { Self.datagram4($0) }
        for d in sent { h.write(d) }
        let out = h.written()
        #expect(out.count == 2)
        #expect(out.flatMap { segments($0.0, $0.1) } == sent)
    }
}
