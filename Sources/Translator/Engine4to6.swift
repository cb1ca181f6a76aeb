import Packet

/// IPv4 -> IPv6 (RFC 7915 §4).
extension Engine {
    /// `hairpin`: the IPv6 destination of a hairpinned packet, whose prefix
    /// its source goes into. RFC 7757 §4.2: that source is the algorithmic
    /// one (RFC 6052), never an explicit mapping's, and the hop limit, which
    /// the IPv6 side has checked and counted down already, is not again.
    func translate4to6(_ base: UnsafeMutableRawPointer, start: Int, length: Int, now: UInt64, hairpin: Mapped4? = nil) -> Outcome {
        let p = base + start
        guard length >= 20 else { return .drop(.malformed) }
        let ihl = Int(p.u8(0) & 0x0F) * 4
        let total = Int(p.u16(2))
        guard ihl >= 20, total >= ihl, total <= length else { return .drop(.malformed) }
        var hc = InternetChecksum()
        hc.add(p, offset: 0, count: ihl)
        guard hc.value == 0 else { return .drop(.badChecksum) }

        // Everything needed from the IPv4 header is read now: the ICMP translation
        // below may write its new headers over it.
        let ttl = p.u8(8), proto = p.u8(9), tos = p.u8(1), identification = UInt32(p.u16(4))
        let flags = p.u16(6)
        let more = flags & 0x2000 != 0, offset = (flags & 0x1FFF) << 3
        let isFragment = more || offset != 0
        let src4 = p.ipv4(12), dst4 = p.ipv4(16)

        // RFC 7915 §4.1: an unexpired source route cannot be honoured across the
        // translation; the sender is told (source route failed).
        if ihl > 20, Self.hasUnexpiredSourceRoute(p, headerLength: ihl) {
            return replyFromTranslator4(base, start: start, length: total, to: src4, type: 3, code: 5, field: 0,
                                        kind: .unreachable4, now: now, dropping: .sourceRoute)
        }
        if hairpin == nil, ttl <= 1 {
            return replyFromTranslator4(base, start: start, length: total, to: src4, type: 11, code: 0, field: 0,
                                        kind: .timeExceeded4, now: now, dropping: .ttlExceeded)
        }
        guard let dst6 = destination6(dst4, now: now) else {
            return replyFromTranslator4(base, start: start, length: total, to: src4, type: 3, code: 1, field: 0,
                                        kind: .unreachable4, now: now, dropping: .untranslatableDestination)
        }
        // During a renumbering, the source goes into the prefix its flow keeps.
        var prefix = settings.prefix
        var retiring = false
        if let hairpin, let via = hairpin.prefix {
            prefix = via
            retiring = isRetiring(hairpin)
        } else if now < transitionEnd {
            prefix = prefix4to6(p, ihl: ihl, total: total, proto: proto, offset: offset, more: more, now: now)
            retiring = prefix != settings.prefix
        }
        let src6: IPv6Address
        switch source6(src4, in: prefix, throughMappings: hairpin == nil) {
        case .success(let a): src6 = a
        case .failure(let r): return .drop(r)
        }

        var upper = ihl
        var upperLength = total - ihl
        var nextHeader = proto
        switch proto {
        case Proto.tcp, Proto.udp:
            if offset == 0 {
                let at = proto == Proto.tcp ? 16 : 6
                guard upperLength >= at + 2 else { return .drop(.malformed) }
                let old = p.u16(ihl + at)
                let pending = offload.checksumPending && Int(offload.checksumStart) == ihl
                if proto == Proto.udp, old == 0, !pending {
                    // IPv6 forbids a zero UDP checksum (RFC 7915 §4.5).
                    guard settings.zeroChecksum == .compute, !isFragment else { return .drop(.zeroUDPChecksum) }
                    var c = InternetChecksum()
                    c.addPseudoHeader(source: src6, destination: dst6, nextHeader: Proto.udp, length: upperLength)
                    c.add(p, offset: ihl, count: upperLength)
                    let v = c.value
                    p.setU16(ihl + at, v == 0 ? 0xFFFF : v)
                } else {
                    updateChecksum(p, at: ihl + at, udp: proto == Proto.udp, pending: pending,
                                   removing: (IPv6Address(v4: src4), IPv6Address(v4: dst4)), adding: (src6, dst6))
                }
            }
        case Proto.icmp:
            guard !isFragment else { return .drop(.fragmentedICMP) }
            nextHeader = Proto.icmpv6
            switch icmp4to6(p, at: ihl, length: upperLength, source: src6, destination: dst6, prefix: prefix, now: now) {
            case .success(let (s, l)):
                upper = s
                upperLength = l
            case .failure(let r): return .drop(r)
            }
        default:
            break
        }

        let df = flags & 0x4000 != 0
        // RFC 7915 §4: a packet IPv4 may fragment (DF clear, or already a
        // fragment) must not make an IPv6 packet above lowest-ipv6-mtu; such
        // packets get a fragment header and are split below.
        // A fragment whose end lies past 65535 can never be reassembled.
        guard Int(offset) + upperLength <= 65535 else { return .drop(.malformed) }
        let split = !df && (isFragment ? 48 : 40) + upperLength > settings.lowestIPv6MTU
            && !offload.isSegmented && !offload.checksumPending
        let withFragmentHeader = isFragment || split
        let headerLength = withFragmentHeader ? 48 : 40
        let out = upper - headerLength
        guard start + out >= 0 else { return .drop(.malformed) }
        let q = p + out
        Header.ipv6(q, trafficClass: tos, payloadLength: upperLength + headerLength - 40, next: nextHeader, hopLimit: hairpin == nil ? ttl - 1 : ttl,
                    source: src6, destination: dst6, fragment: withFragmentHeader ? (offset, more, identification) : nil)
        offload.moved(from: upper, to: headerLength, toIPv6: true)
        if split {
            offload = Offload()
            return counted(false, fragment(base, start: start + out, payload: upperLength, offset: Int(offset), more: more), retiring: retiring)
        }
        return counted(false, .forward(start: start + out, length: headerLength + upperLength), retiring: retiring)
    }

