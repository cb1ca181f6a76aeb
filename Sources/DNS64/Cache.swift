import Synchronization

/// Answers kept for their TTL, positive and negative (RFC 2308), bounded in
/// memory: when the bound is reached the oldest entries go first. The key
/// holds the client's DO and CD bits, so a validating client never gets an
/// answer that was synthesised for another.
public final class AnswerCache: Sendable {
    public struct Key: Hashable, Sendable {
        let name: DNSName
        let type: UInt16
        let klass: UInt16
        let dnssecOK: Bool
        let checkingDisabled: Bool

        public init(_ q: Question, dnssecOK: Bool, checkingDisabled: Bool) {
            name = q.name
            type = q.type
            klass = q.klass
            self.dnssecOK = dnssecOK
            self.checkingDisabled = checkingDisabled
        }
    }

    struct Entry {
        var message: Message
        var stored: UInt64
        var expires: UInt64
        var size: Int
    }

    struct State {
        var entries: [Key: Entry] = [:]
        var order: [Key] = []
        var head = 0
        var bytes = 0
        var hits = 0
        var misses = 0
    }

    public let capacity: Int
    private let state = Mutex(State())

    public init(bytes capacity: Int) { self.capacity = capacity }

    public var statistics: (hits: Int, misses: Int, entries: Int, bytes: Int) {
        state.withLock { ($0.hits, $0.misses, $0.entries.count, $0.bytes) }
    }

    /// The cached answer with TTLs lowered by its age; nil when absent or expired.
    public func lookup(_ key: Key, now: UInt64) -> Message? {
        guard capacity > 0 else { return nil }
        return state.withLock { s in
            guard let e = s.entries[key], now < e.expires else {
                s.misses += 1
                return nil
            }
            s.hits += 1
            let age = UInt32(clamping: now - e.stored)
            var m = e.message
            for section in [\Message.answers, \Message.authority, \Message.additional] {
                m[keyPath: section] = m[keyPath: section].map { var r = $0; r.ttl = $0.ttl > age ? $0.ttl - age : 0; return r }
            }
            return m
        }
    }

    /// Keeps `message` for its lifetime: the smallest TTL of its answers, or
    /// for an answer without records (NXDOMAIN, NODATA) the negative TTL of
    /// its SOA (RFC 2308 §5). Errors are not kept.
    public func store(_ key: Key, _ message: Message, now: UInt64) {
        guard capacity > 0, message.rcode == RCode.noError || message.rcode == RCode.nxDomain, !message.truncated else { return }
        let ttl: UInt32?
        if !message.answers.isEmpty {
            ttl = message.answers.map(\.ttl).min()
        } else {
            ttl = message.authority.compactMap { rr -> UInt32? in
                guard case .soa(_, _, _, _, _, _, let minimum) = rr.data else { return nil }
                return min(rr.ttl, minimum)
            }.first
        }
        guard let ttl, ttl > 0 else { return }
        let size = Wire.encode(message).count + 64
        state.withLock { s in
            if let old = s.entries[key] { s.bytes -= old.size } else { s.order.append(key) }
            s.entries[key] = Entry(message: message, stored: now, expires: now + UInt64(ttl), size: size)
            s.bytes += size
            // Oldest first, until within the bound.
            while s.bytes > capacity, s.head < s.order.count {
                let victim = s.order[s.head]
                s.head += 1
                if let e = s.entries.removeValue(forKey: victim) { s.bytes -= e.size }
            }
            if s.head > 4096, s.head * 2 > s.order.count {
                s.order.removeFirst(s.head)
                s.head = 0
            }
        }
    }
}
