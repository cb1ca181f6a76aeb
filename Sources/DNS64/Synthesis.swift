import Packet

/// RFC 6147 §5: when and how AAAA records are synthesised from A records. Pure
/// functions of the messages, so that every rule is testable without a network.
public struct Synthesis: Sendable {
    public let prefix: NAT64Prefix
    public let exclude: [IPv6Prefix]
    /// The longest TTL a synthesised record gets: how long a client may keep
    /// an address in the prefix, so how long a renumbering must keep the old one.
    public let maxTTL: UInt32

    public init(prefix: NAT64Prefix, exclude: [IPv6Prefix] = DNS64Defaults.exclusions, maxTTL: UInt32 = DNS64Defaults.maxTTL) {
        self.prefix = prefix
        self.exclude = exclude
        self.maxTTL = maxTTL
    }

    /// What to do with the upstream's answer to an AAAA query.
    public enum Decision: Equatable, Sendable {
        /// Return it (with excluded AAAA records removed, if any).
        case pass(Message)
        /// Ask for A records and synthesise from them.
        case askForA
    }

    /// §5.5: a client that sets DO and CD validates itself and must get the
    /// real answer, never a synthesised one.
    public static func clientValidates(_ query: Message) -> Bool {
        query.checkingDisabled && (query.edns?.dnssecOK ?? false)
    }

    public func decide(query: Message, aaaaResponse r: Message) -> Decision {
        if Self.clientValidates(query) { return .pass(r) }
        switch r.rcode {
        case RCode.nxDomain:
            return .pass(r)  // §5.1.2: the name does not exist, so no A either
        case RCode.noError:
            let usable = r.answers.filter { rr in
                guard rr.type == RRType.aaaa, case .aaaa(let a) = rr.data else { return false }
                return !exclude.contains { $0.contains(a) }
            }
            if !usable.isEmpty {
                var cleaned = r
                // §5.1.4: excluded AAAA records are treated as absent.
                cleaned.answers = r.answers.filter { rr in
                    guard rr.type == RRType.aaaa, case .aaaa(let a) = rr.data else { return true }
                    return !exclude.contains { $0.contains(a) }
                }
                return .pass(cleaned)
            }
            return .askForA
        default:
            // §5.1.2: any other error counts as an empty answer.
            return .askForA
        }
    }

    /// §5.1.7: the synthesised AAAA answer from the A answer, keeping its CNAME
    /// and DNAME chain. nil when there is nothing to synthesise from (then the
    /// AAAA answer goes back as it was).
    public func synthesize(query: Message, aaaaResponse: Message, aResponse: Message) -> Message? {
        guard aResponse.rcode == RCode.noError else { return nil }
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
        guard synthesised > 0 else { return nil }
        // §5.5: what we made was not validated, so AD stays clear.
        var m = Message.response(to: query)
        m.answers = answers
        return m
    }
}
