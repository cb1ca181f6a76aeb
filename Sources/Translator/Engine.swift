import Glibc
import Packet
import Synchronization

/// What became of one packet. Translation happens in place: the result starts
/// at `start` in the same buffer, which needs `Engine.headroom` free bytes in
/// front of the packet because IPv4 -> IPv6 headers grow.
public enum Outcome: Equatable, Sendable {
    /// The translated packet, to be written back into the TUN device.
    case forward(start: Int, length: Int)
    /// An ICMP error the translator answers with, also written back.
    case reply(start: Int, length: Int)
    /// The translated packet as IPv6 fragments (RFC 7915 §4: an IPv4
    /// packet that may be fragmented does not fit lowest-ipv6-mtu), to be
    /// written in turn.
    case fragments(Fragments)
    case drop(DropReason)
}

/// The fragments of one translated packet, made one at a time in the
/// packet's own buffer: each fragment's header is written just before its
/// piece of payload, over the end of the previous piece. So no payload is
/// copied and nothing is allocated, but a fragment must be written out
/// before the next one is asked for.
public struct Fragments: Equatable, @unchecked Sendable {
    /// The 48-byte header (IPv6 and fragment header) of the whole packet,
    /// kept by the engine.
    let template: UnsafeMutableRawPointer
    /// Where the header of the whole packet started, and its payload's length.
    let start: Int
    let payload: Int
    /// The fragment offset and more-fragments flag of the whole packet (it
    /// may be an IPv4 fragment itself).
    let offset: Int
    let more: Bool
    /// Payload bytes per fragment, a multiple of 8.
    let chunk: Int
    var done = 0

    /// The next fragment, as its start and length in `base`; nil after the last.
    public mutating func next(in base: UnsafeMutableRawPointer) -> (start: Int, length: Int)? {
        guard done < payload else { return nil }
        let piece = min(chunk, payload - done)
        let last = done + piece == payload
        let at = start + done  // the header goes right before payload byte `done`
        let h = base + at
        h.copyMemory(from: template, byteCount: 48)
        h.setU16(4, UInt16(8 + piece))
        h.setU16(42, UInt16(truncatingIfNeeded: offset + done) | (last && !more ? 0 : 1))
        done += piece
        return (at, 48 + piece)
    }
}

/// The RFC 7915 translation engine. One per queue reader: its mutable state
/// (identification counter, error budget) belongs to that reader's thread, and
/// only the counters, behind their lock, are read from elsewhere. All engines
/// share the settings, the dynamic pool and, during a renumbering, the table
/// of which prefix each flow keeps.
public final class Engine: @unchecked Sendable {
    /// Bytes needed in front of every packet: an IPv4 ICMP error that grows into
    /// IPv6 gains 40 bytes twice (outer and inner header) plus a fragment header.
    public static let headroom = 128

    public let settings: TranslatorSettings
    public let pool: DynamicPool?
    public let flows: PrefixFlows?
    /// Until this second a retiring prefix is accepted (settings.retiring);
    /// after it, one comparison per packet is all renumbering costs.
    let transitionEnd: UInt64
    /// During a renumbering, the prefixes an address may be embedded in: the
    /// most specific first (an older /96 inside the new /64 keeps its own
    /// addresses), then the most recent (if two overlap, the later one has
    /// the more flows). The current prefix never expires.
    let accepted: [RetiringPrefix]
    private let counters = Mutex(TranslatorCounters())
    private var nextID: UInt16 = UInt16.random(in: 0...UInt16.max)
    private var errorBudget = 0
    private var lastSource: (host: IPv6Address, address: IPv4Address, second: UInt64, generation: UInt64)?
    /// During a renumbering, the flow of the last packet and its prefix, most
    /// often the flow of this one (either way: the key is the same): within
    /// the same second it needs neither the flow table nor its shared lock.
    var lastFlow: (key: PrefixFlows.Key, prefix: NAT64Prefix, second: UInt64)?

    /// The offload metadata of the packet being translated, for the steps
    /// of `process` (which takes and returns it).
    var offload = Offload()
    private var budgetSecond: UInt64 = 0

