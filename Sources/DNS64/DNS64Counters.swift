public struct DNS64Counters: Sendable, Equatable, CustomStringConvertible {
    public var queries = 0, synthesized = 0, passedThrough = 0, local = 0, refused = 0, formErr = 0, badVers = 0, upstreamFailures = 0
    /// SERVFAILs whose upstream said why in DNSSEC terms (RFC 8914), passed on.
    public var validationFailures = 0
    public var cacheHits = 0, cacheMisses = 0, overload = 0
    /// UDP queries per socket, in socket order (per address, one per thread).
    public var udpPerSocket: [Int] = []

    public var cacheHitRate: Double { cacheHits + cacheMisses == 0 ? 0 : Double(cacheHits) / Double(cacheHits + cacheMisses) }

    private var totals: [(String, Int)] {
        [("queries", queries), ("synthesized", synthesized), ("passed_through", passedThrough), ("local", local), ("refused", refused),
         ("formerr", formErr), ("badvers", badVers), ("upstream_failures", upstreamFailures), ("validation_failures", validationFailures),
         ("cache_hits", cacheHits), ("cache_misses", cacheMisses), ("overload", overload)]
    }

    /// Name and value of each counter, for `status` and metrics; the UDP
    /// sockets one each.
    public var fields: [(String, Int)] { totals + udpPerSocket.enumerated().map { ("udp_socket_\($0.offset)", $0.element) } }

    public var description: String {
        totals.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
            + (udpPerSocket.isEmpty ? "" : " udp_per_socket=" + udpPerSocket.map(String.init).joined(separator: "/"))
    }
}
