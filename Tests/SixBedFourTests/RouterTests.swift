import TestPackets
import Packet
@testable import SixBedFour
import Testing

@Suite struct RouterTests {
    let prefix = IPv6Address("2001:db8:c000:201::")!.high
    let router = ep("192.0.2.1", 25790)
    let peer = ep("198.51.100.7", 50000)
    let other = ep("203.0.113.20", 40465)

    func makeRouter(rs: Int = 2) -> SixBedFourRouter {
        SixBedFourRouter(settings: RouterSettings(endpoint: router, prefix: prefix, advertisement: ND.Advertisement(prefix: prefix), rsPerSecond: rs))
    }

    func address(_ e: UDPEndpoint, lanip: UInt16 = 1) -> IPv6Address { SixBedFourAddress.encode(prefix: prefix, endpoint: e, lanip: lanip) }

    /// An IPv6/UDP packet of `payload` bytes.
    func packet(from src: IPv6Address, to dst: IPv6Address, hop: UInt8 = 64, payload: Int = 8) -> [UInt8] {
        written { p in
            p.setU32(0, 0x6000_0000)
            p.setU16(4, UInt16(payload))
            p.setU8(6, 17)
            p.setU8(7, hop)
            p.setIPv6(8, src)
            p.setIPv6(24, dst)
            return 40 + payload
        }
    }

    /// Runs one datagram through the router in a 2048-byte buffer; the action and the bytes it points at.
    func fromPeer(_ r: SixBedFourRouter, _ bytes: [UInt8], from e: UDPEndpoint, now: UInt64 = 1) -> (RouterAction, [UInt8]) {
        let p = UnsafeMutableRawPointer.allocate(byteCount: 2048, alignment: 8)
        defer { p.deallocate() }
        bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let a = r.fromPeer(p, length: bytes.count, from: e, now: now)
        switch a {
        case .toTUN(let q, let n), .toPeer(_, let q, let n): return (a, Array(UnsafeRawBufferPointer(start: q, count: n)))
        default: return (a, [])
        }
    }

    @Test func relaysBetweenPeersWithTheHopLimitDecremented() {
        let r = makeRouter()
        let (a, out) = fromPeer(r, packet(from: address(peer), to: address(other)), from: peer)
        guard case .toPeer(let to, _, _) = a else { Issue.record("\(a)"); return }
        #expect(to == other && out[7] == 63)
        #expect(r.counters.relayed == 1)
    }

    /// `status` counts the peers heard from in the last ten minutes, however
    /// their packets interleave; a spoofer is not one.
    @Test func peersHeardFromAreCounted() {
        let r = makeRouter()
        let peers = (0..<3).map { ep("198.51.100.\($0 + 2)", 40000) }
        for second in UInt64(1)...3 {
            for p in peers + peers { _ = fromPeer(r, [], from: p, now: second) }
        }
        #expect(r.counters.peers == 3)
        _ = fromPeer(r, packet(from: IPv6Address("2001:db8:2::99")!, to: address(peers[0])), from: ep("203.0.113.9", 1), now: 4)
        #expect(r.counters.peers == 3)
        _ = fromPeer(r, [], from: peers[0], now: 700)
        #expect(r.counters.peers == 1, "the others went quiet more than ten minutes ago")
    }

    @Test func spoofedSourcesAreDroppedAndCounted() {
        let r = makeRouter()
        // Native source: dropped.
        #expect(fromPeer(r, packet(from: IPv6Address("2001:db8:2::99")!, to: address(other)), from: peer).0 == .drop(.spoofed))
        // Another peer's address from this endpoint: the corrective RA, for where the sender really is.
        let (a, ra) = fromPeer(r, packet(from: address(other), to: IPv6Address("2001:db8:2::2")!), from: peer)
        guard case .toPeer(let to, _, _) = a else { Issue.record("\(a)"); return }
        #expect(to == peer && ra[40] == ND.routerAdvertisement && ra[6] == 58 && ra.count == 88)
        #expect(IPv6Address(bytes: ra[24..<40]) == ND.allNodes, "to ff02::1, which every peer takes")
        #expect(IPv6Address(bytes: ra[72..<88]) == address(peer, lanip: 0))
        #expect(r.counters[.spoofed] == 2 && r.counters.correctiveAdvertisements == 1)
    }

    @Test func solicitationsAreRateLimitedPerSource() {
        let r = makeRouter(rs: 2)
        let rs = written { ND.writeRS($0) }
        #expect(fromPeer(r, rs, from: peer, now: 5).0 != .drop(.rsRateLimited))
        #expect(fromPeer(r, rs, from: ep("198.51.100.7", 50002), now: 5).0 != .drop(.rsRateLimited))
        #expect(fromPeer(r, rs, from: ep("198.51.100.7", 50004), now: 5).0 == .drop(.rsRateLimited), "per IPv4 address")
        #expect(fromPeer(r, rs, from: other, now: 5).0 != .drop(.rsRateLimited), "another source has its own budget")
        #expect(fromPeer(r, rs, from: peer, now: 6).0 != .drop(.rsRateLimited), "the next second")
    }

