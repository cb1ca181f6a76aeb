import Packet

/// IPv6 -> IPv4 (RFC 7915 §5).
extension Engine {
    /// The parts of an IPv6 packet translation needs: where the upper-layer
    /// header starts, its protocol, and the fragment header if there is one.
    struct IPv6Parse {
        var upper: Int
        var nextHeader: UInt8
        /// An atomic fragment (offset 0, M clear) has none: RFC 6946 makes it
        /// a whole packet, translated as one (ICMPv6 included).
        var fragment: (offset: UInt16, more: Bool, id: UInt32)?
        /// Whether a Fragment header, atomic or not, goes with the translation.
        var fragmentHeader = false
        /// Offset of a routing header's Segments Left field when it is not zero.
        var segmentsLeftAt: Int?
        /// A first fragment that ends before its upper-layer header does.
        var incompleteChain = false
    }

    /// Walks the extension headers of the packet at `p` of `total` bytes.
    /// With `wholeChain`, a first fragment whose header chain ends past it
    /// (the upper-layer header in a later fragment) comes back flagged as
    /// `incompleteChain` rather than as nil (RFC 7112).
    static func parse6(_ p: UnsafeMutableRawPointer, total: Int, wholeChain: Bool = false) -> IPv6Parse? {
        var nh = p.u8(6), off = 40
        var frag: (UInt16, Bool, UInt32)?
        var fragmentHeader = false
        var segmentsLeft: Int?
        func incomplete() -> IPv6Parse? {
            guard wholeChain, let f = frag, f.0 == 0 else { return nil }
            return IPv6Parse(upper: min(off, total), nextHeader: nh, fragment: frag, fragmentHeader: true, segmentsLeftAt: segmentsLeft, incompleteChain: true)
        }
        while true {
            switch nh {
            case Proto.hopByHop, Proto.destinationOptions, Proto.routing:
                guard off + 8 <= total else { return incomplete() }
                if nh == Proto.routing, p.u8(off + 3) != 0 { segmentsLeft = off + 3 }
                nh = p.u8(off)
                off += (Int(p.u8(off + 1)) + 1) * 8
            case Proto.fragment:
                guard off + 8 <= total, !fragmentHeader else { return nil }
                fragmentHeader = true
                let field = p.u16(off + 2)
                if field & 0xFFF9 != 0 { frag = (field & 0xFFF8, field & 1 == 1, p.u32(off + 4)) }
                nh = p.u8(off)
                off += 8
            default:
                let minimum = nh == Proto.tcp ? 20 : nh == Proto.udp ? 8 : nh == Proto.icmpv6 ? 4 : 0
                if off + minimum > total, let flagged = incomplete() { return flagged }
                guard off <= total else { return nil }
                return IPv6Parse(upper: off, nextHeader: nh, fragment: frag, fragmentHeader: fragmentHeader, segmentsLeftAt: segmentsLeft)
            }
        }
    }