    /// Walks the IPv4 options for LSRR (131) or SSRR (137) with addresses left.
    static func hasUnexpiredSourceRoute(_ p: UnsafeMutableRawPointer, headerLength: Int) -> Bool {
        var i = 20
        while i < headerLength {
            let type = p.u8(i)
            if type == 0 { return false }
            if type == 1 { i += 1; continue }
            guard i + 1 < headerLength else { return false }
            let len = Int(p.u8(i + 1))
            guard len >= 2 else { return false }
            if type == 131 || type == 137, i + 2 < headerLength, Int(p.u8(i + 2)) <= len { return true }
            i += len
        }
        return false
    }

    /// The IPv6 packet at `base + start` (48-byte header with fragment
    /// header, then `payload` bytes) as fragments of at most lowest-ipv6-mtu.
    func fragment(_ base: UnsafeMutableRawPointer, start: Int, payload: Int, offset: Int, more: Bool) -> Outcome {
        fragmentHeader.copyMemory(from: base + start, byteCount: 48)
        return .fragments(Fragments(template: fragmentHeader, start: start, payload: payload, offset: offset, more: more,
                                    chunk: (settings.lowestIPv6MTU - 48) & ~7))
    }

    /// Translates the ICMPv4 message at `p + at` into ICMPv6, in place; an
    /// error's inner IPv4 packet becomes an IPv6 packet, 20 bytes longer, so the
    /// message moves 20 bytes towards the front. The quoted destination goes
    /// into `prefix`, as the outer source does.
    func icmp4to6(_ p: UnsafeMutableRawPointer, at: Int, length: Int, source: IPv6Address, destination: IPv6Address,
                  prefix: NAT64Prefix, now: UInt64) -> Result<(Int, Int), DropReason> {
        guard length >= 8 else { return .failure(.malformed) }
        // The checksum is recomputed below: a corrupt message must not leave valid.
        var check = InternetChecksum()
        check.add(p, offset: at, count: length)
        guard check.value == 0 else { return .failure(.badChecksum) }
        let type = p.u8(at), code = p.u8(at + 1)
        guard let m = ICMPMap.to6(type: type, code: code) else { return .failure(.unsupportedICMP) }
        var start = at, len = length
        var rest = p.u32(at + 4)
        let isError = type != 0 && type != 8
        // RFC 4884: the length of the original datagram field, in 32-bit words,
        // in the errors that may carry extensions after it.
        let declared4 = type == 3 || type == 11 || type == 12 ? Int(p.u8(at + 5)) * 4 : 0
        if isError {
            let inner = at + 8
            guard len - 8 >= 20 else { return .failure(.malformed) }
            let ip = p + inner
            let iihl = Int(ip.u8(0) & 0x0F) * 4
            guard iihl >= 20, iihl <= len - 8 else { return .failure(.malformed) }
            let itotal = Int(ip.u16(2))
            let isrc = ip.ipv4(12), idst = ip.ipv4(16), iproto = ip.u8(9)
            // The quoted packet went from us to the IPv4 side: its source maps back
            // to an IPv6 host, its destination into the prefix.
            guard let isrc6 = destination6(isrc, now: now), case .success(let idst6) = source6(idst, in: prefix) else { return .failure(.untranslatableSource) }
            switch (type, code) {
            case (3, 4):
                // Fragmentation Needed -> Packet Too Big: 20 more for the bigger header,
                // a plateau when the router reported none, never below 1280.
                var mtu = Int(rest & 0xFFFF)
                if mtu == 0 { mtu = ICMPMap.plateau(below: itotal) }
                rest = UInt32(max(1280, min(mtu + 20, settings.mtu)))
            case (12, _):
                guard let ptr = ICMPMap.pointer4to6(UInt8(rest >> 24)) else { return .failure(.unsupportedICMP) }
                rest = ptr
            default:
                rest = m.pointer ?? 0
            }
            let iflags = ip.u16(6)
            let imore = iflags & 0x2000 != 0, ioffset = (iflags & 0x1FFF) << 3
            let ifrag = imore || ioffset != 0
            if iproto == Proto.tcp || iproto == Proto.udp, ioffset == 0 {
                let ck = iihl + (iproto == Proto.tcp ? 16 : 6)
                if ck + 2 <= len - 8 {
                    let old = ip.u16(ck)
                    if !(iproto == Proto.udp && old == 0) {
                        updateChecksum(ip, at: ck, udp: iproto == Proto.udp, pending: false,
                                       removing: (IPv6Address(v4: isrc), IPv6Address(v4: idst)), adding: (isrc6, idst6))
                    }
                }
            } else if iproto == Proto.icmp, iihl + 4 <= len - 8 {
                let t = ip.u8(iihl)
                if t == 0 || t == 8, let im = ICMPMap.to6(type: t, code: ip.u8(iihl + 1)) {
                    let old = ip.u16(iihl)
                    ip.setU8(iihl, im.type)
                    ip.setU16(iihl + 2, Self.quotedEchoChecksum(ip.u16(iihl + 2), oldWord: old, newWord: ip.u16(iihl), source: isrc6, destination: idst6,
                                                                length: max(0, itotal - iihl), toIPv6: true))
                }
            }
            let ih = ifrag ? 48 : 40
            let q = ip + iihl - ih
            let ittl = ip.u8(8), itos = ip.u8(1), iid = ip.u16(4)
            let inext = iproto == Proto.icmp ? Proto.icmpv6 : iproto
            Header.ipv6(q, trafficClass: itos, payloadLength: max(0, itotal - iihl) + ih - 40, next: inext, hopLimit: ittl,
                        source: isrc6, destination: idst6, fragment: ifrag ? (ioffset, imore, UInt32(iid)) : nil)
            // RFC 4443 §2.4 c: the whole error within 1280 bytes; an extension
            // goes along when Destination Unreachable or Time Exceeded has room.
            let declared = declared4 >= iihl && 8 + declared4 < len
            let carried = Self.carryExtension(p + at, start: iihl - ih, datagram: (declared ? declared4 : len - 8) - iihl + ih, end: len,
                                              declared: declared, carries: m.type == 1 || m.type == 3, unit: 8, limit: 1280 - 40)
            start = at + carried.start
            len = carried.length
            if m.type == 1 || m.type == 3 { rest = UInt32(carried.field) << 24 }
        } else {
            rest = p.u32(at + 4)
        }
        let q = p + start
        q.setU8(0, m.type)
        q.setU8(1, m.code)
        q.setU16(2, 0)
        q.setU32(4, rest)
        var c = InternetChecksum()
        c.addPseudoHeader(source: source, destination: destination, nextHeader: Proto.icmpv6, length: len)
        c.add(q, offset: 0, count: len)
        q.setU16(2, c.value)
        return .success((start, len))
    }
}
