import Packet

/// Names the gateway itself publishes (`sixgatectl publish`), answered here
/// so that its own clients and the outside world agree on them: the A
/// records the world gets, and for AAAA the IPv6 address that serves the
/// name (a mapping's IPv6 side, a multiplexer route's backend, the 6bed4
/// router) instead of a synthesised one. Wildcards (`*.example.com`) cover
/// the names below them.
public struct LocalNames: Sendable, Equatable {
    public struct Addresses: Sendable, Equatable {
        public var v4: [IPv4Address] = []
        public var v6: [IPv6Address] = []

        public init(v4: [IPv4Address] = [], v6: [IPv6Address] = []) {
            self.v4 = v4
            self.v6 = v6
        }
    }

    private var exact: [DNSName: Addresses] = [:]
    /// By suffix (the wildcard's name without `*`), longest first.
    private var wildcards: [(suffix: DNSName, addresses: Addresses)] = []
    public static let ttl: UInt32 = 300

    public init() {}

    public var isEmpty: Bool { exact.isEmpty && wildcards.isEmpty }

    /// Adds `addresses` to `name` ("www.example.com" or "*.example.com").
    public mutating func add(_ name: String, v4: [IPv4Address] = [], v6: [IPv6Address] = []) {
        let wildcard = name.hasPrefix("*.")
        guard let n = DNSName(wildcard ? String(name.dropFirst(2)) : name) else { return }
        func merge(_ a: inout Addresses) {
            a.v4 += v4.filter { !a.v4.contains($0) }
            a.v6 += v6.filter { !a.v6.contains($0) }
        }
        if wildcard {
            if let i = wildcards.firstIndex(where: { $0.suffix == n }) {
                merge(&wildcards[i].addresses)
            } else {
                var a = Addresses()
                merge(&a)
                wildcards.append((n, a))
                wildcards.sort { $0.suffix.labels.count > $1.suffix.labels.count }
            }
        } else {
            merge(&exact[n, default: Addresses()])
        }
    }

    /// The records for an A or AAAA question about a local name (empty: the
    /// name is local and has none of that type); nil for any other name or
    /// type, which go upstream.
    public func records(_ q: Question) -> [ResourceRecord]? {
        guard q.type == RRType.a || q.type == RRType.aaaa, q.klass == 1 else { return nil }
        let found = exact[q.name] ?? wildcards.first { w in
            q.name.labels.count > w.suffix.labels.count && DNSName(labels: Array(q.name.labels.suffix(w.suffix.labels.count))) == w.suffix
        }?.addresses
        guard let found else { return nil }
        return q.type == RRType.a
            ? found.v4.map { ResourceRecord(name: q.name, type: RRType.a, ttl: Self.ttl, data: .a($0)) }
            : found.v6.map { ResourceRecord(name: q.name, type: RRType.aaaa, ttl: Self.ttl, data: .aaaa($0)) }
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.exact == b.exact && a.wildcards.map(\.suffix) == b.wildcards.map(\.suffix) && a.wildcards.map(\.addresses) == b.wildcards.map(\.addresses)
    }
}
