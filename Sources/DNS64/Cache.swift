import Synchronization

/// Answers kept for their TTL, positive and negative (RFC 2308), bounded in
/// memory: when the bound is reached the oldest entries go first. The key
/// holds the client's DO and CD bits, so a validating client never gets an
/// answer that was synthesised for another.
///
/// Entries are kept as the response's wire bytes, with the offsets of their
/// TTLs: a hit is a copy and a few stores (ID, RD, the question's case, the
/// aged TTLs), which is what lets the server answer hits without decoding.
public final class AnswerCache: Sendable {
    public struct Key: Hashable, Sendable {
        /// The question name in wire form (uncompressed), lowercased.
        let name: [UInt8]
        let type: UInt16
        let klass: UInt16
        /// DO, CD, and whether the query had EDNS (the answer's OPT follows it).
        let flags: UInt8

        public func hash(into h: inout Hasher) {
            name.withUnsafeBytes { h.combine(bytes: $0) }
            h.combine(UInt64(type) << 24 | UInt64(klass) << 8 | UInt64(flags))
        }

        init(lowercasedWireName name: [UInt8], type: UInt16, klass: UInt16, dnssecOK: Bool, checkingDisabled: Bool, edns: Bool) {
            self.name = name
            self.type = type
            self.klass = klass
            flags = (dnssecOK ? 1 : 0) | (checkingDisabled ? 2 : 0) | (edns || dnssecOK ? 4 : 0)
        }

        public init(_ q: Question, dnssecOK: Bool, checkingDisabled: Bool, edns: Bool = false) {
            // Length bytes are below 64, so lowering the whole wire form only touches letters.
            self.init(lowercasedWireName: q.name.wire.map(DNSName.lower), type: q.type, klass: q.klass, dnssecOK: dnssecOK,
                      checkingDisabled: checkingDisabled, edns: edns)
        }
    }

    /// A response as stored: its bytes (ID and RD to be set per query) and
    /// the offsets of the TTLs to lower by the age.
    public struct Hit: Sendable {
        public let wire: [UInt8]
        let ttlOffsets: [Int]
        let age: UInt32

        public var count: Int { wire.count }

        /// Writes the response for a query with `id`, `recursionDesired` and
        /// the question name `qname` (the client's spelling of the key's name,
        /// same length) into `out`, which holds at least `count` bytes.
        public func write(into out: UnsafeMutableRawBufferPointer, id: UInt16, recursionDesired: Bool, qname: UnsafeRawBufferPointer) {
            wire.withUnsafeBytes { out.copyMemory(from: $0) }
            out.storeBytes(of: id.bigEndian, toByteOffset: 0, as: UInt16.self)
            out[2] = out[2] & 0xFE | (recursionDesired ? 1 : 0)
            UnsafeMutableRawBufferPointer(rebasing: out[12..<12 + qname.count]).copyMemory(from: qname)
            guard age > 0 else { return }
            for at in ttlOffsets {
                let ttl = UInt32(bigEndian: out.loadUnaligned(fromByteOffset: at, as: UInt32.self))
                out.storeBytes(of: (ttl > age ? ttl - age : 0).bigEndian, toByteOffset: at, as: UInt32.self)
            }
        }

        /// The response as bytes, for the paths that need an array (TCP, tests).
        public func response(id: UInt16, recursionDesired: Bool, qname: [UInt8]) -> [UInt8] {
            [UInt8](unsafeUninitializedCapacity: wire.count) { out, n in
                qname.withUnsafeBytes { write(into: UnsafeMutableRawBufferPointer(out), id: id, recursionDesired: recursionDesired, qname: $0) }
                n = wire.count
            }
        }
    }

    struct Entry {
        var wire: [UInt8]
        var ttlOffsets: [Int]
        var stored: UInt64
        var expires: UInt64
        var size: Int
    }

    struct State {
        var entries: [Key: Entry] = [:]
        var order: [Key] = []
        var head = 0
        var bytes = 0
    }

    public let capacity: Int
    private let state = Mutex(State())

    public init(bytes capacity: Int) { self.capacity = capacity }

    public var statistics: (entries: Int, bytes: Int) {
        state.withLock { ($0.entries.count, $0.bytes) }
    }

    /// The cached response and its age; nil when absent or expired.
    public func lookup(_ key: Key, now: UInt64) -> Hit? {
        guard capacity > 0 else { return nil }
        return state.withLock { s in
            guard let e = s.entries[key], now < e.expires else { return nil }
            return Hit(wire: e.wire, ttlOffsets: e.ttlOffsets, age: UInt32(clamping: now - e.stored))
        }
    }

    /// Keeps the response `message` for its lifetime: the smallest TTL of its
    /// answers, or for an answer without records (NXDOMAIN, NODATA) the
    /// negative TTL of its SOA (RFC 2308 §5). Errors are not kept. Returns
    /// the wire form kept, which is `Wire.encode(message)`: the caller's
    /// answer, without encoding it twice.
    @discardableResult
    public func store(_ key: Key, _ message: Message, now: UInt64) -> [UInt8]? {
        guard capacity > 0, message.rcode == RCode.noError || message.rcode == RCode.nxDomain, !message.truncated,
              message.question.map({ Key($0, dnssecOK: false, checkingDisabled: false).name == key.name }) == true else { return nil }
        let ttl: UInt32?
        if !message.answers.isEmpty {
            ttl = message.answers.map(\.ttl).min()
        } else {
            ttl = message.authority.compactMap { rr -> UInt32? in
                guard case .soa(_, _, _, _, _, _, let minimum) = rr.data else { return nil }
                return min(rr.ttl, minimum)
            }.first
        }
        guard let ttl, ttl > 0 else { return nil }
        let (wire, ttlOffsets) = Wire.encodeKeepingTTLOffsets(message)
        let size = wire.count + 8 * ttlOffsets.count + key.name.count + 128
        state.withLock { s in
            if let old = s.entries[key] { s.bytes -= old.size } else { s.order.append(key) }
            s.entries[key] = Entry(wire: wire, ttlOffsets: ttlOffsets, stored: now, expires: now + UInt64(ttl), size: size)
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
        return wire
    }
}
