import Packet

/// Make-before-break renumbering: while a retiring prefix is still accepted,
/// every flow keeps the prefix it started with. IPv6 -> IPv4 records which
/// prefix a flow addressed; IPv4 -> IPv6 puts the source back into it. None of
/// this runs once `transitionEnd` has passed.
extension Engine {
    typealias FlowKey = PrefixFlows.Key

    /// The most recent retiring prefix still accepted at `now`.
    func latestRetiring(now: UInt64) -> NAT64Prefix? {
        settings.retiring.last { $0.isActive(at: now) }?.value
    }

    /// Whether a flow recorded with `p` may still use it.
    func accepts(_ p: NAT64Prefix, now: UInt64) -> Bool {
        p == settings.prefix || settings.retiring.contains { $0.value == p && $0.isActive(at: now) }
    }

    /// The ports of the IPv4 packet at `p` (header of `ihl` bytes, `length`
    /// bytes present) as (local, remote): `fromLocal` when it left from the
    /// IPv6 side. An ICMP echo's identifier is the same both ways, so it is
    /// the local port and the remote one is 0; protocols without ports have
    /// 0 and 0. Nil for an ICMP error, which belongs to the flow it quotes, or
    /// a header cut short.
    static func flowPorts(_ p: UnsafeMutableRawPointer, ihl: Int, length: Int, proto: UInt8, fromLocal: Bool) -> (local: UInt16, remote: UInt16)? {
        switch proto {
        case Proto.tcp, Proto.udp:
            guard ihl + 4 <= length else { return nil }
            let source = p.u16(ihl), destination = p.u16(ihl + 2)
            return fromLocal ? (source, destination) : (destination, source)
        case Proto.icmp:
            guard ihl + 8 <= length, p.u8(ihl) == 0 || p.u8(ihl) == 8 else { return nil }
            return (p.u16(ihl + 4), 0)
        default:
            return (0, 0)
        }
    }

    /// Remembers the prefix the translated IPv4 packet at `q` (20-byte header)
    /// addressed, so that its flow's packets coming back come from it. Later
    /// fragments carry no ports: the first one speaks for the datagram.
    func recordFlow6to4(_ q: UnsafeMutableRawPointer, length: Int, prefix: NAT64Prefix, now: UInt64) {
        let proto = q.u8(9)
        guard let flows, q.u16(6) & 0x1FFF == 0,
              let ports = Self.flowPorts(q, ihl: 20, length: length, proto: proto, fromLocal: true) else { return }
        let key = FlowKey(local4: q.ipv4(12), remote4: q.ipv4(16), localPort: ports.local, remotePort: ports.remote, proto: proto)
        if let c = lastFlow, c.second == now, c.key == key, c.prefix == prefix { return }
        flows.record(key, prefix: prefix, now: now)
        lastFlow = (key, prefix, now)
    }

    /// The prefix the source of the IPv4 packet at `p` goes into during a
    /// renumbering: the one its flow started with. A flow the table does not
    /// know is taken to predate the change (or to have been lost by the
    /// table), and so to keep the latest retiring prefix, unless it visibly
    /// starts now: a TCP SYN without ACK.
    func prefix4to6(_ p: UnsafeMutableRawPointer, ihl: Int, total: Int, proto: UInt8, offset: UInt16, more: Bool, now: UInt64) -> NAT64Prefix {
        let src4 = p.ipv4(12), dst4 = p.ipv4(16)
        let older = latestRetiring(now: now) ?? settings.prefix

        if proto == Proto.icmp, offset == 0, !more, ihl + 8 + 20 <= total, p.u8(ihl) != 0, p.u8(ihl) != 8 {
            // An error goes with the flow it quotes, which left from the IPv6
            // side: the quoted source is local. It makes no flow of its own.
            let ip = p + ihl + 8
            let iihl = Int(ip.u8(0) & 0x0F) * 4, iproto = ip.u8(9), idst = ip.ipv4(16)
            if settings.eam.ipv6(for: src4) != nil, settings.eam.ipv6(for: idst) != nil { return settings.prefix }
            guard let flows, iihl >= 20, ip.u16(6) & 0x1FFF == 0,
                  let ports = Self.flowPorts(ip, ihl: iihl, length: total - ihl - 8, proto: iproto, fromLocal: true) else { return older }
            let key = FlowKey(local4: ip.ipv4(12), remote4: idst, localPort: ports.local, remotePort: ports.remote, proto: iproto)
            return flows.resolve(key, now: now, otherwise: older, record: false) { accepts($0, now: now) }
        }
        // A mapped source is not embedded in any prefix.
        if settings.eam.ipv6(for: src4) != nil { return settings.prefix }

        let syn = proto == Proto.tcp && offset == 0 && ihl + 14 <= total && p.u8(ihl + 13) & 0x12 == 0x02
        let unknown = syn ? settings.prefix : older
        guard let flows else { return unknown }
        // IPv4 fragments after the first have no ports: the first one records
        // the datagram's choice under its identification.
        let fragmentKey = FlowKey(local4: dst4, remote4: src4, localPort: p.u16(4), remotePort: 0, proto: proto, fragment: true)
        if offset != 0 { return flows.resolve(fragmentKey, now: now, otherwise: unknown) { accepts($0, now: now) } }
        guard let ports = Self.flowPorts(p, ihl: ihl, length: total, proto: proto, fromLocal: false) else { return unknown }
        let key = FlowKey(local4: dst4, remote4: src4, localPort: ports.local, remotePort: ports.remote, proto: proto)
        if !more, let c = lastFlow, c.second == now, c.key == key { return c.prefix }
        let prefix = flows.resolve(key, now: now, otherwise: unknown) { accepts($0, now: now) }
        if more { flows.record(fragmentKey, prefix: prefix, now: now) }
        lastFlow = (key, prefix, now)
        return prefix
    }
}