    func translate6to4(_ base: UnsafeMutableRawPointer, start: Int, length: Int, now: UInt64) -> Outcome {
        let p = base + start
        guard length >= 40 else { return .drop(.malformed) }
        let total = 40 + Int(p.u16(4))
        guard total <= length, let h = Self.parse6(p, total: total, wholeChain: true) else { return .drop(.malformed) }
        let src6 = p.ipv6(8), dst6 = p.ipv6(24)
        let hop = p.u8(7)

        // Multicast (MLD reports of the kernel on the device, say) is never
        // translated, and never answered.
        if dst6.high >> 56 == 0xFF || src6.high >> 56 == 0xFF { return .drop(.untranslatableDestination) }
        if hop <= 1 {
            return replyFromTranslator6(base, start: start, length: total, to: src6, type: 3, code: 0, field: 0, kind: .timeExceeded6, now: now)
        }
        if h.incompleteChain {
            // RFC 7112 §5: the upper-layer header is not in the first fragment,
            // so no fragment could be translated whole; Parameter Problem,
            // code 3, pointer 0. Never a partial IPv4 fragment with a hole.
            return replyFromTranslator6(base, start: start, length: total, to: src6, type: 4, code: 3, field: 0, kind: .parameterProblem6, now: now,
                                        dropping: .incompleteHeaderChain)
        }
        if let at = h.segmentsLeftAt {
            // RFC 7915 §5.1: a routing header with segments left is answered with a
            // parameter problem pointing at that field, as a router would.
            return replyFromTranslator6(base, start: start, length: total, to: src6, type: 4, code: 0, field: UInt32(at), kind: .parameterProblem6, now: now,
                                        dropping: .routingHeader)
        }
        let dst: Mapped4
        switch destination4(dst6, now: now) {
        case .success(let m): dst = m
        case .failure(let r):
            return replyFromTranslator6(base, start: start, length: total, to: src6, type: 1, code: 0, field: 0, kind: .unreachable6, now: now, dropping: r)
        }
        let dst4 = dst.address
        var src4: IPv4Address
        var sourceRetiring = false
        switch source4(src6, now: now) {
        case .success(let m):
            src4 = m.address
            sourceRetiring = isRetiring(m)
        case .failure(.poolExhausted):
            return replyFromTranslator6(base, start: start, length: total, to: src6, type: 1, code: 0, field: 0, kind: .unreachable6, now: now, dropping: .poolExhausted)
        case .failure(.poolClientLimit):
            // Code 1: administratively prohibited, for this client; others are served.
            return replyFromTranslator6(base, start: start, length: total, to: src6, type: 1, code: 1, field: 0, kind: .unreachable6, now: now, dropping: .poolClientLimit)
        case .failure(let r):
            // An ICMPv6 error from a router without an IPv4 form gets an RFC 6791 source.
            guard h.nextHeader == Proto.icmpv6, h.upper < total, p.u8(h.upper) < 128 else { return .drop(r) }
            src4 = settings.rfc6791.map { IPv4Address(rawValue: $0.address.rawValue | (UInt32.random(in: 0...UInt32.max) & ~$0.mask)) } ?? settings.errorSource4
        }

        var upper = h.upper
        var upperLength = total - h.upper
        let proto: UInt8
        switch h.nextHeader {
        case Proto.tcp, Proto.udp:
            proto = h.nextHeader
            if h.fragment.map({ $0.offset == 0 }) ?? true {
                let at = h.nextHeader == Proto.tcp ? 16 : 6
                guard upperLength >= at + 2 else { return .drop(.malformed) }
                let pending = offload.checksumPending && Int(offload.checksumStart) == h.upper
                if pending || !(h.nextHeader == Proto.udp && p.u16(h.upper + at) == 0) {
                    updateChecksum(p, at: h.upper + at, udp: h.nextHeader == Proto.udp, pending: pending,
                                   removing: (src6, dst6), adding: (IPv6Address(v4: src4), IPv6Address(v4: dst4)))
                }
            }
        case Proto.icmpv6:
            guard h.fragment == nil else { return .drop(.fragmentedICMP) }
            proto = Proto.icmp
            switch icmp6to4(p, at: h.upper, length: upperLength, now: now) {
            case .success(let (newStart, newLength)):
                upper = newStart
                upperLength = newLength
            case .failure(let r): return .drop(r)
            }
        default:
            proto = h.nextHeader
        }

        // The IPv4 header goes right in front of the upper layer, over the old headers.
        let out = upper - 20
        let q = p + out
        let length4 = 20 + upperLength
        guard length4 <= 65535 else { return .drop(.malformed) }
        let trafficClass = UInt8(truncatingIfNeeded: p.u32(0) >> 20)
        let id: UInt16, flags: UInt16
        if let f = h.fragment {
            id = UInt16(truncatingIfNeeded: f.id)
            flags = (f.more ? 0x2000 : 0) | f.offset >> 3
        } else {
            // RFC 7915 §5.1: DF only above 1260 bytes, where IPv6 PMTUD can work;
            // smaller packets may be fragmented on the IPv4 side and need an ID.
            // A TCP super-packet's segments are all above it; a UDP one's are
            // gsoSize-byte datagrams.
            let df = offload.isSegmented ? !offload.isUDPSegmented || 28 + Int(offload.gsoSize) > 1260 : length4 > 1260
            id = df ? 0 : nextIdentification()
            flags = df ? 0x4000 : 0
        }
        Header.ipv4(q, tos: trafficClass, totalLength: length4, id: id, flags: flags, ttl: hop - 1, proto: proto, source: src4, destination: dst4)
        offload.moved(from: upper, to: 20, toIPv6: false)
        // During a renumbering, the replies must come from the prefix this flow addressed.
        if now < transitionEnd, let via = dst.prefix { recordFlow6to4(q, length: length4, prefix: via, now: now) }

        // RFC 7757 §4.2 hairpinning: an IPv4 destination that is itself mapped
        // to IPv6 goes straight back through the other direction, its source
        // in the prefix the client addressed.
        let hairpinPool = pool.map { $0.owns(dst4, now: now) && $0.host(for: dst4, now: now) != nil } ?? false
        if settings.eam.ipv6(for: dst4) != nil || hairpinPool {
            return translate4to6(base, start: start + out, length: length4, now: now, hairpin: dst)
        }
        return counted(true, .forward(start: start + out, length: length4), retiring: isRetiring(dst) || sourceRetiring)
    }

