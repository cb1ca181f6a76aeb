import Packet
import Synchronization

/// What the 6bed4 router is handed from the config.
public struct RouterSettings: Sendable {
    /// The router's public endpoint: peers send to it, relayed frames come from it.
    public var endpoint: UDPEndpoint
    /// The router's /64 (top 64 bits), completed as spec §4 says.
    public var prefix: UInt64
    public var advertisement: ND.Advertisement
    /// Router solicitations (and corrective RAs) answered per second and IPv4 source.
    public var rsPerSecond: Int
    /// The ICMPv6 errors the router originates, per second.
    public var icmpErrorsPerSecond: Int

    public init(endpoint: UDPEndpoint, prefix: UInt64, advertisement: ND.Advertisement, rsPerSecond: Int = 2, icmpErrorsPerSecond: Int = 100) {
        self.endpoint = endpoint
        self.prefix = prefix
        self.advertisement = advertisement
        self.rsPerSecond = rsPerSecond
        self.icmpErrorsPerSecond = icmpErrorsPerSecond
    }

    /// P::, the router's own global address (port field 0), source of its errors.
    public var address: IPv6Address { IPv6Address(high: prefix, low: 0) }
    /// The "complete address" of the router (spec §3.3), the target of its NAs.
    public var completeAddress: IPv6Address { SixBedFourAddress.encode(prefix: prefix, endpoint: endpoint, lanip: 0) }
}

/// Where a packet goes. Pointers are into the buffer the packet came in, or
/// into the router's own scratch buffer for the errors it makes.
public enum RouterAction: Equatable {
    case toTUN(UnsafeMutableRawPointer, Int)
    case toPeer(UDPEndpoint, UnsafeMutableRawPointer, Int)
    case drop(RouterDrop)
    /// An empty datagram: a peer's keepalive, which needs nothing.
    case keepalive
}

public enum RouterDrop: Int, CaseIterable, Sendable, CustomStringConvertible {
    case malformed, oversize, spoofed, ndRefused, rsRateLimited, multicast, hopLimit, notOurPrefix, unreachable

    public var description: String {
        switch self {
        case .malformed: "malformed"
        case .oversize: "over_1280_bytes"
        case .spoofed: "spoofed_source"
        case .ndRefused: "nd_refused"
        case .rsRateLimited: "rs_rate_limited"
        case .multicast: "multicast"
        case .hopLimit: "hop_limit_exceeded"
        case .notOurPrefix: "not_our_prefix"
        case .unreachable: "unreachable"
        }
    }
}

public struct RouterCounters: Sendable, Equatable, CustomStringConvertible {
    /// Peer to peer through the router: the path direct peering avoids.
    public var relayed = 0
    public var relayedBytes = 0
    public var peerToNative = 0
    public var nativeToPeer = 0
    public var advertisements = 0
    public var correctiveAdvertisements = 0
    public var neighborAdvertisements = 0
    public var keepalives = 0
    public var icmpErrors = 0
    /// Peers heard from in the last ten minutes (a gauge, not a count of packets).
    public var peers = 0
    public var drops = [Int](repeating: 0, count: RouterDrop.allCases.count)

    public subscript(r: RouterDrop) -> Int { drops[r.rawValue] }

    /// Name and value of each counter, for `status` and metrics.
    public var fields: [(String, Int)] {
        [("peers", peers), ("relayed", relayed), ("relayed_bytes", relayedBytes), ("peer_to_native", peerToNative), ("native_to_peer", nativeToPeer),
         ("ra", advertisements), ("corrective_ra", correctiveAdvertisements), ("na", neighborAdvertisements),
         ("keepalives", keepalives), ("icmp_errors", icmpErrors)]
            + RouterDrop.allCases.filter { self[$0] > 0 }.map { ("drop.\($0)", self[$0]) }
    }

    public var description: String { fields.map { "\($0.0)=\($0.1)" }.joined(separator: " ") }
}

/// The 6bed4 router's decisions (spec §6, with its recommendations): one per
/// datapath thread, packets handled in place.
public final class SixBedFourRouter: @unchecked Sendable {
    public let settings: RouterSettings
    private let counting = Mutex(RouterCounters())
    /// Where errors are made; the invoking packet is still needed while they are.
    private let scratch = UnsafeMutableRawPointer.allocate(byteCount: 1280, alignment: 8)
    private var solicitations: [IPv4Address: (second: UInt64, count: Int)] = [:]
    private var errorSecond: UInt64 = 0
    private var errorBudget = 0

    public init(settings: RouterSettings) { self.settings = settings }
    deinit { scratch.deallocate() }

    public var counters: RouterCounters {
        var c = counting.withLock { $0 }
        c.peers = peerCount.load(ordering: .relaxed)
        return c
    }

