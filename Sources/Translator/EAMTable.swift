import Packet

/// Explicit address mappings (RFC 7757), looked up by longest prefix in both
/// directions. One hash table per prefix length, tried from the longest: a
/// lookup costs one probe per distinct length, whatever the number of entries.
public struct EAMTable: Sendable {
    public struct Entry: Sendable, Equatable {
        public let ipv4: IPv4Prefix
        public let ipv6: IPv6Prefix

        public init(ipv4: IPv4Prefix, ipv6: IPv6Prefix) {
            precondition(32 - ipv4.length == 128 - ipv6.length, "both sides of a mapping hold as many addresses")
            self.ipv4 = ipv4
            self.ipv6 = ipv6
        }
    }

    public let entries: [Entry]
    private let by4: [(length: Int, table: [UInt32: Int])]
    private let by6: [(length: Int, table: [IPv6Address: Int])]

    public init(_ entries: [Entry]) {
        self.entries = entries
        var v4: [Int: [UInt32: Int]] = [:], v6: [Int: [IPv6Address: Int]] = [:]
        for (i, e) in entries.enumerated() {
            v4[e.ipv4.length, default: [:]][e.ipv4.address.rawValue] = i
            v6[e.ipv6.length, default: [:]][e.ipv6.address] = i
        }
        by4 = v4.sorted { $0.key > $1.key }.map { ($0.key, $0.value) }
        by6 = v6.sorted { $0.key > $1.key }.map { ($0.key, $0.value) }
    }

    public var isEmpty: Bool { entries.isEmpty }

    /// The IPv6 address `a` maps to, by the longest matching mapping.
    @inlinable
    public func ipv6(for a: IPv4Address) -> IPv6Address? {
        guard let e = entry(for: a) else { return nil }
        let offset = UInt64(a.rawValue & ~e.ipv4.mask)
        return IPv6Address(high: e.ipv6.address.high, low: e.ipv6.address.low | offset)
    }

    /// The IPv4 address `a` maps to, by the longest matching mapping.
    @inlinable
    public func ipv4(for a: IPv6Address) -> IPv4Address? {
        guard let e = entry(for: a) else { return nil }
        let offset = UInt32(truncatingIfNeeded: a.low & ((1 << UInt64(32 - e.ipv4.length)) &- 1))
        return IPv4Address(rawValue: e.ipv4.address.rawValue | offset)
    }

    @usableFromInline
    func entry(for a: IPv4Address) -> Entry? {
        for (length, table) in by4 {
            if let i = table[a.rawValue & IPv4Prefix.mask(length)] { return entries[i] }
        }
        return nil
    }

    @usableFromInline
    func entry(for a: IPv6Address) -> Entry? {
        for (length, table) in by6 {
            if let i = table[IPv6Prefix(address: a, length: length).address] { return entries[i] }
        }
        return nil
    }
}
