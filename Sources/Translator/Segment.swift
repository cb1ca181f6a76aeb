import Packet

extension Engine {
    /// Whether the IPv4 UDP super-packet at `p` must be cut into datagrams
    /// before translation: its datagrams may be fragmented (DF clear) and, as
    /// IPv6, would not fit lowest-ipv6-mtu. Only a plain packet can be split
    /// into IPv6 fragments here; the kernel would drop the segments instead.
    public func mustSegment(_ p: UnsafeMutableRawPointer, length: Int, offload: Offload) -> Bool {
        offload.isUDPSegmented && length >= 28 && p.u8(0) >> 4 == 4 && p.u8(9) == Proto.udp && p.u16(6) & 0x4000 == 0
            && 48 + 8 + Int(offload.gsoSize) > settings.lowestIPv6MTU
    }
}
