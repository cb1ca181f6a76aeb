import Packet
import Synchronization

/// What a renumbering replaces (a NAT64 prefix, a range of the dynamic
/// pool, or their text in the controller's history): still honoured, and
/// flows that started on it keep it, until `until` (wall clock, seconds
/// since 1970), so that the change breaks no connection.
public struct Retiring<Value: Sendable & Equatable>: Sendable, Equatable {
    public var value: Value
    public var until: UInt64

    public init(_ value: Value, until: UInt64) {
        self.value = value
        self.until = until
    }

    /// Whether it is still honoured at `now`.
    @inlinable
    public func isActive(at now: UInt64) -> Bool { now < until }

    enum CodingKeys: String, CodingKey {
        case value = "prefix", until
    }
}

extension Retiring: Codable where Value: Codable {}

public typealias RetiringPrefix = Retiring<NAT64Prefix>

/// What the translator is handed: the validated values it needs, never the
/// config file.
public struct TranslatorSettings: Sendable {
    public var prefix: NAT64Prefix
    public var eam: EAMTable
    /// Sources of the ICMP errors the translator itself sends.
    public var own4: IPv4Address?
    public var own6: IPv6Address?
    /// RFC 6791: sources for translated ICMPv4 errors whose IPv6 source has no
    /// IPv4 form (a router on the IPv6 side answering with its own address).
    public var rfc6791: IPv4Prefix?
    public var lowestIPv6MTU: Int
    /// MTU of the TUN device, the largest packet either side may carry.
    public var mtu: Int
    public var zeroChecksum: ZeroChecksumPolicy
    public var icmpErrorsPerSecond: Int
    /// Previous prefixes still accepted during a renumbering, oldest first:
    /// the last is the one `prefix` replaced.
    public var retiring: [RetiringPrefix]

    public init(prefix: NAT64Prefix, eam: EAMTable = EAMTable([]), own4: IPv4Address? = nil, own6: IPv6Address? = nil,
                rfc6791: IPv4Prefix? = nil, lowestIPv6MTU: Int = TranslatorDefaults.lowestIPv6MTU, mtu: Int = 1500,
                zeroChecksum: ZeroChecksumPolicy = .drop, icmpErrorsPerSecond: Int = 100, retiring: [RetiringPrefix] = []) {
        self.prefix = prefix
        self.eam = eam
        self.own4 = own4
        self.own6 = own6
        self.rfc6791 = rfc6791
        self.lowestIPv6MTU = lowestIPv6MTU
        self.mtu = mtu
        self.zeroChecksum = zeroChecksum
        self.icmpErrorsPerSecond = icmpErrorsPerSecond
        self.retiring = retiring
    }

    /// The second after which no retiring prefix is accepted any more: before
    /// it, the translator keeps track of flows.
    var transitionEnd: UInt64 { retiring.lazy.map(\.until).max() ?? 0 }

    /// Source of ICMPv4 errors the translator originates.
    var errorSource4: IPv4Address { own4 ?? rfc6791?.address ?? TranslatorDefaults.dummyIPv4 }
    /// Source of ICMPv6 errors the translator originates.
    var errorSource6: IPv6Address { own6 ?? prefix.embed(own4 ?? TranslatorDefaults.dummyIPv4) }
}

/// Why a packet was dropped. Every drop is counted under one of these.
public enum DropReason: Int, CaseIterable, Sendable, Error, CustomStringConvertible {
    case malformed, badChecksum, unknownVersion
    case untranslatableSource, untranslatableDestination, nonGlobalAddress, poolExhausted
    case hopLimitExceeded, ttlExceeded, routingHeader
    case unsupportedICMP, fragmentedICMP, zeroUDPChecksum
    case rateLimited, sourceRoute
    case poolClientLimit, incompleteHeaderChain

    public var description: String {
        switch self {
        case .malformed: "malformed"
        case .badChecksum: "bad_checksum"
        case .unknownVersion: "unknown_ip_version"
        case .untranslatableSource: "untranslatable_source"
        case .untranslatableDestination: "untranslatable_destination"
        case .nonGlobalAddress: "non_global_address"
        case .poolExhausted: "pool_exhausted"
        case .hopLimitExceeded: "hop_limit_exceeded"
        case .ttlExceeded: "ttl_exceeded"
        case .routingHeader: "routing_header"
        case .unsupportedICMP: "unsupported_icmp"
        case .fragmentedICMP: "fragmented_icmp"
        case .zeroUDPChecksum: "zero_udp_checksum"
        case .rateLimited: "icmp_error_rate_limited"
        case .sourceRoute: "ipv4_source_route"
        case .poolClientLimit: "pool_client_limit"
        case .incompleteHeaderChain: "incomplete_header_chain"
        }
    }
}

/// The ICMP errors the translator sends itself.
public enum SentError: Int, CaseIterable, Sendable, CustomStringConvertible {
    case timeExceeded4, timeExceeded6, unreachable4, unreachable6, parameterProblem6

    public var description: String {
        switch self {
        case .timeExceeded4: "icmp_time_exceeded"
        case .timeExceeded6: "icmpv6_time_exceeded"
        case .unreachable4: "icmp_unreachable"
        case .unreachable6: "icmpv6_unreachable"
        case .parameterProblem6: "icmpv6_parameter_problem"
        }
    }
}

/// Counters of one translator, readable while it runs (for `status`).
public struct TranslatorCounters: Sendable, Equatable {
    public var translated6to4 = 0
    public var translated4to6 = 0
    /// Translated UDP datagrams written joined into super-packets.
    public var coalesced = 0
    /// Packets translated through a retiring prefix: while these grow, the old
    /// prefix still carries traffic.
    public var retiring6to4 = 0
    public var retiring4to6 = 0
    public var drops = [Int](repeating: 0, count: DropReason.allCases.count)
    public var errorsSent = [Int](repeating: 0, count: SentError.allCases.count)

    public init() {}

    public static func + (a: Self, b: Self) -> Self {
        var c = a
        c.translated6to4 += b.translated6to4
        c.translated4to6 += b.translated4to6
        c.coalesced += b.coalesced
        c.retiring6to4 += b.retiring6to4
        c.retiring4to6 += b.retiring4to6
        for i in c.drops.indices { c.drops[i] += b.drops[i] }
        for i in c.errorsSent.indices { c.errorsSent[i] += b.errorsSent[i] }
        return c
    }

    public subscript(_ r: DropReason) -> Int { drops[r.rawValue] }
    public subscript(_ e: SentError) -> Int { errorsSent[e.rawValue] }
}