    /// When each peer endpoint was last heard from. The router keeps no
    /// state a packet needs (addresses embed the endpoints); this is only
    /// for `status`. Written by the datapath thread alone; a known peer
    /// costs a lookup, a new one an insertion, bounded in number.
    private var heardFrom: [UDPEndpoint: UInt64] = [:]
    private var pruned: UInt64 = 0
    /// The peers recently heard from, one slot per hash: a peer found in its
    /// slot for this second costs no table lookup, so the table is written
    /// about once a second per peer, however the peers' packets interleave.
    private var recent = [(peer: UDPEndpoint, second: UInt64)](repeating: (UDPEndpoint(address: IPv4Address(rawValue: 0), port: 0), 0), count: 64)
    private let peerCount = Atomic<Int>(0)
    static let peerWindow: UInt64 = 600, maxTrackedPeers = 1 << 16

    func heard(_ peer: UDPEndpoint, now: UInt64) {
        let slot = Int(truncatingIfNeeded: (peer.address.rawValue &* 0x9E37_79B1) >> 16 ^ UInt32(peer.port)) & (recent.count - 1)
        if recent[slot].peer == peer, recent[slot].second == now { return }
        recent[slot] = (peer, now)
        // Pruning rebuilds the table, once a minute at most.
        if now >= pruned + 60 {
            pruned = now
            heardFrom = heardFrom.filter { now - min(now, $0.value) <= Self.peerWindow }
        } else if heardFrom.count >= Self.maxTrackedPeers, heardFrom[peer] == nil {
            return
        }
        heardFrom[peer] = now
        peerCount.store(heardFrom.count, ordering: .relaxed)
    }

    func count(_ f: (inout RouterCounters) -> Void) { counting.withLock { f(&$0) } }

    func drop(_ r: RouterDrop) -> RouterAction {
        count { $0.drops[r.rawValue] += 1 }
        return .drop(r)
    }

    /// A datagram of `length` bytes from `source` (spec §6.1). The buffer
    /// behind `p` must hold 1280 bytes: answers are written over the question.
    public func fromPeer(_ p: UnsafeMutableRawPointer, length: Int, from source: UDPEndpoint, now: UInt64) -> RouterAction {
        if length == 0 {
            heard(source, now: now)
            count { $0.keepalives += 1 }
            return .keepalive
        }
        // Larger datagrams are refused whole, never cut to size (the reference's bug).
        guard length <= 1280 else { return drop(.oversize) }
        guard length >= 40, p.u8(0) >> 4 == 6, 40 + Int(p.u16(4)) <= length else { return drop(.malformed) }
        let total = 40 + Int(p.u16(4))
        let src = p.ipv6(8), dst = p.ipv6(24)
        let prefix = settings.prefix

        if ND.isND(p, length: total) {
            guard ND.isWellFormed(p, length: total) else { return drop(.ndRefused) }
            switch p.u8(40) {
            case ND.routerSolicitation:
                guard ND.isAcceptableRS(p, length: total) else { return drop(.ndRefused) }
                guard mayAdvertise(to: source.address, now: now) else { return drop(.rsRateLimited) }
                heard(source, now: now)
                // An RS from :: gets its RA on ff02::1; the version word comes back as it came.
                let n = ND.writeRA(p, settings.advertisement, for: source, to: src.high >> 48 == 0 ? ND.allNodes : src, versionWord: p.u32(0))
                count { $0.advertisements += 1 }
                return .toPeer(source, p, n)
            case ND.neighborSolicitation:
                let target = p.ipv6(48)
                let ours = target == ND.routerLinkLocal || target == settings.completeAddress
                    || target == IPv6Address(high: SixBedFourAddress.linkLocal, low: settings.completeAddress.low)
                guard total == 64 || total == 72, ours, SixBedFourAddress.validates(src, from: source, prefix: prefix) else { return drop(.ndRefused) }
                let n = ND.writeNA(p, router: settings.endpoint, prefix: prefix, to: src)
                count { $0.neighborAdvertisements += 1 }
                return .toPeer(source, p, n)
            default:
                return drop(.ndRefused)
            }
        }
        guard dst.high >> 56 != 0xFF else { return drop(.multicast) }
        guard src.high == prefix, SixBedFourAddress.decode(src).endpoint == source else {
            guard src.high == prefix else { return drop(.spoofed) }
            // A source in our /64 from another endpoint: the peer's NAT mapping
            // changed, or someone spoofs it. Either way the packet goes, and the
            // sender learns the address that goes with where it really is
            // (spec §5.3, done right: to ff02::1, as an RA, rate-limited).
            count { $0.drops[RouterDrop.spoofed.rawValue] += 1 }
            guard mayAdvertise(to: source.address, now: now) else { return .drop(.spoofed) }
            let n = ND.writeRA(p, settings.advertisement, for: source, to: ND.allNodes)
            count { $0.correctiveAdvertisements += 1 }
            return .toPeer(source, p, n)
        }
        heard(source, now: now)
        if dst.high == prefix {
            let (endpoint, _) = SixBedFourAddress.decode(dst)
            // Port 0 names no peer: the router's host (spec §3.5), unchanged.
            if endpoint.port == 0 {
                count { $0.peerToNative += 1 }
                return .toTUN(p, total)
            }
            guard decrementHopLimit(p) else { return timeExceeded(p, length: total, now: now) { .toPeer(source, $0, $1) } }
            // The router's complete address is the router itself, not a peer to relay to.
            if endpoint == settings.endpoint {
                count { $0.peerToNative += 1 }
                return .toTUN(p, total)
            }
            count {
                $0.relayed += 1
                $0.relayedBytes += total
            }
            return .toPeer(endpoint, p, total)
        }
        guard decrementHopLimit(p) else { return timeExceeded(p, length: total, now: now) { .toPeer(source, $0, $1) } }
        count { $0.peerToNative += 1 }
        return .toTUN(p, total)
    }

