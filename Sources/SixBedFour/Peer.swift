import Packet

public struct PeerCounters: Sendable, Equatable, CustomStringConvertible {
    public var sentDirect = 0, sentViaRouter = 0, receivedDirect = 0, receivedFromRouter = 0
    public var probes = 0, probeAnswers = 0, solicitations = 0, advertisements = 0, keepalives = 0, dropped = 0

    public var description: String {
        "sent_direct=\(sentDirect) sent_via_router=\(sentViaRouter) received_direct=\(receivedDirect) received_from_router=\(receivedFromRouter) "
            + "probes=\(probes) probe_answers=\(probeAnswers) rs=\(solicitations) ra=\(advertisements) keepalives=\(keepalives) dropped=\(dropped)"
    }
}

/// The 6bed4 peer's decisions (spec §5 and §8, with the recommendations):
/// solicit until an RA arrives, then keep the NAT mapping alive; send to
/// other peers directly once they are known to be reachable (spec §5.8
/// recommendation), through the router otherwise. Single-threaded: the
/// caller's loop feeds it packets and ticks, and it answers through the
/// closures.
public final class PeerEngine {
    public let server: UDPEndpoint
    public let keepalivePeriod: Double
    public private(set) var address: IPv6Address?
    public private(set) var counters = PeerCounters()

    /// Sends a datagram.
    public var send: (UDPEndpoint, UnsafeMutableRawPointer, Int) -> Void = { _, _, _ in }
    /// Sends an empty datagram with the keepalive's low TTL.
    public var sendKeepalive: (UDPEndpoint) -> Void = { _ in }
    /// Writes a packet to the TUN device.
    public var write: (UnsafeMutableRawPointer, Int) -> Void = { _, _ in }
    /// An RA gave an address (the old one, if any, to be replaced) and routes.
    public var configure: (ND.Learned, _ old: IPv6Address?, _ new: IPv6Address) -> Void = { _, _, _ in }

    /// A direct path is used while the other peer was heard from directly this recently.
    public static let directLifetime = 6.0
    /// A direct path in use is probed when nothing came back for this long.
    static let probeAfter = 2.0
    static let probeInterval = 1.0
    /// A peer is probed only while it has been in contact this recently.
    static let contactLifetime = 30.0
    /// After this many probes in a row without an answer, a peer is probed
    /// once per back-off, which doubles from `firstBackoff` up to
    /// `maxBackoff`. A reference peer never answers a probe directly: it
    /// sends its answer, and three solicitations of its own, to an endpoint
    /// it decodes with the legacy address layout, i.e. to unrelated hosts
    /// (spec §5.8, correction). Unbounded probing would keep that going.
    static let maxUnanswered = 3
    static let firstBackoff = 4.0, maxBackoff = 300.0

    /// Probing of one peer: when the next probe may go, and how it went.
    struct Probing {
        var next = -Double.infinity
        var unanswered = 0
        var backoff = PeerEngine.firstBackoff
    }

