import Packet

/// Cuts the super-packets a TUN queue with offloads hands over (TCP or UDP,
/// IPv4 or IPv6) into the packets the kernel would have made of them, each
/// with its own lengths, IPv4 ID, TCP sequence number and full checksums,
/// and completes checksums left pending. For the paths that cannot pass a
/// super-packet on whole: 6bed4 frames carry one IPv6 packet of at most 1280
/// bytes, and the translator must split some IPv4 datagrams into fragments.
public enum Segmenter {
    /// Completes a checksum the kernel left pending: the sum from `start` to
    /// the end, over the pseudo-header sum already in the field.
    public static func completeChecksum(_ p: UnsafeMutableRawPointer, length: Int, start: Int, offset: Int) {
        guard start + offset + 2 <= length else { return }
        var c = InternetChecksum()
        c.add(UnsafeRawBufferPointer(start: p + start, count: length - start))
        p.setU16(start + offset, c.value)
    }

    /// Calls `body` with each packet of the packet at `p` (`length` bytes,
    /// `o` its offload header): for a super-packet, packets of at most
    /// `maxLength` bytes built one after the other at `scratch` (which holds
    /// `maxLength`); otherwise the packet itself, its checksum completed.
    /// Returns false for what cannot be cut (no TCP or UDP right after the
    /// IP header, or a type that does not match it).
    @discardableResult
    public static func packets(of p: UnsafeMutableRawPointer, length: Int, offload o: Offload, maxLength: Int = 65535,
                               scratch: UnsafeMutableRawPointer, _ body: (UnsafeMutableRawPointer, Int) -> Void) -> Bool {
        guard o.isSegmented else {
            if o.checksumPending { completeChecksum(p, length: length, start: Int(o.checksumStart), offset: Int(o.checksumOffset)) }
            body(p, length)
            return true
        }
        guard length >= 28, o.gsoSize > 0 else { return false }
        let v4 = p.u8(0) >> 4 == 4
        let ip = v4 ? Int(p.u8(0) & 0xF) * 4 : 40
        guard ip >= 20, length >= ip + 8 else { return false }
        let proto = p.u8(v4 ? 9 : 6)
        let header: Int
        switch proto {
        case 6 where !o.isUDPSegmented: header = ip + Int(p.u8(ip + 12) >> 4) * 4
        case 17 where o.isUDPSegmented: header = ip + 8
        default: return false
        }
        let mss = min(Int(o.gsoSize), maxLength - header)
        guard header < length, mss > 0 else { return false }
        let seq = proto == 6 ? p.u32(ip + 4) : 0, flags = proto == 6 ? p.u8(ip + 13) : 0, id = v4 ? p.u16(4) : 0
        var at = header, k: UInt16 = 0
        while at < length {
            let n = min(mss, length - at)
            scratch.copyMemory(from: p, byteCount: header)
            (scratch + header).copyMemory(from: p + at, byteCount: n)
            var c = InternetChecksum()
            if v4 {
                scratch.setU16(2, UInt16(header + n))
                scratch.setU16(4, id &+ k)
                scratch.setU16(10, 0)
                var h = InternetChecksum()
                h.add(UnsafeRawBufferPointer(start: scratch, count: ip))
                scratch.setU16(10, h.value)
                c.addPseudoHeader(source: scratch.ipv4(12), destination: scratch.ipv4(16), protocol: proto, length: header - ip + n)
            } else {
                scratch.setU16(4, UInt16(header - 40 + n))
                c.addPseudoHeader(source: scratch.ipv6(8), destination: scratch.ipv6(24), nextHeader: proto, length: header - 40 + n)
            }
            let checksumAt: Int
            if proto == 6 {
                scratch.setU32(ip + 4, seq &+ UInt32(at - header))
                // FIN and PSH belong to the last segment, CWR to the first.
                var f = flags
                if at + n < length { f &= ~0x09 }
                if at > header { f &= ~0x80 }
                scratch.setU8(ip + 13, f)
                checksumAt = ip + 16
            } else {
                scratch.setU16(ip + 4, UInt16(8 + n))
                checksumAt = ip + 6
            }
            scratch.setU16(checksumAt, 0)
            c.add(UnsafeRawBufferPointer(start: scratch + ip, count: header - ip + n))
            let v = c.value
            scratch.setU16(checksumAt, proto == 17 && v == 0 ? 0xFFFF : v)
            body(scratch, header + n)
            at += n
            k &+= 1
        }
        return true
    }
}