    /// Translates the ICMPv6 message at `p + at` into ICMPv4, in place; an
    /// error's inner IPv6 packet becomes an IPv4 packet, 20 bytes shorter. Returns
    /// where the ICMPv4 message now starts and its length.
    func icmp6to4(_ p: UnsafeMutableRawPointer, at: Int, length: Int, now: UInt64) -> Result<(Int, Int), DropReason> {
        guard length >= 8 else { return .failure(.malformed) }
        // The checksum is recomputed below: a corrupt message must not leave valid.
        var check = InternetChecksum()
        check.addPseudoHeader(source: p.ipv6(8), destination: p.ipv6(24), nextHeader: Proto.icmpv6, length: length)
        check.add(p, offset: at, count: length)
        guard check.value == 0 else { return .failure(.badChecksum) }
        let type = p.u8(at), code = p.u8(at + 1)
        guard let m = ICMPMap.to4(type: type, code: code) else { return .failure(.unsupportedICMP) }
        var start = at, len = length
        var rest = p.u32(at + 4)
        // RFC 4884: the length of the original datagram field, in 64-bit words,
        // in the errors that may carry extensions after it.
        let declared6 = type == 1 || type == 3 ? Int(p.u8(at + 4)) * 8 : 0
        if type == 2 {
            // Packet Too Big: the IPv4 MTU is 20 less, and no more than our own side takes.
            let mtu = min(Int(rest) - 20, settings.mtu)
            rest = UInt32(max(68, mtu))
        } else if type == 4, code == 0 {
            guard let ptr = ICMPMap.pointer6to4(rest) else { return .failure(.unsupportedICMP) }
            rest = UInt32(ptr) << 24
        } else if type < 128 {
            rest = 0  // unused in the other errors
        }
        if type < 128 {
            // An error: translate the packet it carries (RFC 7915 §5.3).
            let inner = at + 8
            guard len - 8 >= 40 else { return .failure(.malformed) }
            let ip = p + inner
            let innerTotal = len - 8
            guard let ih = Self.parse6(ip, total: min(innerTotal, 40 + Int(ip.u16(4)))) ?? Self.parse6(ip, total: innerTotal) else { return .failure(.malformed) }
            let isrc = ip.ipv6(8), idst = ip.ipv6(24)
            // RFC 7915 §5.2: the quoted packet loses its fragment header too.
            if type == 2, ih.fragmentHeader, rest > 76 { rest -= 8 }
            // The quoted packet went from the IPv4 side to ours: its source maps
            // like a destination (mapping or prefix), its destination is one of our
            // hosts (mapping, prefix or an existing pool address).
            guard case .success(let isrcMapped) = destination4(isrc, now: now), let idst4 = inner4(idst, now: now)?.address else {
                return .failure(.untranslatableSource)
            }
            let isrc4 = isrcMapped.address
            let iproto = ih.nextHeader == Proto.icmpv6 ? Proto.icmp : ih.nextHeader
            let ihop = ip.u8(7)
            let itc = UInt8(truncatingIfNeeded: ip.u32(0) >> 20)
            let ipayloadLength = Int(ip.u16(4)) - (ih.upper - 40)
            // Inner TCP/UDP checksums are updated too, so the error still matches the flow.
            if iproto == Proto.tcp || iproto == Proto.udp, ih.fragment.map({ $0.offset == 0 }) ?? true {
                let ck = ih.upper + (iproto == Proto.tcp ? 16 : 6)
                if ck + 2 <= innerTotal {
                    let old = ip.u16(ck)
                    if !(iproto == Proto.udp && old == 0) {
                        updateChecksum(ip, at: ck, udp: iproto == Proto.udp, pending: false,
                                       removing: (isrc, idst), adding: (IPv6Address(v4: isrc4), IPv6Address(v4: idst4)))
                    }
                }
            } else if iproto == Proto.icmp, ih.upper + 4 <= innerTotal {
                // An echo inside an error: its type and checksum change too.
                let t = ip.u8(ih.upper)
                if let im = ICMPMap.to4(type: t, code: ip.u8(ih.upper + 1)), t >= 128 {
                    let old = ip.u16(ih.upper)
                    ip.setU8(ih.upper, im.type)
                    ip.setU16(ih.upper + 2, Self.quotedEchoChecksum(ip.u16(ih.upper + 2), oldWord: old, newWord: ip.u16(ih.upper), source: isrc,
                                                                    destination: idst, length: ipayloadLength, toIPv6: false))
                }
            }
            let h4 = ih.upper - 20
            let q = ip + h4
            // RFC 7915 §5.3: the quoted packet is translated as a packet, DF
            // and all (§5.1: set above 1260 bytes), as its sender would have
            // seen it leave.
            Header.ipv4(q, tos: itc, totalLength: 20 + ipayloadLength, id: ih.fragment.map { UInt16(truncatingIfNeeded: $0.id) } ?? 0,
                        flags: ih.fragment.map { ($0.more ? 0x2000 : 0) | $0.offset >> 3 } ?? (20 + ipayloadLength > 1260 ? 0x4000 : 0), ttl: ihop, proto: iproto,
                        source: isrc4, destination: idst4)
            // The ICMPv4 header moves up to sit in front of the new inner header.
            // ICMPv4 errors carry at most what fits a 576-byte datagram; an
            // extension goes along when there is room.
            let declared = declared6 >= ih.upper && 8 + declared6 < len
            let carried = Self.carryExtension(p + at, start: h4, datagram: (declared ? declared6 : innerTotal) - h4, end: len,
                                              declared: declared, carries: m.type == 3 || m.type == 11 || m.type == 12, unit: 4, limit: 576 - 20)
            start = at + carried.start
            len = carried.length
            if m.type == 3 || m.type == 11 || m.type == 12 { rest = rest & 0xFF00_FFFF | UInt32(carried.field) << 16 }
        }
        let q = p + start
        q.setU8(0, m.type)
        q.setU8(1, m.code)
        q.setU16(2, 0)
        q.setU32(4, m.pointer.map { UInt32($0) << 24 } ?? rest)
        var c = InternetChecksum()
        c.add(q, offset: 0, count: len)
        q.setU16(2, c.value)
        return .success((start, len))
    }
}