    /// The header template of the fragments of one packet, allocated once.
    let fragmentHeader = UnsafeMutableRawPointer.allocate(byteCount: 48, alignment: 8)

    public init(settings: TranslatorSettings, pool: DynamicPool?, flows: PrefixFlows? = nil) {
        self.settings = settings
        self.pool = pool
        self.flows = flows
        transitionEnd = settings.transitionEnd
        let newestFirst = [RetiringPrefix(settings.prefix, until: .max)] + settings.retiring.reversed()
        accepted = newestFirst.enumerated().sorted { ($0.element.value.length, -$0.offset) > ($1.element.value.length, -$1.offset) }.map(\.element)
    }

    deinit { fragmentHeader.deallocate() }

    /// The forwarding counters, bumped on every packet: atomics, not the lock.
    private let forwarded6to4 = Atomic<Int>(0)
    private let forwarded4to6 = Atomic<Int>(0)
    private let coalesced = Atomic<Int>(0)
    private let retiring6to4 = Atomic<Int>(0)
    private let retiring4to6 = Atomic<Int>(0)

    /// `n` datagrams went out joined into super-packets (TunDatapath).
    public func countJoined(_ n: Int) { coalesced.add(n, ordering: .relaxed) }

    public var snapshot: TranslatorCounters {
        var c = counters.withLock { $0 }
        c.translated6to4 = forwarded6to4.load(ordering: .relaxed)
        c.translated4to6 = forwarded4to6.load(ordering: .relaxed)
        c.coalesced = coalesced.load(ordering: .relaxed)
        c.retiring6to4 = retiring6to4.load(ordering: .relaxed)
        c.retiring4to6 = retiring4to6.load(ordering: .relaxed)
        return c
    }

    /// Translates the packet of `length` bytes at `base + start`; `now` is the
    /// wall clock in seconds (for the pool). `offload` describes the packet
    /// as it came (a super-packet, a checksum still to complete) and the
    /// translated one when it returns.
    public func process(_ base: UnsafeMutableRawPointer, start: Int, length: Int, now: UInt64, offload: inout Offload) -> Outcome {
        self.offload = offload
        defer { offload = self.offload }
        return process(base, start: start, length: length, now: now)
    }

    /// A plain packet: a whole one, with its checksums complete.
    public func process(_ base: UnsafeMutableRawPointer, start: Int, length: Int, now: UInt64) -> Outcome {
        precondition(start >= Self.headroom, "packets need Engine.headroom free bytes in front")
        let outcome: Outcome
        guard length >= 1 else { return count(.drop(.malformed)) }
        switch base.u8(start) >> 4 {
        case 6: outcome = translate6to4(base, start: start, length: length, now: now)
        case 4: outcome = translate4to6(base, start: start, length: length, now: now)
        default: outcome = .drop(.unknownVersion)
        }
        // An error the translator answers with is a plain packet.
        if case .reply = outcome { offload = Offload() }
        return count(outcome)
    }

    @discardableResult
    func count(_ o: Outcome) -> Outcome {
        if case .drop(let r) = o { counters.withLock { $0.drops[r.rawValue] += 1 } }
        return o
    }

    /// `retiring`: the packet went through a retiring prefix.
    func counted(_ direction6to4: Bool, _ o: Outcome, retiring: Bool = false) -> Outcome {
        switch o {
        case .forward, .fragments:
            if direction6to4 {
                forwarded6to4.add(1, ordering: .relaxed)
                if retiring { retiring6to4.add(1, ordering: .relaxed) }
            } else {
                forwarded4to6.add(1, ordering: .relaxed)
                if retiring { retiring4to6.add(1, ordering: .relaxed) }
            }
        case .reply, .drop:
            break
        }
        return o
    }

    /// Token bucket for the errors the translator originates.
    func mayReply(_ kind: SentError, now: UInt64) -> Bool {
        if now != budgetSecond {
            budgetSecond = now
            errorBudget = settings.icmpErrorsPerSecond
        }
        guard errorBudget > 0 else { return false }
        errorBudget -= 1
        counters.withLock { $0.errorsSent[kind.rawValue] += 1 }
        return true
    }

