import Packet

/// RFC 6147 §5: when and how AAAA records are synthesised from A records. Pure
/// functions of the messages, so that every rule is testable without a network.
public struct Synthesis: Sendable {
    public let prefix: NAT64Prefix
    public let exclude: [IPv6Prefix]
    /// The longest TTL a synthesised record gets: how long a client may keep
    /// an address in the prefix, so how long a renumbering must keep the old one.
    public let maxTTL: UInt32
    /// The upstreams validate DNSSEC and are reached over a path nobody can
    /// tamper with, so their AD bit means something: it is passed on, and a
    /// synthesised answer made from authenticated data gets it (§5.5).
    /// Without it, no answer of ours carries AD: sixgate does not validate.
    public let trustUpstreamAD: Bool

    public init(prefix: NAT64Prefix, exclude: [IPv6Prefix] = DNS64Defaults.exclusions, maxTTL: UInt32 = DNS64Defaults.maxTTL,
                trustUpstreamAD: Bool = false) {
        self.prefix = prefix
        self.exclude = exclude
        self.maxTTL = maxTTL
        self.trustUpstreamAD = trustUpstreamAD
    }

    /// What to do with the upstream's answer to an AAAA query.
    public enum Decision: Equatable, Sendable {
        /// Answer with it.
        case pass(Message)
        /// Ask for A records and synthesise from them (`answer`).
        case askForA
    }

    /// §5.5: a client that sets DO and CD validates itself and must get the
    /// real answer, never a synthesised one.
    public static func clientValidates(_ query: Message) -> Bool {
        query.checkingDisabled && (query.edns?.dnssecOK ?? false)
    }

    public func decide(query: Message, aaaaResponse r: Message) -> Decision {
        // §5.5 (3): returned as any recursive resolver would, unmodified, for
        // the client to validate (excluded records included: removing them
        // would break its validation).
        if Self.clientValidates(query) { return .pass(r) }
        switch r.rcode {
        case RCode.nxDomain:
            return .pass(passedOn(r))  // §5.1.2: the name does not exist, so no A either
        case RCode.noError:
            let usable = withoutExcluded(r)
            return usable.answers.contains { $0.type == RRType.aaaa } ? .pass(usable) : .askForA
        case RCode.servFail where r.failedValidation:
            // §5.5: an AAAA that failed validation may exist; synthesising in
            // its place would be a downgrade an attacker could provoke.
            return .pass(passedOn(r))
        default:
            // §5.1.2: any other error counts as an empty answer.
            return .askForA
        }
    }

    /// §5.1.6 and §5.1.7: the answer to the AAAA query, once the A answer
    /// is in. An error on the A query is the answer (a NODATA instead would
    /// be cached by the client for the negative TTL); A records give AAAA
    /// records, keeping their CNAME and DNAME chain; nothing to synthesise
    /// from gives the empty answer.
    public func answer(query: Message, aaaaResponse: Message, aResponse: Message) -> Message {
        guard aResponse.rcode == RCode.noError else { return passedOn(aResponse) }
        // §5.1.7: the TTL is at most the negative TTL of the AAAA answer (the SOA
        // minimum, capped by the SOA's own TTL, RFC 2308 §5), else 600 s.
        let negative: UInt32 = aaaaResponse.authority.compactMap { rr -> UInt32? in
            guard case .soa(_, _, _, _, _, _, let minimum) = rr.data else { return nil }
            return min(rr.ttl, minimum)
        }.first ?? 600
        let cap = min(negative, maxTTL)
        var answers: [ResourceRecord] = []
        var synthesised = 0
        for rr in aResponse.answers {
            switch rr.data {
            case .a(let v4) where rr.type == RRType.a:
                // §5.1.6 with RFC 6052 §3.1: no non-global address behind the well-known prefix.
                guard prefix.canRepresent(v4) else { continue }
                answers.append(ResourceRecord(name: rr.name, type: RRType.aaaa, klass: rr.klass, ttl: min(rr.ttl, cap), data: .aaaa(prefix.embed(v4))))
                synthesised += 1
            case _ where rr.type == RRType.cname || rr.type == RRType.dname:
                answers.append(rr)
            default:
                break  // signatures of the A records cannot cover what we made
            }
        }
        guard synthesised > 0 else {
            // A real NODATA to the AAAA query is the answer as it came (its
            // SOA gives the client's negative TTL, its NSEC records prove it).
            // After an error or excluded records only, the A query's empty
            // result is the basis; it proves nothing about AAAA, so no AD.
            if aaaaResponse.rcode == RCode.noError, !aaaaResponse.answers.contains(where: isExcluded) {
                return passedOn(aaaaResponse)
            }
            var empty = aResponse
            empty.answers.removeAll { $0.type == RRType.a || $0.covers(RRType.a) }
            empty.authenticData = false
            return empty
        }
        var m = Message.response(to: query)
        m.answers = answers
        // §5.5 (2): a synthesised answer is authenticated when both the A
        // records and the absence of AAAA records were.
        m.authenticData = trustUpstreamAD && query.edns?.dnssecOK == true && aResponse.authenticData
            && aaaaResponse.authenticData && aaaaResponse.rcode == RCode.noError
        return m
    }

    /// An upstream answer as it goes to the client: its AD bit only from an
    /// upstream we trust to have validated it.
    public func passedOn(_ m: Message) -> Message {
        guard !trustUpstreamAD, m.authenticData else { return m }
        var m = m
        m.authenticData = false
        return m
    }

    func isExcluded(_ rr: ResourceRecord) -> Bool {
        guard rr.type == RRType.aaaa, case .aaaa(let a) = rr.data else { return false }
        return exclude.contains { $0.contains(a) }
    }

    /// §5.1.4: the answer without AAAA records in the exclusion set. Their
    /// signatures go with them, and AD: what is left is not what was signed.
    func withoutExcluded(_ r: Message) -> Message {
        guard r.answers.contains(where: isExcluded) else { return passedOn(r) }
        var m = r
        m.answers.removeAll { isExcluded($0) || $0.covers(RRType.aaaa) }
        m.authenticData = false
        return m
    }
}

extension ResourceRecord {
    /// An RRSIG over records of `type` (RFC 4034 §3.1: the type covered
    /// comes first in its data).
    func covers(_ type: UInt16) -> Bool {
        guard self.type == RRType.rrsig, case .opaque(let d) = data, d.count >= 2 else { return false }
        return UInt16(d[0]) << 8 | UInt16(d[1]) == type
    }
}
