import Tun
import Packet

extension Engine {
    /// Whether the IPv4 UDP super-packet at `p` must be cut into datagrams
    /// before translation: its datagrams may be fragmented (DF clear) and, as
    /// IPv6, would not fit lowest-ipv6-mtu. Only a plain packet can be split
    /// into IPv6 fragments here; the kernel would drop the segments instead.
    public func mustSegment(_ p: UnsafeMutableRawPointer, length: Int) -> Bool {
        offload.isUDPSegmented && length >= 28 && p.u8(0) >> 4 == 4 && p.u8(9) == Proto.udp && p.u16(6) & 0x4000 == 0
            && 48 + 8 + Int(offload.gsoSize) > settings.lowestIPv6MTU
    }

    /// Cuts the IPv4 UDP super-packet of `length` bytes at `p` into its
    /// datagrams of `gsoSize` payload bytes, as the kernel would: each is
    /// written at `out` (header copied, own length, ID and checksums) and
    /// handed to `body` with its length before the next is written.
    public static func segmentUDP4(_ p: UnsafeMutableRawPointer, length: Int, gsoSize: Int,
                                   into out: UnsafeMutableRawPointer, _ body: (Int) -> Void) {
        let ihl = Int(p.u8(0) & 0xF) * 4
        let total = min(length, Int(p.u16(2)))
        guard gsoSize > 0, ihl >= 20, total >= ihl + 8 else { return }
        let id = p.u16(4)
        var at = ihl + 8, k: UInt16 = 0
        while at < total {
            let n = min(gsoSize, total - at)
            out.copyMemory(from: p, byteCount: ihl + 8)
            (out + ihl + 8).copyMemory(from: p + at, byteCount: n)
            out.setU16(2, UInt16(ihl + 8 + n))
            out.setU16(4, id &+ k)
            out.setU16(10, 0)
            var h = InternetChecksum()
            h.add(out, offset: 0, count: ihl)
            out.setU16(10, h.value)
            out.setU16(ihl + 4, UInt16(8 + n))
            out.setU16(ihl + 6, 0)
            var c = InternetChecksum()
            c.addPseudoHeader(source: out.ipv4(12), destination: out.ipv4(16), protocol: Proto.udp, length: 8 + n)
            c.add(out, offset: ihl, count: 8 + n)
            let v = c.value
            out.setU16(ihl + 6, v == 0 ? 0xFFFF : v)
            body(ihl + 8 + n)
            at += n
            k &+= 1
        }
    }
}