    /// The checksum of an ICMP echo quoted inside an error, moved between the
    /// families (RFC 7915 §4.3, §5.3): its type word changes, and ICMPv6's
    /// pseudo-header (over the echo's whole length, from the quoted header)
    /// comes in or goes out. Incremental, because the quote is usually cut short.
    static func quotedEchoChecksum(_ field: UInt16, oldWord: UInt16, newWord: UInt16,
                                   source: IPv6Address, destination: IPv6Address, length: Int, toIPv6: Bool) -> UInt16 {
        var pseudo = InternetChecksum()
        pseudo.addPseudoHeader(source: source, destination: destination, nextHeader: Proto.icmpv6, length: length)
        let sum = UInt64(~pseudo.value)
        return toIPv6 ? InternetChecksum.update(field, removingSum: UInt64(oldWord), addingSum: UInt64(newWord) &+ sum)
            : InternetChecksum.update(field, removingSum: UInt64(oldWord) &+ sum, addingSum: UInt64(newWord))
    }

    /// A TCP or UDP checksum update for new pseudo-header addresses. When the
    /// checksum is still to be completed (offload), the field holds the
    /// pseudo-header sum itself, not its complement, and is updated as such.
    func updateChecksum(_ p: UnsafeMutableRawPointer, at: Int, udp: Bool, pending: Bool,
                        removing old: (IPv6Address, IPv6Address), adding new: (IPv6Address, IPv6Address)) {
        let field = p.u16(at)
        var c = InternetChecksum.update(pending ? ~field : field, removing: old.0, adding: new.0)
        c = InternetChecksum.update(c, removing: old.1, adding: new.1)
        p.setU16(at, pending ? ~c : (udp && c == 0 ? 0xFFFF : c))
    }

    func nextIdentification() -> UInt16 {
        nextID &+= 1
        return nextID
    }

    // MARK: - Address mapping (RFC 7757 first, then RFC 6052, then the pool)

    /// An IPv4 address mapped from IPv6, with the prefix it was embedded in
    /// (nil for a mapping or a pool address).
    struct Mapped4 {
        var address: IPv4Address
        var prefix: NAT64Prefix?
    }

    /// Whether `m` came through a retiring prefix (for the counters).
    func isRetiring(_ m: Mapped4) -> Bool { m.prefix.map { $0 != settings.prefix } ?? false }

    /// The IPv4 address embedded in `a`, and the prefix that held it: the
    /// current prefix, or during a renumbering any prefix still accepted.
    /// Every extraction goes through here, so that both prefixes work alike.
    @inline(__always)
    func embedded(_ a: IPv6Address, now: UInt64) -> Mapped4? {
        guard now < transitionEnd else { return settings.prefix.extract(a).map { Mapped4(address: $0, prefix: settings.prefix) } }
        for r in accepted where r.isActive(at: now) {
            if let v4 = r.value.extract(a) { return Mapped4(address: v4, prefix: r.value) }
        }
        return nil
    }

    /// The policy check (RFC 6052 §3.1) of the prefix the address came from.
    func representable(_ m: Mapped4) -> Result<Mapped4, DropReason> {
        guard let p = m.prefix else { return .success(m) }
        return p.canRepresent(m.address) ? .success(m) : .failure(.nonGlobalAddress)
    }

    /// IPv6 destination -> IPv4: a mapping, or the address embedded in a prefix.
    func destination4(_ a: IPv6Address, now: UInt64) -> Result<Mapped4, DropReason> {
        if let v4 = settings.eam.ipv4(for: a) { return .success(Mapped4(address: v4)) }
        guard let m = embedded(a, now: now) else { return .failure(.untranslatableDestination) }
        return representable(m)
    }

    /// IPv6 source -> IPv4: a mapping, an address in a prefix, or the host's
    /// pool address (allocated on first use).
    func source4(_ a: IPv6Address, now: UInt64) -> Result<Mapped4, DropReason> {
        if let v4 = settings.eam.ipv4(for: a) { return .success(Mapped4(address: v4)) }
        if let m = embedded(a, now: now) { return representable(m) }
        guard let pool else { return .failure(.untranslatableSource) }
        // The host of the last packet, most often the host of this one: its
        // mapping is reused without the pool's lock while no mapping was
        // released, and refreshed through the pool once a second.
        if let c = lastSource, c.host == a, c.second == now, c.generation == pool.generation { return .success(Mapped4(address: c.address)) }
        let v4: IPv4Address
        switch pool.allocate(for: a, now: now) {
        case .success(let x): v4 = x
        case .failure(let r): return .failure(r)
        }
        lastSource = (a, v4, now, pool.generation)
        return .success(Mapped4(address: v4))
    }

