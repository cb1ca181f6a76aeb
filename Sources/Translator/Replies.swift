import Packet

/// ICMP errors the translator originates, built in place in front of the
/// packet that caused them (which they quote), within the headroom.
extension Engine {
    /// An ICMPv6 error to `destination`, quoting the packet at `base + start`.
    func replyFromTranslator6(_ base: UnsafeMutableRawPointer, start: Int, length: Int, to destination: IPv6Address,
                              type: UInt8, code: UInt8, field: UInt32, kind: SentError, now: UInt64,
                              dropping reason: DropReason = .hopLimitExceeded) -> Outcome {
        let drop: DropReason = kind == .timeExceeded6 ? .hopLimitExceeded : reason
        // Never answer an error with an error, nor anything from the unspecified
        // address or to multicast (RFC 4443 §2.4 e).
        let p = base + start
        if destination == IPv6Address(high: 0, low: 0) { return .drop(drop) }
        if let h = Self.parse6(p, total: length), h.nextHeader == Proto.icmpv6, h.upper < length, p.u8(h.upper) < 128 { return .drop(drop) }
        guard mayReply(kind, now: now) else { return .drop(.rateLimited) }
        count(.drop(drop))
        // RFC 4443 §2.4 c: as much of the packet as fits in the minimum MTU.
        let quoted = min(length, 1280 - 48)
        let out = start - 48
        let q = base + out
        Header.ipv6(q, trafficClass: 0, payloadLength: 8 + quoted, next: Proto.icmpv6, hopLimit: 64,
                    source: settings.errorSource6, destination: destination)
        q.setU8(40, type)
        q.setU8(41, code)
        q.setU16(42, 0)
        q.setU32(44, field)
        var c = InternetChecksum()
        c.addPseudoHeader(source: settings.errorSource6, destination: destination, nextHeader: Proto.icmpv6, length: 8 + quoted)
        c.add(q, offset: 40, count: 8 + quoted)
        q.setU16(42, c.value)
        return .reply(start: out, length: 48 + quoted)
    }

    /// An ICMPv4 error to `destination`, quoting the packet at `base + start`.
    func replyFromTranslator4(_ base: UnsafeMutableRawPointer, start: Int, length: Int, to destination: IPv4Address,
                              type: UInt8, code: UInt8, field: UInt32, kind: SentError, now: UInt64, dropping reason: DropReason) -> Outcome {
        let p = base + start
        let ihl = Int(p.u8(0) & 0x0F) * 4
        // RFC 1812 §4.3.2.7: no error about an error, a non-first fragment, or
        // a packet from or to a broadcast, multicast or unspecified address.
        let informational = ihl < length && [0, 8, 13, 14, 15, 16, 17, 18].contains(p.u8(ihl))
        if p.u8(9) == Proto.icmp, !informational { return .drop(reason) }
        if p.u16(6) & 0x1FFF != 0 { return .drop(reason) }
        let from = p.ipv4(12), to = p.ipv4(16)
        for a in [from, to] where a.rawValue == 0 || a.rawValue == .max || a.rawValue >> 28 == 0xE { return .drop(reason) }
        guard mayReply(kind, now: now) else { return .drop(.rateLimited) }
        count(.drop(reason))
        // RFC 1812 §4.3.2.3: as much as fits in 576 bytes.
        let quoted = min(length, 576 - 28)
        let out = start - 28
        let q = base + out
        Header.ipv4(q, tos: 0, totalLength: 28 + quoted, id: nextIdentification(), flags: 0, ttl: 64, proto: Proto.icmp,
                    source: settings.errorSource4, destination: destination)
        q.setU8(20, type)
        q.setU8(21, code)
        q.setU16(22, 0)
        q.setU32(24, field)
        var c = InternetChecksum()
        c.add(q, offset: 20, count: 8 + quoted)
        q.setU16(22, c.value)
        return .reply(start: out, length: 28 + quoted)
    }
}