    @Test func answersTheReferenceRSWithTheSpecsRA() {
        let r = makeRouter()
        let (a, ra) = fromPeer(r, written { ND.writeRS($0) }, from: ep("192.0.2.11", 52034))
        guard case .toPeer = a else { Issue.record("\(a)"); return }
        #expect(ra == hex("6000000000303afffe800000000000000000000000000000ff020000000000000000000000000001"
            + "8600892a0018ffffffffffffffffffff030472c0ffffffffffffffff0000000020010db8c0000201c000020bcb420000"))
    }

    /// Spec §13: the NA vector, from the router given a peer's NS for fe80::.
    @Test func answersNeighborSolicitationsWithTheSpecsNA() {
        let r = makeRouter()
        let asker = ep("192.0.2.12", 36292)
        let ns = written { ND.writeNS($0, source: address(asker), target: ND.routerLinkLocal, linkLayer: asker) }
        let (a, na) = fromPeer(r, ns, from: asker)
        guard case .toPeer(let to, _, _) = a else { Issue.record("\(a)"); return }
        #expect(to == asker)
        #expect(na == hex("6000000000203afffe80000000000000000000000000000020010db8c0000201c000020c8dc40001"
            + "8800e0b3c000000020010db8c0000201c000020164be00000201be64c0000201"))
        // From an endpoint its source does not embed: refused.
        #expect(fromPeer(r, ns, from: peer).0 == .drop(.ndRefused))
    }

    @Test func oversizeAndMalformedAreRefusedWhole() {
        let r = makeRouter()
        #expect(fromPeer(r, packet(from: address(peer), to: address(other), payload: 1250), from: peer).0 == .drop(.oversize))
        #expect(fromPeer(r, Array(packet(from: address(peer), to: address(other)).prefix(30)), from: peer).0 == .drop(.malformed))
        #expect(fromPeer(r, [], from: peer).0 == .keepalive)
        #expect(r.counters[.oversize] == 1 && r.counters[.malformed] == 1 && r.counters.keepalives == 1)
    }

    @Test func expiredHopLimitIsAnsweredWithTimeExceeded() {
        let r = makeRouter()
        let (a, err) = fromPeer(r, packet(from: address(peer), to: address(other), hop: 1), from: peer)
        guard case .toPeer(let to, _, _) = a else { Issue.record("\(a)"); return }
        #expect(to == peer && err[40] == 3 && err[41] == 0)
        #expect(IPv6Address(bytes: err[8..<24]) == IPv6Address(high: prefix, low: 0), "from P::")
        #expect(withPacket(err) { ND.checksum($0, length: $1) } == 0)
        #expect(r.counters[.hopLimit] == 1 && r.counters.icmpErrors == 1)
    }

    @Test func portZeroIsTheRoutersHostAndNativeGoesToTUN() {
        let r = makeRouter()
        let local = IPv6Address(high: prefix, low: 0x11)
        guard case .toTUN(_, _) = fromPeer(r, packet(from: address(peer), to: local), from: peer).0 else { Issue.record("port 0"); return }
        let (a, out) = fromPeer(r, packet(from: address(peer), to: IPv6Address("2001:db8:2::2")!), from: peer)
        guard case .toTUN = a else { Issue.record("\(a)"); return }
        #expect(out[7] == 63)
    }

    @Test func fromTUNToPeersAndUnreachables() {
        let r = makeRouter()
        let p = UnsafeMutableRawPointer.allocate(byteCount: 2048, alignment: 8)
        defer { p.deallocate() }
        func run(_ bytes: [UInt8]) -> RouterAction {
            bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            return r.fromTUN(p, length: bytes.count, now: 1)
        }
        guard case .toPeer(let to, _, _) = run(packet(from: IPv6Address("2001:db8:2::2")!, to: address(peer))), to == peer else { Issue.record("to peer"); return }
        guard case .toTUN(let q, _) = run(packet(from: IPv6Address("2001:db8:2::2")!, to: IPv6Address(high: prefix, low: 0x11))) else { Issue.record("unreachable"); return }
        #expect(q.u8(40) == 1 && q.u8(41) == 3, "address unreachable")
        #expect(run(packet(from: IPv6Address("2001:db8:2::2")!, to: IPv6Address("2001:db8:3::1")!)) == .drop(.notOurPrefix))
    }
}
