import Glibc
import Packet

/// Joins consecutive UDP datagrams of one flow, on their way into a TUN queue,
/// into one UDP super-packet (USO, Linux 6.2+): the kernel then routes,
/// filters and NATs them once and cuts them only where they are delivered.
/// This is GRO done in userspace, as wireguard-go does before its TUN writes;
/// a reader that drains a burst of small datagrams writes a handful of
/// packets instead of one per datagram. Anything that cannot join is written
/// as it is, after what is pending, so the order of packets is kept.
///
/// One per reader thread; the buffer is allocated once.
public final class Coalescer {
    /// The kernel takes at most 128 segments per UDP super-packet; fewer keep
    /// the burst that one write delays short.
    public static let maxSegments = 64

    private let buffer: UnsafeMutableRawPointer  // offload header, then the packet
    private var length = 0  // of the packet after the header; 0 when nothing is pending
    private var first = Offload()  // the first datagram's own header, for when none joins it
    private var count = 0
    private var segment = 0  // payload bytes of each datagram but the last
    private var ip = 0  // IP header length: 20 or 40
    private var closed = false  // a shorter datagram ended the super-packet
    private var queue: TunQueue?
    /// Datagrams that went out inside a super-packet, and the super-packets.
    public private(set) var joined = 0, superPackets = 0

    public init() {
        buffer = .allocate(byteCount: Offload.size + 65535, alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// Writes the packet at `p` (with `Offload.size` writable bytes in front
    /// of it) to `q`, or keeps a copy to join the next datagrams of its flow.
    public func write(_ p: UnsafeMutableRawPointer, length n: Int, offload o: Offload, to q: TunQueue) {
        guard let h = Self.joinable(p, length: n, offload: o) else {
            flush()
            o.write(to: p - Offload.size)
            q.write(p - Offload.size, length: n + Offload.size)
            return
        }
        let payload = n - h - 8
        if length > 0, canJoin(p, header: h, payload: payload, queue: q) {
            (buffer + Offload.size + length).copyMemory(from: p + h + 8, byteCount: payload)
            length += payload
            count += 1
            closed = payload < segment
            return
        }
        flush()
        (buffer + Offload.size).copyMemory(from: p, byteCount: n)
        length = n
        first = o
        count = 1
        segment = payload
        ip = h
        closed = false
        queue = q
    }

    /// Writes what is pending. Call it when a burst of reads ends.
    public func flush() {
        guard length > 0, let q = queue else { return }
        let p = buffer + Offload.size
        if count > 1 {
            var pseudo = InternetChecksum()
            if ip == 20 {
                p.setU16(2, UInt16(length))
                p.setU16(10, 0)
                var h = InternetChecksum()
                h.add(UnsafeRawBufferPointer(start: p, count: 20))
                p.setU16(10, h.value)
                pseudo.addPseudoHeader(source: p.ipv4(12), destination: p.ipv4(16), protocol: 17, length: length - 20)
            } else {
                p.setU16(4, UInt16(length - 40))
                pseudo.addPseudoHeader(source: p.ipv6(8), destination: p.ipv6(24), nextHeader: 17, length: length - 40)
            }
            p.setU16(ip + 4, UInt16(truncatingIfNeeded: length - ip))
            // What the kernel expects of a checksum it is to complete: the
            // pseudo-header sum, not its complement.
            p.setU16(ip + 6, ~pseudo.value)
            var o = Offload()
            o.flags = Offload.needsChecksum
            o.gsoType = Offload.udpL4
            o.headerLength = UInt16(ip + 8)
            o.gsoSize = UInt16(segment)
            o.checksumStart = UInt16(ip)
            o.checksumOffset = 6
            o.write(to: buffer)
            joined += count
            superPackets += 1
        } else {
            first.write(to: buffer)
        }
        q.write(buffer, length: Offload.size + length)
        length = 0
        queue = nil
    }

    private func canJoin(_ p: UnsafeMutableRawPointer, header h: Int, payload: Int, queue q: TunQueue) -> Bool {
        guard !closed, count < Self.maxSegments, queue?.fd == q.fd, h == ip, payload > 0, payload <= segment,
              length + payload <= 65535 else { return false }
        let b = buffer + Offload.size
        // Everything but the lengths, IPv4 ID and checksums must be equal:
        // the kernel copies the first header into every datagram.
        func same(_ at: Int, _ count: Int) -> Bool { memcmp(b + at, p + at, count) == 0 }
        return h == 20 ? same(0, 2) && same(6, 4) && same(12, 12) : same(0, 4) && same(6, 38)
    }

    /// The IP header length of a datagram that may join a super-packet: UDP
    /// right after a plain IPv4 or IPv6 header, not a fragment, with a
    /// payload, lengths that agree, and a checksum that is either left to the
    /// kernel, vouched for by it, or verified here: the kernel computes every
    /// datagram's checksum anew, which must not make a corrupt one whole.
    static func joinable(_ p: UnsafeMutableRawPointer, length n: Int, offload o: Offload) -> Int? {
        guard !o.isSegmented, n >= 29 else { return nil }
        let h: Int
        var sum = InternetChecksum()
        switch p.u8(0) {
        case 0x45:
            // No zero checksum: that datagram chose to carry none.
            guard p.u8(9) == 17, p.u16(6) & 0x3FFF == 0, Int(p.u16(2)) == n, p.u16(26) != 0 else { return nil }
            h = 20
            sum.addPseudoHeader(source: p.ipv4(12), destination: p.ipv4(16), protocol: 17, length: n - 20)
        case 0x60...0x6F:
            guard n >= 49, p.u8(6) == 17, Int(p.u16(4)) == n - 40 else { return nil }
            h = 40
            sum.addPseudoHeader(source: p.ipv6(8), destination: p.ipv6(24), nextHeader: 17, length: n - 40)
        default:
            return nil
        }
        guard Int(p.u16(h + 4)) == n - h else { return nil }
        if o.checksumPending { return o.checksumStart == h && o.checksumOffset == 6 ? h : nil }
        if o.flags & Offload.dataValid != 0 { return h }
        sum.add(UnsafeRawBufferPointer(start: p + h, count: n - h))
        return sum.value == 0 ? h : nil
    }
}