    /// IPv4 destination -> IPv6: a mapping, or the host holding the pool address.
    func destination6(_ a: IPv4Address, now: UInt64) -> IPv6Address? {
        if let v6 = settings.eam.ipv6(for: a) { return v6 }
        return pool?.host(for: a, now: now)
    }

    /// IPv4 source -> IPv6: a mapping, or the address embedded in `prefix`
    /// (the current one, or during a renumbering the one its flow keeps);
    /// without `throughMappings`, the embedded address only (a hairpin).
    func source6(_ a: IPv4Address, in prefix: NAT64Prefix, throughMappings: Bool = true) -> Result<IPv6Address, DropReason> {
        if throughMappings, let v6 = settings.eam.ipv6(for: a) { return .success(v6) }
        return prefix.canRepresent(a) ? .success(prefix.embed(a)) : .failure(.nonGlobalAddress)
    }

    /// Where the inner packet of an ICMP error goes: it is a packet the other
    /// way round, so its addresses map as the outer ones do in reverse, and
    /// without allocating pool addresses.
    func inner4(_ a: IPv6Address, now: UInt64) -> Mapped4? {
        if let v4 = settings.eam.ipv4(for: a) { return Mapped4(address: v4) }
        if let m = embedded(a, now: now) { return m }
        return pool?.existingAddress(for: a).map { Mapped4(address: $0) }
    }
}

/// The header writers of the three places that make headers: the outer and the
/// quoted packet of a translation, and the errors the translator sends.
enum Header {
    /// A 20-byte IPv4 header at `q`, with its checksum.
    static func ipv4(_ q: UnsafeMutableRawPointer, tos: UInt8, totalLength: Int, id: UInt16, flags: UInt16,
                     ttl: UInt8, proto: UInt8, source: IPv4Address, destination: IPv4Address) {
        q.setU8(0, 0x45)
        q.setU8(1, tos)
        q.setU16(2, UInt16(clamping: totalLength))
        q.setU16(4, id)
        q.setU16(6, flags)
        q.setU8(8, ttl)
        q.setU8(9, proto)
        q.setU16(10, 0)
        q.setIPv4(12, source)
        q.setIPv4(16, destination)
        var c = InternetChecksum()
        c.add(q, offset: 0, count: 20)
        q.setU16(10, c.value)
    }

    /// A 40-byte IPv6 header at `q`, followed by a fragment header when
    /// `fragment` is given (offset in bytes, more-fragments flag, identification).
    static func ipv6(_ q: UnsafeMutableRawPointer, trafficClass: UInt8, payloadLength: Int, next: UInt8, hopLimit: UInt8,
                     source: IPv6Address, destination: IPv6Address, fragment: (offset: UInt16, more: Bool, id: UInt32)? = nil) {
        q.setU32(0, 0x6000_0000 | UInt32(trafficClass) << 20)
        q.setU16(4, UInt16(clamping: payloadLength))
        q.setU8(6, fragment == nil ? next : Proto.fragment)
        q.setU8(7, hopLimit)
        q.setIPv6(8, source)
        q.setIPv6(24, destination)
        if let f = fragment {
            q.setU8(40, next)
            q.setU8(41, 0)
            q.setU16(42, f.offset | (f.more ? 1 : 0))
            q.setU32(44, f.id)
        }
    }
}

/// IP protocol numbers the translator treats specially.
enum Proto {
    static let icmp: UInt8 = 1
    static let tcp: UInt8 = 6
    static let udp: UInt8 = 17
    static let icmpv6: UInt8 = 58
    static let hopByHop: UInt8 = 0
    static let routing: UInt8 = 43
    static let fragment: UInt8 = 44
    static let destinationOptions: UInt8 = 60
}