    /// When each peer was last heard from directly, and through the router.
    private var heard: [UDPEndpoint: Double] = [:]
    private var relayed: [UDPEndpoint: Double] = [:]
    private(set) var probing: [UDPEndpoint: Probing] = [:]
    private var nextSolicitation = 0.0
    private var solicitationGap = 1.0
    private var nextKeepalive = 0.0
    private var lastFromServer = 0.0
    private var lastToServer = 0.0
    private let scratch = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 8)

    public init(server: UDPEndpoint, keepalivePeriod: Double = 30) {
        self.server = server
        self.keepalivePeriod = keepalivePeriod
    }

    deinit { scratch.deallocate() }

    var prefix: UInt64? { address?.high }

    /// A datagram of `length` bytes from `from` (spec §8.1).
    public func fromUDP(_ p: UnsafeMutableRawPointer, length: Int, from: UDPEndpoint, now: Double) {
        guard length > 40, length <= 1280, p.u8(0) >> 4 == 6, 40 + Int(p.u16(4)) <= length else { return dropped() }
        let total = 40 + Int(p.u16(4))
        if from == server {
            lastFromServer = now
            if ND.isND(p, length: total) {
                guard p.u8(40) == ND.routerAdvertisement, let learned = ND.readRA(p, length: total), let prefix114 = learned.prefix114 else { return dropped() }
                advertised(learned, address: IPv6Address(high: prefix114.high, low: prefix114.low & ~0x3FFF | 1), now: now)
                return
            }
            counters.receivedFromRouter += 1
            if let prefix, p.ipv6(8).high == prefix { relayed[SixBedFourAddress.decode(p.ipv6(8)).endpoint] = now }
            return write(p, total)
        }
        // Another peer: its source must be in our /64 and embed where it sent from.
        let src = p.ipv6(8)
        guard let prefix, let me = address, src.high == prefix, SixBedFourAddress.decode(src).endpoint == from else { return dropped() }
        heard[from] = now
        // Anything straight from the peer proves the path: probing starts afresh.
        probing[from] = nil
        if ND.isND(p, length: total) {
            // A probe for us is answered straight back; an answer to ours needs nothing more.
            if p.u8(40) == ND.neighborSolicitation, ND.isWellFormed(p, length: total), total >= 64, p.ipv6(48) == me {
                send(from, scratch, ND.writeProbeAnswer(scratch, source: me, to: p.ipv6(8), linkLayer: SixBedFourAddress.decode(me).endpoint))
            } else if p.u8(40) == ND.neighborAdvertisement {
                counters.probeAnswers += 1
            }
            return
        }
        counters.receivedDirect += 1
        write(p, total)
    }

    /// A packet from the local stack (spec §8.2). The hop limit is left alone
    /// (spec §11): the peer is the host's own interface, not a router.
    public func fromTUN(_ p: UnsafeMutableRawPointer, length: Int, now: Double) {
        guard let prefix, let me = address, length >= 40, length <= 1280, p.u8(0) >> 4 == 6, 40 + Int(p.u16(4)) <= length else { return dropped() }
        let total = 40 + Int(p.u16(4))
        let dst = p.ipv6(24)
        // The kernel's own neighbour discovery and multicast stay home.
        guard !ND.isND(p, length: total), dst.high >> 56 != 0xFF else { return dropped() }
        if dst.high == prefix {
            let (peer, _) = SixBedFourAddress.decode(dst)
            if peer.port != 0, peer != server, dst != me {
                let lastHeard = heard[peer] ?? -.infinity
                // Only a peer that has talked to us (through the router) is
                // probed: a probe that arrives first at a NAT in front of the
                // other peer takes the port its own mapping would need there,
                // and the path could never open. The peer behind the NAT
                // probes first; its probe opens the way for ours.
                let contact = max(lastHeard, relayed[peer] ?? -.infinity)
                if now - contact <= Self.contactLifetime, now - lastHeard > Self.probeAfter, now >= probing[peer, default: Probing()].next {
                    var state = probing[peer, default: Probing()]
                    state.unanswered += 1
                    if state.unanswered >= Self.maxUnanswered {
                        state.next = now + state.backoff
                        state.backoff = min(state.backoff * 2, Self.maxBackoff)
                    } else {
                        state.next = now + Self.probeInterval
                    }
                    probing[peer] = state
                    counters.probes += 1
                    send(peer, scratch, ND.writeNS(scratch, source: me, target: dst, linkLayer: SixBedFourAddress.decode(me).endpoint))
                }
                if now - lastHeard <= Self.directLifetime {
                    counters.sentDirect += 1
                    return send(peer, p, total)
                }
            }
        }
        counters.sentViaRouter += 1
        lastToServer = now
        send(server, p, total)
    }

    /// Timers: router solicitations with back-off until an RA (1, 3, 7, …
    /// seconds apart, at most the keepalive period), then keepalives with
    /// jitter. Returns when it wants to be called next.
    public func tick(now: Double) -> Double {
        if address == nil {
            if now >= nextSolicitation {
                counters.solicitations += 1
                send(server, scratch, ND.writeRS(scratch))
                nextSolicitation = now + solicitationGap
                solicitationGap = min(solicitationGap * 2 + 1, keepalivePeriod)
            }
            return nextSolicitation
        }
        if now >= nextKeepalive {
            // Data went to the router, yet nothing came back for two periods:
            // the NAT may have moved us. An RS gets the address that goes with
            // where we are now (spec §5.3 recommendation).
            if lastToServer > lastFromServer + 2 * keepalivePeriod, now - lastFromServer > 2 * keepalivePeriod {
                counters.solicitations += 1
                lastFromServer = now
                send(server, scratch, ND.writeRS(scratch))
            } else {
                counters.keepalives += 1
                sendKeepalive(server)
            }
            nextKeepalive = now + keepalivePeriod * Double.random(in: 0.8...1.0)
        }
        if heard.count > 1024 { heard = heard.filter { now - $0.value <= Self.directLifetime } }
        if relayed.count > 1024 { relayed = relayed.filter { now - $0.value <= Self.contactLifetime } }
        // A peer out of contact this long is probed from the start again, should it come back.
        if probing.count > 1024 { probing = probing.filter { now - $0.value.next <= Self.contactLifetime } }
        return nextKeepalive
    }

    func advertised(_ learned: ND.Learned, address new: IPv6Address, now: Double) {
        counters.advertisements += 1
        let old = address
        if old != new {
            // A new endpoint: paths learned for the old one no longer hold.
            heard = [:]
            relayed = [:]
            probing = [:]
        }
        address = new
        if old == nil { nextKeepalive = now + keepalivePeriod * Double.random(in: 0.8...1.0) }
        configure(learned, old, new)
    }

    func dropped() { counters.dropped += 1 }
}