    /// A packet the kernel routed into the TUN device (spec §6.2).
    public func fromTUN(_ p: UnsafeMutableRawPointer, length: Int, now: UInt64) -> RouterAction {
        guard length >= 40, p.u8(0) >> 4 == 6, 40 + Int(p.u16(4)) <= length else { return drop(.malformed) }
        let total = 40 + Int(p.u16(4))
        // The kernel's own neighbour discovery never goes on the wire.
        if ND.isND(p, length: total) { return drop(.ndRefused) }
        let dst = p.ipv6(24)
        guard dst.high >> 56 != 0xFF else { return drop(.multicast) }
        guard dst.high == settings.prefix else { return drop(.notOurPrefix) }
        guard decrementHopLimit(p) else { return timeExceeded(p, length: total, now: now) { .toTUN($0, $1) } }
        let (endpoint, _) = SixBedFourAddress.decode(dst)
        // RFC 4443 §3.1 code 3: no peer can have a port-0 address, nor the router's own.
        guard endpoint.port != 0, endpoint != settings.endpoint else {
            return refuse(.unreachable, type: 1, code: 3, field: 0, invoking: p, length: total, now: now) { .toTUN($0, $1) }
        }
        guard total <= 1280 else {
            return refuse(.oversize, type: 2, code: 0, field: 1280, invoking: p, length: total, now: now) { .toTUN($0, $1) }
        }
        count { $0.nativeToPeer += 1 }
        return .toPeer(endpoint, p, total)
    }

    /// Decrements the hop limit; false when it has run out.
    func decrementHopLimit(_ p: UnsafeMutableRawPointer) -> Bool {
        let hop = p.u8(7)
        guard hop > 1 else { return false }
        p.setU8(7, hop - 1)
        return true
    }

    func timeExceeded(_ p: UnsafeMutableRawPointer, length: Int, now: UInt64, via: (UnsafeMutableRawPointer, Int) -> RouterAction) -> RouterAction {
        refuse(.hopLimit, type: 3, code: 0, field: 0, invoking: p, length: length, now: now, via: via)
    }

    /// Counts the drop and answers it with an ICMPv6 error sent `via`, unless
    /// rate-limited.
    func refuse(_ reason: RouterDrop, type: UInt8, code: UInt8, field: UInt32, invoking p: UnsafeMutableRawPointer, length: Int, now: UInt64,
                via: (UnsafeMutableRawPointer, Int) -> RouterAction) -> RouterAction {
        count { $0.drops[reason.rawValue] += 1 }
        guard let (q, n) = icmpError(type: type, code: code, field: field, invoking: p, length: length, now: now) else { return .drop(reason) }
        return via(q, n)
    }

    /// An ICMPv6 error about the packet at `p` (RFC 4443), from P::, made in
    /// the scratch buffer; nil when rate-limited or not to be answered (an
    /// error about an error, a multicast or unspecified source).
    func icmpError(type: UInt8, code: UInt8, field: UInt32, invoking p: UnsafeMutableRawPointer, length: Int, now: UInt64) -> (UnsafeMutableRawPointer, Int)? {
        let src = p.ipv6(8)
        guard src.high >> 56 != 0xFF, src != IPv6Address(high: 0, low: 0), !(p.u8(6) == ND.icmpv6 && length > 40 && p.u8(40) < 128) else { return nil }
        if now != errorSecond {
            errorSecond = now
            errorBudget = settings.icmpErrorsPerSecond
        }
        guard errorBudget > 0 else { return nil }
        errorBudget -= 1
        let quoted = min(length, 1280 - 48)
        let q = scratch
        q.setU32(0, 0x6000_0000)
        q.setU16(4, UInt16(8 + quoted))
        q.setU8(6, ND.icmpv6)
        q.setU8(7, 64)
        q.setIPv6(8, settings.address)
        q.setIPv6(24, src)
        q.setU8(40, type)
        q.setU8(41, code)
        q.setU16(42, 0)
        q.setU32(44, field)
        (q + 48).copyMemory(from: p, byteCount: quoted)
        ND.seal(q, length: 48 + quoted)
        count { $0.icmpErrors += 1 }
        return (q, 48 + quoted)
    }

    /// The per-source budget of RAs, so that the router is no reflector.
    func mayAdvertise(to source: IPv4Address, now: UInt64) -> Bool {
        if solicitations.count > 4096 { solicitations = solicitations.filter { $0.value.second == now } }
        var entry = solicitations[source] ?? (now, 0)
        if entry.second != now { entry = (now, 0) }
        guard entry.count < settings.rsPerSecond else { return false }
        entry.count += 1
        solicitations[source] = entry
        return true
    }
}
