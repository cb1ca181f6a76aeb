import Packet

/// The names DNS64 answers itself or rewrites.
public enum SpecialNames {
    /// RFC 8880: `ipv4only.arpa` has the A records 192.0.0.170 and .171.
    public static let ipv4only = DNSName(labels: [Array("ipv4only".utf8), Array("arpa".utf8)])

    /// RFC 8880 §7.2 / RFC 7050: the AAAA answer a DNS64 gives for
    /// ipv4only.arpa, so that clients discover the prefix. Made locally with our
    /// prefix; the well-known prefix's rule on non-global addresses does not
    /// apply to these two (RFC 7050 §3 requires them to be synthesised).
    public static func ipv4onlyAnswer(query: Message, prefix: NAT64Prefix, ttl: UInt32 = 3600) -> Message {
        var m = Message.response(to: query)
        m.answers = DNS64Defaults.ipv4onlyAddresses.map {
            ResourceRecord(name: ipv4only, type: RRType.aaaa, ttl: ttl, data: .aaaa(prefix.embed($0)))
        }
        return m
    }

    /// The ip6.arpa zone of `prefix` (all RFC 6052 lengths are whole nibbles).
    public static func reverseZone(of prefix: NAT64Prefix) -> DNSName {
        let nibbles = nibbles(of: prefix.prefix.address).prefix(prefix.length / 4)
        return DNSName(labels: nibbles.reversed().map { [hex($0)] } + [Array("ip6".utf8), Array("arpa".utf8)])
    }

    /// RFC 6147 §5.3.1: for a PTR query of an address under the prefix, the
    /// in-addr.arpa name of the IPv4 address it embeds; nil for anything else.
    public static func inAddrName(forPTR name: DNSName, prefix: NAT64Prefix) -> DNSName? {
        guard name.labels.count == 34,
              DNSName(labels: Array(name.labels.suffix(2))) == DNSName(labels: [Array("ip6".utf8), Array("arpa".utf8)]) else { return nil }
        var high: UInt64 = 0, low: UInt64 = 0
        for (i, label) in name.labels.prefix(32).reversed().enumerated() {
            guard label.count == 1, let v = nibble(label[0]) else { return nil }
            if i < 16 { high = high << 4 | UInt64(v) } else { low = low << 4 | UInt64(v) }
        }
        guard let v4 = prefix.extract(IPv6Address(high: high, low: low)) else { return nil }
        return DNSName(labels: v4.bytes.reversed().map { Array(String($0).utf8) } + [Array("in-addr".utf8), Array("arpa".utf8)])
    }

    static func nibbles(of a: IPv6Address) -> [UInt8] {
        a.bytes.flatMap { [$0 >> 4, $0 & 0xF] }
    }

    static func hex(_ v: UInt8) -> UInt8 { v < 10 ? 48 + v : 87 + v }

    static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c - 48
        case 97...102: c - 87
        case 65...70: c - 55
        default: nil
        }
    }
}

/// Who may ask: the access list of the DNS64 server (never "any" by default).
public struct AccessList: Sendable {
    public let allowed: [IPPrefix]

    public init(_ allowed: [IPPrefix]) { self.allowed = allowed }

    public func allows(_ a: IPAddress) -> Bool {
        // An IPv4-mapped client address (a dual-stack socket) is checked as IPv4.
        if case .v6(let v6) = a, IPv6Prefix.ipv4Mapped.contains(v6) {
            return allows(.v4(IPv4Address(rawValue: UInt32(truncatingIfNeeded: v6.low))))
        }
        return allowed.contains { $0.contains(a) }
    }
}

extension Wire {
    /// The message for a UDP client whose buffer is `limit` bytes: unchanged if
    /// it fits, else with TC set and the record sections emptied (RFC 1035 §4.2.1,
    /// RFC 6891 §7), so the client retries over TCP.
    public static func encodeForUDP(_ m: Message, limit: Int) -> [UInt8] {
        let full = encode(m)
        guard full.count > limit else { return full }
        var t = m
        t.truncated = true
        t.answers = []
        t.authority = []
        t.additional = []
        return encode(t)
    }
}
