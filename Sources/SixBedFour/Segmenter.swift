import Packet
import Tun

/// What the peer does with the kernel's offloads (IFF_VNET_HDR): the local
/// stack hands over TCP and UDP super-packets up to 64 KiB and leaves
/// checksums to complete, so that one read carries many packets. 6bed4 frames
/// carry plain IPv6 packets of at most 1280 bytes, so here they are cut as
/// the kernel would cut them, and their checksums finished.
public enum Segmenter {
    /// Completes a checksum the kernel left pending: the sum from `start` to
    /// the end, over the pseudo-header sum already in the field.
    public static func completeChecksum(_ p: UnsafeMutableRawPointer, length: Int, start: Int, offset: Int) {
        guard start + offset + 2 <= length else { return }
        var c = InternetChecksum()
        c.add(UnsafeRawBufferPointer(start: p + start, count: length - start))
        p.setU16(start + offset, c.value)
    }

    /// Calls `body` with each packet of the IPv6 packet at `p` (`length`
    /// bytes, `o` its offload header), built in `scratch` (1280 bytes) when
    /// the packet is a super-packet, or the packet itself otherwise. Returns
    /// false for what cannot be cut (no TCP or UDP right after the header).
    @discardableResult
    public static func packets(of p: UnsafeMutableRawPointer, length: Int, offload o: Offload, scratch: UnsafeMutableRawPointer,
                               _ body: (UnsafeMutableRawPointer, Int) -> Void) -> Bool {
        guard o.isSegmented else {
            if o.checksumPending { completeChecksum(p, length: length, start: Int(o.checksumStart), offset: Int(o.checksumOffset)) }
            body(p, length)
            return true
        }
        guard length >= 48, p.u8(0) >> 4 == 6, o.gsoSize > 0 else { return false }
        let next = p.u8(6)
        let header: Int
        switch next {
        case 6 where !o.isUDPSegmented: header = 40 + Int(p.u8(52) >> 4) * 4
        case 17 where o.isUDPSegmented: header = 48
        default: return false
        }
        let mss = min(Int(o.gsoSize), 1280 - header)
        guard header < length, mss > 0 else { return false }
        let src = p.ipv6(8), dst = p.ipv6(24)
        let seq = next == 6 ? p.u32(44) : 0
        let flags = next == 6 ? p.u8(53) : 0
        var at = header
        while at < length {
            let n = min(mss, length - at)
            scratch.copyMemory(from: p, byteCount: header)
            (scratch + header).copyMemory(from: p + at, byteCount: n)
            scratch.setU16(4, UInt16(header - 40 + n))
            let checksumAt: Int
            if next == 6 {
                scratch.setU32(44, seq &+ UInt32(at - header))
                // FIN and PSH belong to the last segment, CWR to the first.
                var f = flags
                if at + n < length { f &= ~0x09 }
                if at > header { f &= ~0x80 }
                scratch.setU8(53, f)
                checksumAt = 56
            } else {
                scratch.setU16(44, UInt16(8 + n))
                checksumAt = 46
            }
            scratch.setU16(checksumAt, 0)
            var c = InternetChecksum()
            c.addPseudoHeader(source: src, destination: dst, nextHeader: next, length: header - 40 + n)
            c.add(UnsafeRawBufferPointer(start: scratch + 40, count: header - 40 + n))
            let v = c.value
            scratch.setU16(checksumAt, next == 17 && v == 0 ? 0xFFFF : v)
            body(scratch, header + n)
            at += n
        }
        return true
    }
}
