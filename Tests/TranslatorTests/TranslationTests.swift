import TestPackets
import Tun
import Foundation
import Packet
import Testing
@testable import Translator

let c6 = "2001:db8:1::2", s4 = "203.0.113.2", s4in6 = "2001:db8:64::cb00:7102"
let c4 = "198.51.100.2", c4in6 = "2001:db8:64::c633:6402", s6 = "2001:db8:2::10", s6eam = "203.0.113.10"
let eam = [("203.0.113.10/32", "2001:db8:2::10/128")]

@Suite struct TranslationTests {
    @Test func udpFromIPv6HostThroughThePool() throws {
        let e = try makeEngine(eam: eam)
        let data = Array("hello".utf8)
        let (o, out) = run(e, Build.ipv6(src: c6, dst: s4in6, next: 17, hop: 64, tc: 0xB8, payload: Build.udp(sport: 5000, dport: 53, data: data, src: c6, dst: s4in6)))
        guard case .forward = o else { Issue.record("\(o)"); return }
        #expect(out.count == 20 + 8 + data.count)
        #expect(out[0] == 0x45 && out[1] == 0xB8 && out[8] == 63 && out[9] == 17)
        #expect(IPv4Address(bytes: out[12..<16]).description == "192.0.2.128", "first pool address")
        #expect(IPv4Address(bytes: out[16..<20]).description == s4)
        #expect(out[6] & 0x40 == 0, "small packets leave DF clear (RFC 7915 §5.1)")
        #expect(Verify.ipv4Header(out) && Verify.l4of4(out))
        #expect(Array(out[28...]) == data)

        // The reply finds its way back to the same host.
        let reply = Build.ipv4(src: s4, dst: "192.0.2.128", proto: 17, payload: Build.udp(sport: 53, dport: 5000, data: data, src: s4, dst: "192.0.2.128"))
        let (o2, back) = run(e, reply)
        guard case .forward = o2 else { Issue.record("\(o2)"); return }
        #expect(back.count == 40 + 8 + data.count && back[6] == 17 && back[7] == 63)
        #expect(IPv6Address(bytes: back[8..<24]).description == s4in6)
        #expect(IPv6Address(bytes: back[24..<40]).description == c6)
        #expect(Verify.l4of6(back))
        #expect(e.snapshot.translated6to4 == 1 && e.snapshot.translated4to6 == 1)
    }

    @Test func tcpBothWays() throws {
        let e = try makeEngine(eam: eam)
        let (_, out) = run(e, Build.ipv6(src: c6, dst: s4in6, next: 6, payload: Build.tcp(sport: 40000, dport: 80, src: c6, dst: s4in6)))
        #expect(out.count == 40 && out[9] == 6 && Verify.ipv4Header(out) && Verify.l4of4(out))
        // An IPv4 client reaches the IPv6-only server through its mapping.
        let (_, in6) = run(e, Build.ipv4(src: c4, dst: s6eam, proto: 6, payload: Build.tcp(sport: 40000, dport: 80, src: c4, dst: s6eam)))
        #expect(in6.count == 60 && in6[6] == 6)
        #expect(IPv6Address(bytes: in6[8..<24]).description == c4in6, "the client appears as prefix::c4")
        #expect(IPv6Address(bytes: in6[24..<40]).description == s6)
        #expect(Verify.l4of6(in6))
        // And the server's answer goes back from the mapped address.
        let (_, out4) = run(e, Build.ipv6(src: s6, dst: c4in6, next: 6, payload: Build.tcp(sport: 80, dport: 40000, src: s6, dst: c4in6)))
        #expect(IPv4Address(bytes: out4[12..<16]).description == s6eam && IPv4Address(bytes: out4[16..<20]).description == c4)
        #expect(Verify.ipv4Header(out4) && Verify.l4of4(out4))
    }

    @Test func echoBothWays() throws {
        let e = try makeEngine()
        let body: [UInt8] = [0x12, 0x34, 0, 1] + Array(repeating: 0xAB, count: 56)
        let (_, v4) = run(e, Build.ipv6(src: c6, dst: s4in6, next: 58, payload: Build.icmpv6(type: 128, code: 0, body: Array(body[4...]), src: c6, dst: s4in6)))
        #expect(v4[9] == 1 && v4[20] == 8 && v4[21] == 0 && Verify.ipv4Header(v4) && Verify.l4of4(v4))
        let reply = Build.ipv4(src: s4, dst: "192.0.2.128", proto: 1, payload: Build.icmpv4(type: 0, code: 0, rest: 0x12340001, body: Array(body[4...])))
        let (_, v6) = run(e, reply)
        #expect(v6[6] == 58 && v6[40] == 129 && Verify.l4of6(v6))
        #expect(v6[44..<48] == [0x12, 0x34, 0, 1], "identifier and sequence kept")
    }

    @Test func icmpv4ErrorCarryingUDPBecomesICMPv6() throws {
        let e = try makeEngine()
        // The pool address exists once c6 has sent something.
        _ = run(e, Build.ipv6(src: c6, dst: s4in6, next: 17, payload: Build.udp(sport: 5000, dport: 9, data: [1, 2, 3], src: c6, dst: s4in6)))
        let quoted = Build.ipv4(src: "192.0.2.128", dst: s4, proto: 17, ttl: 63, payload: Build.udp(sport: 5000, dport: 9, data: [1, 2, 3], src: "192.0.2.128", dst: s4))
        let err = Build.ipv4(src: s4, dst: "192.0.2.128", proto: 1, payload: Build.icmpv4(type: 3, code: 3, body: quoted))
        let (o, v6) = run(e, err)
        guard case .forward = o else { Issue.record("\(o)"); return }
        #expect(v6[40] == 1 && v6[41] == 4, "port unreachable")
        #expect(Verify.l4of6(v6))
        let inner = Array(v6[48...])
        #expect(inner[0] >> 4 == 6 && inner[6] == 17)
        #expect(IPv6Address(bytes: inner[8..<24]).description == c6)
        #expect(IPv6Address(bytes: inner[24..<40]).description == s4in6)
        #expect(Verify.l4of6(inner), "the quoted UDP checksum matches its new addresses")
    }

    @Test func icmpv6ErrorCarryingTCPBecomesICMPv4() throws {
        let e = try makeEngine(eam: eam)
        let quoted = Build.ipv6(src: c4in6, dst: s6, next: 6, hop: 63, payload: Build.tcp(sport: 40000, dport: 81, src: c4in6, dst: s6))
        let err = Build.ipv6(src: s6, dst: c4in6, next: 58, payload: Build.icmpv6(type: 1, code: 4, body: quoted, src: s6, dst: c4in6))
        let (o, v4) = run(e, err)
        guard case .forward = o else { Issue.record("\(o)"); return }
        #expect(v4[20] == 3 && v4[21] == 3, "port unreachable")
        #expect(IPv4Address(bytes: v4[12..<16]).description == s6eam && IPv4Address(bytes: v4[16..<20]).description == c4)
        #expect(Verify.ipv4Header(v4) && Verify.l4of4(v4))
        let inner = Array(v4[28...])
        #expect(inner.count == 40 && inner[9] == 6)
        #expect(IPv4Address(bytes: inner[12..<16]).description == c4 && IPv4Address(bytes: inner[16..<20]).description == s6eam)
        #expect(Verify.ipv4Header(inner) && Verify.l4of4(inner))
    }

    /// The packet inside an error is translated like a packet (RFC 7915
    /// §5.3), with the DF rule of §5.1: set for one over 1260 bytes, as
    /// the full-sized packets of a flow are, clear for a small one.
    @Test func theQuotedPacketGetsTheDFRule() throws {
        let e = try makeEngine(eam: eam)
        for (size, df) in [(1400, true), (100, false)] {
            let udp = Build.udp(sport: 40000, dport: 81, data: Array(repeating: 3, count: size), src: c4in6, dst: s6)
            // The error quotes as much as fits in 1280 bytes; the payload length says the whole.
            let quoted = Array(Build.ipv6(src: c4in6, dst: s6, next: 17, hop: 63, payload: udp).prefix(1280 - 48))
            let err = Build.ipv6(src: s6, dst: c4in6, next: 58, payload: Build.icmpv6(type: 1, code: 4, body: quoted, src: s6, dst: c4in6))
            let (o, v4) = run(e, err)
            guard case .forward = o else { Issue.record("\(o)"); continue }
            let inner = Array(v4[28...])
            #expect(Int(inner[2]) << 8 | Int(inner[3]) == 20 + 8 + size, "its whole length")
            #expect((inner[6] & 0x40 != 0) == df, "\(size) bytes: DF \(df)")
            #expect(Verify.ipv4Header(inner) && Verify.ipv4Header(v4) && Verify.l4of4(v4))
        }
    }

    /// An echo quoted in an error changes type and checksum with its family
    /// (RFC 7915 §4.3, §5.3): ICMPv6's checksum covers a pseudo-header.
    @Test func quotedEchoesGetTheirOwnFamilysChecksum() throws {
        let e = try makeEngine()
        _ = run(e, Build.ipv6(src: c6, dst: s4in6, next: 17, payload: Build.udp(sport: 5000, dport: 9, data: [1], src: c6, dst: s4in6)))
        // IPv4 -> IPv6: a Time Exceeded quoting c6's echo request as it left the pool address.
        let echo4 = Build.icmpv4(type: 8, code: 0, rest: 0x0042_0007, body: Array(repeating: 0xAB, count: 24))
        let quoted4 = Build.ipv4(src: "192.0.2.128", dst: s4, proto: 1, ttl: 1, payload: echo4)
        let (o, v6) = run(e, Build.ipv4(src: "203.0.113.99", dst: "192.0.2.128", proto: 1, payload: Build.icmpv4(type: 11, code: 0, body: quoted4)))
        guard case .forward = o else { Issue.record("\(o)"); return }
        let inner6 = Array(v6[48...])
        #expect(inner6[6] == 58 && inner6[40] == 128, "an ICMPv6 echo request inside")
        #expect(Verify.l4of6(inner6), "its checksum verifies with the IPv6 pseudo-header")

        // IPv6 -> IPv4: c6 answers an echo from s4 with a Time Exceeded quoting it.
        let echo6 = Build.icmpv6(type: 128, code: 0, rest: 0x0042_0008, body: Array(repeating: 0xCD, count: 24), src: s4in6, dst: c6)
        let quoted6 = Build.ipv6(src: s4in6, dst: c6, next: 58, hop: 1, payload: echo6)
        let (o2, v4) = run(e, Build.ipv6(src: c6, dst: s4in6, next: 58, payload: Build.icmpv6(type: 3, code: 0, body: quoted6, src: c6, dst: s4in6)))
        guard case .forward = o2 else { Issue.record("\(o2)"); return }
        let inner4 = Array(v4[28...])
        #expect(inner4[9] == 1 && inner4[20] == 8, "an ICMPv4 echo request inside")
        #expect(Verify.l4of4(inner4), "its checksum verifies without a pseudo-header")
    }

    @Test func hopLimitAndTTLExpiryAreAnswered() throws {
        let e = try makeEngine()
        let packet = Build.ipv6(src: c6, dst: s4in6, next: 17, hop: 1, payload: Build.udp(sport: 1, dport: 2, data: [], src: c6, dst: s4in6))
        let (o, r) = run(e, packet)
        guard case .reply = o else { Issue.record("\(o)"); return }
        #expect(r[6] == 58 && r[40] == 3 && r[41] == 0, "ICMPv6 time exceeded")
        #expect(IPv6Address(bytes: r[8..<24]).description == "2001:db8:64::c000:201", "from the translator's own address")
        #expect(IPv6Address(bytes: r[24..<40]).description == c6)
        #expect(Array(r[48...]) == packet && Verify.l4of6(r))

        let p4 = Build.ipv4(src: s4, dst: "192.0.2.128", proto: 17, ttl: 1, payload: Build.udp(sport: 1, dport: 2, data: [], src: s4, dst: "192.0.2.128"))
        let (o4, r4) = run(e, p4)
        guard case .reply = o4 else { Issue.record("\(o4)"); return }
        #expect(r4[9] == 1 && r4[20] == 11 && IPv4Address(bytes: r4[12..<16]).description == "192.0.2.1" && IPv4Address(bytes: r4[16..<20]).description == s4)
        #expect(Verify.ipv4Header(r4) && Verify.l4of4(r4))
        #expect(e.snapshot[.hopLimitExceeded] == 1 && e.snapshot[.ttlExceeded] == 1)
        #expect(e.snapshot[.timeExceeded6] == 1 && e.snapshot[.timeExceeded4] == 1)
    }

    @Test func fragmentsBothWays() throws {
        let e = try makeEngine()
        let frag: [UInt8] = [17, 0] + Build.be16(0x00B8 | 1) + [0xAB, 0xCD, 0x12, 0x34]  // offset 23*8, more fragments
        let p6 = Build.ipv6(src: c6, dst: s4in6, next: 44, payload: frag + Array(repeating: 7, count: 64))
        let (_, v4) = run(e, p6)
        #expect(v4.count == 20 + 64 && v4[9] == 17)
        #expect(Build.be16(0x1234) == Array(v4[4..<6]), "low 16 bits of the identification")
        #expect(Int(v4[6]) << 8 | Int(v4[7]) == 0x2000 | 23, "MF and offset, DF clear")
        #expect(Verify.ipv4Header(v4))

        let p4 = Build.ipv4(src: s4, dst: "192.0.2.128", proto: 17, id: 0x4321, flags: 0x2000 | 10, payload: Array(repeating: 9, count: 40))
        let (_, v6) = run(e, p4)
        #expect(v6[6] == 44 && v6[40] == 17, "a fragment header follows")
        #expect(Int(v6[42]) << 8 | Int(v6[43]) == 80 | 1)
        #expect(v6[44..<48] == [0, 0, 0x43, 0x21])
        #expect(v6.count == 48 + 40)
    }

    /// RFC 6946: an atomic fragment (offset 0, M clear) is a whole packet:
    /// it comes out as the same packet without its Fragment header would,
    /// not as an IPv4 fragment, and an ICMPv6 one is translated too.
    @Test func atomicFragmentsAreWholePackets() throws {
        let e = try makeEngine()
        let udp = Build.udp(sport: 4000, dport: 53, data: Array(repeating: 5, count: 32), src: c6, dst: s4in6)
        let echo = Build.icmpv6(type: 128, code: 0, rest: 0x0042_0001, body: Array(repeating: 0xCD, count: 24), src: c6, dst: s4in6)
        for (next, payload) in [(UInt8(17), udp), (UInt8(58), echo)] {
            let atomic: [UInt8] = [next, 0, 0, 0, 0xAB, 0xCD, 0x12, 0x34]
            let (o, viaFragment) = run(e, Build.ipv6(src: c6, dst: s4in6, next: 44, payload: atomic + payload))
            let (_, whole) = run(e, Build.ipv6(src: c6, dst: s4in6, next: next, payload: payload))
            guard case .forward = o else { Issue.record("next header \(next): \(o)"); continue }
            // The identification is the translator's own for each packet, and the header checksum with it.
            func masked(_ v: [UInt8]) -> [UInt8] { Array(v[0..<4]) + Array(v[6..<10]) + Array(v[12...]) }
            #expect(masked(viaFragment) == masked(whole), "next header \(next)")
            #expect(viaFragment[6] & 0x3F == 0 && viaFragment[7] == 0, "not an IPv4 fragment")
            #expect(Verify.ipv4Header(viaFragment) && Verify.l4of4(viaFragment))
        }
        #expect(e.snapshot[.fragmentedICMP] == 0)
    }

    /// RFC 7112: a first fragment whose header chain ends in a later
    /// fragment is refused with Parameter Problem code 3 (pointer 0), never
    /// translated into an IPv4 fragment that leaves a hole; a first fragment
    /// with its whole chain is translated.
    @Test func aFirstFragmentWithoutItsUpperLayerHeaderIsRefused() throws {
        let e = try makeEngine()
        func first(_ next: UInt8) -> [UInt8] { [next, 0, 0, 1, 0, 0, 0, 9] }  // offset 0, M set
        let udp = Build.udp(sport: 1, dport: 2, data: Array(repeating: 1, count: 16), src: c6, dst: s4in6)
        let cases: [(String, [UInt8])] = [
            ("a destination options header that goes on in the next fragment", first(60) + [17, 2, 1, 4, 0, 0, 0, 0]),
            ("half a UDP header", first(17) + Array(udp.prefix(4))),
        ]
        for (what, payload) in cases {
            let (o, r) = run(e, Build.ipv6(src: c6, dst: s4in6, next: 44, payload: payload))
            guard case .reply = o else { Issue.record("\(what): \(o)"); continue }
            #expect(r[6] == 58 && r[40] == 4 && r[41] == 3 && r[44..<48] == [0, 0, 0, 0], "\(what): parameter problem, code 3, pointer 0")
            #expect(IPv6Address(bytes: r[24..<40]).description == c6 && Verify.l4of6(r), "\(what)")
        }
        #expect(e.snapshot.drops[DropReason.incompleteHeaderChain.rawValue] == 2)
        let (o, v4) = run(e, Build.ipv6(src: c6, dst: s4in6, next: 44, payload: first(17) + udp))
        guard case .forward = o else { Issue.record("\(o)"); return }
        #expect(v4[9] == 17 && v4[6] & 0x20 != 0, "a first IPv4 fragment, MF set")
    }

    /// RFC 7915 §4: a fragmentable IPv4 packet too big for lowest-ipv6-mtu
    /// leaves as IPv6 fragments of at most that size, which reassemble to the
    /// translated datagram.
    @Test func fragmentableIPv4BecomesIPv6Fragments() throws {
        let e = try makeEngine()
        _ = run(e, Build.ipv6(src: c6, dst: s4in6, next: 17, payload: Build.udp(sport: 5000, dport: 53, data: [], src: c6, dst: s4in6)))
        let data = (0..<3000).map { UInt8(truncatingIfNeeded: $0) }
        let p4 = Build.ipv4(src: s4, dst: "192.0.2.128", proto: 17, id: 0x7777, flags: 0, payload: Build.udp(sport: 53, dport: 5000, data: data, src: s4, dst: "192.0.2.128"))
        let emitted = Emitted()
        let (o, last) = run(e, p4, emitted: emitted)
        guard case .fragments = o else { Issue.record("\(o)"); return }
        let frags = emitted.packets + [last]
        #expect(frags.count == 3)
        var payload: [UInt8] = []
        for (i, f) in frags.enumerated() {
            #expect(f.count <= 1280 && f[6] == 44 && f[40] == 17)
            let field = Int(f[42]) << 8 | Int(f[43])
            #expect(field & ~7 == payload.count, "offset of fragment \(i)")
            #expect(field & 1 == (i < frags.count - 1 ? 1 : 0), "more-fragments flag of fragment \(i)")
            #expect(f[44..<48] == [0, 0, 0x77, 0x77])
            #expect(Int(f[4]) << 8 | Int(f[5]) == f.count - 40)
            payload += f[48...]
        }
        #expect(payload.count == 8 + data.count && Array(payload[8...]) == data)
        let whole = Build.ipv6(src: s4in6, dst: c6, next: 17, payload: payload)
        #expect(Verify.l4of6(whole), "the reassembled UDP checksum is right")
    }

    @Test func dontFragmentAbove1260() throws {
        let e = try makeEngine()
        let big = Build.ipv6(src: c6, dst: s4in6, next: 17, payload: Build.udp(sport: 1, dport: 2, data: Array(repeating: 1, count: 1300), src: c6, dst: s4in6))
        let (_, v4) = run(e, big)
        #expect(v4[6] & 0x40 != 0 && v4[4] == 0 && v4[5] == 0)
    }

    @Test func zeroUDPChecksumPolicy() throws {
        var udp = Build.be16(53) + Build.be16(5000) + Build.be16(12) + [0, 0] + [1, 2, 3, 4]
        let p4 = Build.ipv4(src: s4, dst: "192.0.2.128", proto: 17, payload: udp)
        let drop = try makeEngine()
        _ = run(drop, Build.ipv6(src: c6, dst: s4in6, next: 17, payload: Build.udp(sport: 5000, dport: 53, data: [], src: c6, dst: s4in6)))
        #expect(run(drop, p4).0 == .drop(.zeroUDPChecksum))
        let compute = try makeEngine(zeroChecksum: .compute)
        _ = run(compute, Build.ipv6(src: c6, dst: s4in6, next: 17, payload: Build.udp(sport: 5000, dport: 53, data: [], src: c6, dst: s4in6)))
        let (o, v6) = run(compute, p4)
        guard case .forward = o else { Issue.record("\(o)"); return }
        #expect(Verify.l4of6(v6) && !(v6[46] == 0 && v6[47] == 0))
        udp[7] = 0
        let fragment = Build.ipv4(src: s4, dst: "192.0.2.128", proto: 17, flags: 0x2000, payload: udp)
        #expect(run(compute, fragment).0 == .drop(.zeroUDPChecksum), "a fragment cannot have its checksum computed")
    }

    @Test func packetTooBigArithmetic() throws {
        let e = try makeEngine(eam: eam)
        let quoted = Build.ipv6(src: c4in6, dst: s6, next: 6, payload: Build.tcp(sport: 1, dport: 2, src: c4in6, dst: s6))
        let ptb = Build.ipv6(src: s6, dst: c4in6, next: 58, payload: Build.icmpv6(type: 2, code: 0, rest: 1400, body: quoted, src: s6, dst: c4in6))
        let (_, v4) = run(e, ptb)
        #expect(v4[20] == 3 && v4[21] == 4 && Int(v4[26]) << 8 | Int(v4[27]) == 1380)

        _ = run(e, Build.ipv6(src: c6, dst: s4in6, next: 6, payload: Build.tcp(sport: 1, dport: 2, src: c6, dst: s4in6)))
        for (reported, expected) in [(0, 1500), (1000, 1280), (1400, 1420)] {
            let inner = Build.ipv4(src: "192.0.2.128", dst: s4, proto: 6, payload: Build.tcp(sport: 1, dport: 2, src: "192.0.2.128", dst: s4) + Array(repeating: 0, count: 1960))
            let fn = Build.ipv4(src: s4, dst: "192.0.2.128", proto: 1, payload: Build.icmpv4(type: 3, code: 4, rest: UInt32(reported), body: Array(inner.prefix(28))))
            // The quoted header says 2000 bytes; with MTU 0 the plateau below is 1492, +20.
            let (_, v6) = run(e, fn)
            let mtu = Int(v6[44]) << 24 | Int(v6[45]) << 16 | Int(v6[46]) << 8 | Int(v6[47])
            #expect(v6[40] == 2 && mtu == (reported == 0 ? 1500 : expected), "reported \(reported)")
        }
    }

    @Test func eamLongestMatchAndHairpinning() throws {
        let e = try makeEngine(eam: [("203.0.113.0/24", "2001:db8:2::/120"), ("203.0.113.10/32", "2001:db8:5::10/128")])
        #expect(e.settings.eam.ipv6(for: IPv4Address("203.0.113.10")!)?.description == "2001:db8:5::10")
        #expect(e.settings.eam.ipv6(for: IPv4Address("203.0.113.11")!)?.description == "2001:db8:2::b")
        #expect(e.settings.eam.ipv4(for: IPv6Address("2001:db8:5::10")!)?.description == "203.0.113.10")
        #expect(e.settings.eam.ipv4(for: IPv6Address("2001:db8:2::b")!)?.description == "203.0.113.11")
        // RFC 7757 §4.2: an IPv6 client addressing a mapped server by its IPv4
        // form comes out as IPv6 again, towards the server.
        let dst = "2001:db8:64::cb00:710a"
        let (o, out) = run(e, Build.ipv6(src: c6, dst: dst, next: 17, payload: Build.udp(sport: 1, dport: 2, data: [5], src: c6, dst: dst)))
        guard case .forward = o else { Issue.record("\(o)"); return }
        #expect(out[0] >> 4 == 6 && IPv6Address(bytes: out[24..<40]).description == "2001:db8:5::10")
        #expect(IPv6Address(bytes: out[8..<24]).description == "2001:db8:64::c000:280", "the client's pool address in the prefix")
        #expect(out[7] == 63, "the hop limit counted down once, not once per direction")
        #expect(Verify.l4of6(out))

        // A client that has a mapping of its own hairpins with its source in
        // the prefix (RFC 7757 §4.2), not back through its mapping; a hop
        // limit of 2 arrives with 1, not as a Time Exceeded.
        let mapped = "2001:db8:2::7"  // 203.0.113.7 by the /120 mapping
        let (o2, out2) = run(e, Build.ipv6(src: mapped, dst: dst, next: 17, hop: 2, payload: Build.udp(sport: 1, dport: 2, data: [5], src: mapped, dst: dst)))
        guard case .forward = o2 else { Issue.record("\(o2)"); return }
        #expect(IPv6Address(bytes: out2[8..<24]).description == "2001:db8:64::cb00:7107", "203.0.113.7 in the prefix")
        #expect(IPv6Address(bytes: out2[24..<40]).description == "2001:db8:5::10" && out2[7] == 1)
        #expect(Verify.l4of6(out2))
    }

    @Test func wellKnownPrefixRefusesNonGlobalPerPacket() throws {
        let e = try makeEngine(prefix: "64:ff9b::/96")
        let dst = "64:ff9b::a00:1"  // 10.0.0.1
        let (o, r) = run(e, Build.ipv6(src: c6, dst: dst, next: 17, payload: Build.udp(sport: 1, dport: 2, data: [], src: c6, dst: dst)))
        guard case .reply = o else { Issue.record("\(o)"); return }
        #expect(r[40] == 1, "destination unreachable")
        #expect(e.snapshot[.nonGlobalAddress] == 1)
    }

    @Test func routingHeaderWithSegmentsLeft() throws {
        let e = try makeEngine()
        let rh: [UInt8] = [17, 2, 0, 1, 0, 0, 0, 0] + IPv6Address("2001:db8::9")!.bytes
        let (o, r) = run(e, Build.ipv6(src: c6, dst: s4in6, next: 43, payload: rh + Build.udp(sport: 1, dport: 2, data: [], src: c6, dst: s4in6)))
        guard case .reply = o else { Issue.record("\(o)"); return }
        #expect(r[40] == 4 && r[41] == 0 && Int(r[47]) == 43, "parameter problem at Segments Left (offset 43)")
    }

    @Test func malformedPacketsAreCountedAndDropped() throws {
        let e = try makeEngine()
        let good = Build.ipv6(src: c6, dst: s4in6, next: 17, payload: Build.udp(sport: 1, dport: 2, data: [1], src: c6, dst: s4in6))
        var rng = SystemRandomNumberGenerator()
        for n in 0..<2000 {
            var junk = Array(good.prefix(Int.random(in: 0...good.count, using: &rng)))
            if n % 2 == 0, !junk.isEmpty { junk[Int.random(in: 0..<junk.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            _ = run(e, junk)
            _ = run(e, (0..<Int.random(in: 0...80, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
        }
        #expect(e.snapshot.drops.reduce(0, +) > 0)
        let (o, _) = run(e, good)
        guard case .forward = o else { Issue.record("the engine stopped translating: \(o)"); return }
    }
}

@Suite struct ExtensionHeaderAndPrefixTests {
    /// Hop-by-hop and destination options are skipped; lengths count only what
    /// follows them; a routing header with no segments left passes.
    @Test func extensionHeadersAreSkipped() throws {
        let e = try makeEngine()
        let udp = Build.udp(sport: 7, dport: 9, data: Array("ext".utf8), src: c6, dst: s4in6)
        let hbh: [UInt8] = [60, 0, 1, 4, 0, 0, 0, 0]      // -> destination options, PadN
        let dst: [UInt8] = [43, 1] + [1, 12] + Array(repeating: 0, count: 12)  // -> routing, 16 bytes
        let rh: [UInt8] = [17, 2, 0, 0, 0, 0, 0, 0] + IPv6Address("2001:db8::9")!.bytes  // segments left 0
        let (o, v4) = run(e, Build.ipv6(src: c6, dst: s4in6, next: 0, payload: hbh + dst + rh + udp))
        guard case .forward = o else { Issue.record("\(o)"); return }
        #expect(v4.count == 20 + udp.count && v4[9] == 17)
        #expect(Int(v4[2]) << 8 | Int(v4[3]) == 20 + udp.count, "total length counts no extension header")
        #expect(Verify.ipv4Header(v4) && Verify.l4of4(v4))
    }

    /// RFC 6052 at every length, through the engine: the destination embedded
    /// in the prefix comes out, and the source comes back in it.
    @Test(arguments: ["2001:db8::/32", "2001:db8:100::/40", "2001:db8:122::/48", "2001:db8:122:300::/56", "2001:db8:122:344::/64", "2001:db8:122:344::/96"])
    func everyPrefixLength(prefix: String) throws {
        // A /32 from the documentation space covers every client address, so the
        // client is mapped explicitly (mappings come before the prefix).
        let e = try makeEngine(prefix: prefix, eam: [("192.0.2.50/32", "\(c6)/128")])
        let p = try NAT64Prefix(IPv6Prefix.parse(prefix))
        let target = IPv4Address("198.51.100.77")!
        let dst = p.embed(target).description
        let (_, v4) = run(e, Build.ipv6(src: c6, dst: dst, next: 17, payload: Build.udp(sport: 1, dport: 2, data: [1], src: c6, dst: dst)))
        #expect(IPv4Address(bytes: v4[16..<20]) == target)
        #expect(Verify.l4of4(v4))
        #expect(IPv4Address(bytes: v4[12..<16]).description == "192.0.2.50")
        let back = Build.ipv4(src: "198.51.100.77", dst: "192.0.2.50", proto: 17, payload: Build.udp(sport: 2, dport: 1, data: [1], src: "198.51.100.77", dst: "192.0.2.50"))
        let (_, v6) = run(e, back)
        #expect(IPv6Address(bytes: v6[8..<24]).description == dst)
        #expect(IPv6Address(bytes: v6[24..<40]).description == c6)
        #expect(Verify.l4of6(v6))
    }
}

@Suite struct OffloadTests {
    /// A TCP super-packet with its checksum still to complete: the field holds
    /// the pseudo-header sum, which is swapped to the other family's; the GSO
    /// type, checksum start and header length follow the new header.
    @Test func pendingChecksumAndSegmentationFollowTheTranslation() throws {
        let e = try makeEngine()
        var tcp = Build.tcp(sport: 40000, dport: 80, src: c6, dst: s4in6) + Array(repeating: 0x5A, count: 4000)
        // What the kernel leaves in the field: the (uncomplemented) pseudo-header sum.
        var pseudo6 = InternetChecksum()
        pseudo6.addPseudoHeader(source: IPv6Address(c6)!, destination: IPv6Address(s4in6)!, nextHeader: 6, length: tcp.count)
        let seed6 = ~pseudo6.value
        tcp[16] = UInt8(seed6 >> 8)
        tcp[17] = UInt8(seed6 & 0xFF)
        var o = Offload()
        o.flags = 1
        o.gsoType = 4 | 0x80
        o.gsoSize = 1440
        o.checksumStart = 40
        o.checksumOffset = 16
        o.headerLength = 60
        let (outcome, v4) = run(e, Build.ipv6(src: c6, dst: s4in6, next: 6, payload: tcp), offload: &o)
        guard case .forward = outcome else { Issue.record("\(outcome)"); return }
        #expect(o.gsoType == 1 | 0x80, "TCPv6 became TCPv4, ECN kept")
        #expect(o.checksumStart == 20 && o.headerLength == 40 && o.gsoSize == 1440)
        #expect(v4[6] & 0x40 != 0, "segments of a super-packet carry DF")
        var pseudo4 = InternetChecksum()
        pseudo4.addPseudoHeader(source: IPv4Address(bytes: v4[12..<16]), destination: IPv4Address(bytes: v4[16..<20]), protocol: 6, length: tcp.count)
        #expect(Int(v4[36]) << 8 | Int(v4[37]) == Int(~pseudo4.value), "the field now holds the IPv4 pseudo-header sum")
        #expect(Verify.ipv4Header(v4))

        // And back: an IPv4 super-packet to the pool address becomes IPv6.
        var seg = Build.tcp(sport: 80, dport: 40000, src: s4, dst: "192.0.2.128") + Array(repeating: 0xA5, count: 4000)
        var p4 = InternetChecksum()
        p4.addPseudoHeader(source: IPv4Address(s4)!, destination: IPv4Address("192.0.2.128")!, protocol: 6, length: seg.count)
        seg[16] = UInt8(~p4.value >> 8)
        seg[17] = UInt8(~p4.value & 0xFF)
        o = Offload()
        o.flags = 1
        o.gsoType = 1
        o.gsoSize = 1460
        o.checksumStart = 20
        o.checksumOffset = 16
        o.headerLength = 40
        let (back, v6) = run(e, Build.ipv4(src: s4, dst: "192.0.2.128", proto: 6, payload: seg), offload: &o)
        guard case .forward = back else { Issue.record("\(back)"); return }
        #expect(o.gsoType == 4 && o.checksumStart == 40 && o.headerLength == 60)
        var p6 = InternetChecksum()
        p6.addPseudoHeader(source: IPv6Address(s4in6)!, destination: IPv6Address(c6)!, nextHeader: 6, length: seg.count)
        #expect(Int(v6[56]) << 8 | Int(v6[57]) == Int(~p6.value), "the field now holds the IPv6 pseudo-header sum")
        #expect(Array(v6[60...]) == Array(seg[20...]), "the payload is untouched")
    }
}

extension OffloadTests {
    /// A UDP super-packet (USO) keeps its GSO type in both families; its
    /// 64-byte datagrams are small enough to be fragmented on the IPv4 side,
    /// so they carry no DF (RFC 7915 §5.1) but an ID.
    @Test func udpSuperPacketsKeepTheirTypeAndSmallOnesNoDF() throws {
        let e = try makeEngine()
        var udp = Build.udp(sport: 40000, dport: 5201, data: Array(repeating: 0x11, count: 64 * 20), src: c6, dst: s4in6)
        var pseudo6 = InternetChecksum()
        pseudo6.addPseudoHeader(source: IPv6Address(c6)!, destination: IPv6Address(s4in6)!, nextHeader: 17, length: udp.count)
        udp[6] = UInt8(~pseudo6.value >> 8)
        udp[7] = UInt8(~pseudo6.value & 0xFF)
        var o = Offload()
        o.flags = 1
        o.gsoType = 5
        o.gsoSize = 64
        o.checksumStart = 40
        o.checksumOffset = 6
        o.headerLength = 48
        let (outcome, v4) = run(e, Build.ipv6(src: c6, dst: s4in6, next: 17, payload: udp), offload: &o)
        guard case .forward = outcome else { Issue.record("\(outcome)"); return }
        #expect(o.gsoType == 5 && o.checksumStart == 20 && o.headerLength == 28 && o.gsoSize == 64)
        #expect(v4[6] & 0x40 == 0, "92-byte datagrams may be fragmented: no DF")
        var pseudo4 = InternetChecksum()
        pseudo4.addPseudoHeader(source: IPv4Address(bytes: v4[12..<16]), destination: IPv4Address(bytes: v4[16..<20]), protocol: 17, length: udp.count)
        #expect(Int(v4[26]) << 8 | Int(v4[27]) == Int(~pseudo4.value), "the field now holds the IPv4 pseudo-header sum")
        #expect(Verify.ipv4Header(v4))
    }

    /// An IPv4 UDP super-packet with DF clear whose datagrams would not fit
    /// lowest-ipv6-mtu as IPv6 is cut into its datagrams first, each a
    /// complete packet with its own checksums, so that each can be fragmented.
    @Test func largeUDPDatagramsWithoutDFAreCutFirst() throws {
        let e = try makeEngine()
        // c6 takes the first pool address, 192.0.2.128.
        _ = run(e, Build.ipv6(src: c6, dst: s4in6, next: 17, payload: Build.udp(sport: 40000, dport: 53, data: [1], src: c6, dst: s4in6)))
        let data = (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let superPacket = Build.ipv4(src: s4, dst: "192.0.2.128", proto: 17, id: 0x4000, flags: 0,
                                     payload: Build.udp(sport: 53, dport: 40000, data: data, src: s4, dst: "192.0.2.128"))
        var o = Offload()
        o.gsoType = 5
        o.gsoSize = 1400
        var datagrams: [[UInt8]] = []
        superPacket.withUnsafeBytes { raw in
            let p = UnsafeMutableRawPointer(mutating: raw.baseAddress!)
            #expect(e.mustSegment(p, length: raw.count, offload: o))
            let out = UnsafeMutableRawPointer.allocate(byteCount: 2000, alignment: 8)
            defer { out.deallocate() }
            #expect(Segmenter.packets(of: p, length: raw.count, offload: o, scratch: out) { datagrams.append(Array(UnsafeRawBufferPointer(start: $0, count: $1))) })
        }
        #expect(datagrams.map(\.count) == [1428, 1428, 228])
        #expect(datagrams.map { Int($0[4]) << 8 | Int($0[5]) } == [0x4000, 0x4001, 0x4002], "IDs as the kernel gives them")
        #expect(datagrams.allSatisfy { Verify.ipv4Header($0) && Verify.l4of4($0) })
        #expect(datagrams.flatMap { $0[28...] } == data, "the payload, in order")
        // Each goes on as a plain packet: 1428 bytes become two IPv6 fragments.
        o = Offload()
        let emitted = Emitted()
        let (first, _) = run(e, datagrams[0], emitted: emitted, offload: &o)
        guard case .fragments = first else { Issue.record("\(first)"); return }
        #expect(emitted.packets.count >= 1, "split into IPv6 fragments")

        var df = superPacket
        df[6] |= 0x40
        o.gsoType = 5
        o.gsoSize = 1400
        df.withUnsafeBytes { #expect(!e.mustSegment(UnsafeMutableRawPointer(mutating: $0.baseAddress!), length: $0.count, offload: o), "DF set: path MTU discovery's business") }
        o.gsoSize = 1000
        superPacket.withUnsafeBytes { #expect(!e.mustSegment(UnsafeMutableRawPointer(mutating: $0.baseAddress!), length: $0.count, offload: o), "1056-byte IPv6 datagrams fit") }
    }
}

@Suite struct ReviewRegressionTests {
    /// A fragment ending past 65535 would overflow the IPv6 fragment offset.
    @Test func fragmentPastTheEndIsDroppedNotACrash() throws {
        let e = try makeEngine(eam: eam)
        let p4 = Build.ipv4(src: c4, dst: s6eam, proto: 17, id: 1, flags: 8038, payload: Array(repeating: 1, count: 1400))
        #expect(run(e, p4).0 == .drop(.malformed))
    }

    /// An ICMPv6 error about traffic to a pool host (a router on the IPv6 side
    /// saying Packet Too Big) becomes a Fragmentation Needed for the IPv4 peer.
    @Test func errorAboutAPoolHostIsTranslated() throws {
        let e = try makeEngine()
        _ = run(e, Build.ipv6(src: c6, dst: s4in6, next: 6, payload: Build.tcp(sport: 40000, dport: 80, src: c6, dst: s4in6)))
        let quoted = Build.ipv6(src: s4in6, dst: c6, next: 6, payload: Build.tcp(sport: 80, dport: 40000, src: s4in6, dst: c6))
        let router = "2001:db8:1::1"
        let ptb = Build.ipv6(src: router, dst: s4in6, next: 58, payload: Build.icmpv6(type: 2, code: 0, rest: 1280, body: quoted, src: router, dst: s4in6))
        let (o, v4) = run(e, ptb)
        guard case .forward = o else { Issue.record("\(o)"); return }
        #expect(v4[20] == 3 && v4[21] == 4 && Int(v4[26]) << 8 | Int(v4[27]) == 1260)
        #expect(IPv4Address(bytes: v4[16..<20]).description == s4)
        let inner = Array(v4[28...])
        #expect(IPv4Address(bytes: inner[12..<16]).description == s4 && IPv4Address(bytes: inner[16..<20]).description == "192.0.2.128")
        #expect(Verify.ipv4Header(v4) && Verify.l4of4(v4) && Verify.ipv4Header(inner) && Verify.l4of4(inner))
    }

    /// The traffic class of a translated ICMP error comes from the IPv4 header,
    /// read before the new headers are written over it.
    @Test func trafficClassOfTranslatedErrors() throws {
        let e = try makeEngine()
        _ = run(e, Build.ipv6(src: c6, dst: s4in6, next: 17, payload: Build.udp(sport: 5000, dport: 9, data: [1], src: c6, dst: s4in6)))
        let quoted = Build.ipv4(src: "192.0.2.128", dst: s4, proto: 17, payload: Build.udp(sport: 5000, dport: 9, data: [1], src: "192.0.2.128", dst: s4))
        let err = Build.ipv4(src: s4, dst: "192.0.2.128", proto: 1, tos: 0x28, payload: Build.icmpv4(type: 3, code: 3, body: quoted))
        let (_, v6) = run(e, err)
        #expect(v6[0] == 0x62 && v6[1] >> 4 == 0x8, "traffic class 0x28")
    }

    @Test func multicastIsNeitherTranslatedNorAnswered() throws {
        let e = try makeEngine()
        let mld = Build.ipv6(src: "fe80::1", dst: "ff02::16", next: 58, hop: 1, payload: Build.icmpv6(type: 143, code: 0, body: [0, 0, 0, 0], src: "fe80::1", dst: "ff02::16"))
        #expect(run(e, mld).0 == .drop(.untranslatableDestination))
        #expect(e.snapshot.errorsSent.reduce(0, +) == 0)
    }

    @Test func absurdStateFileDoesNotCrash() throws {
        let dir = NSTemporaryDirectory() + "sixgate-pool-\(getpid())-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "2001:db8:1::2 192.0.2.130 18446744073709551615\n2001:db8:1::3 192.0.2.131 garbage\n".write(toFile: dir + "/p", atomically: true, encoding: .utf8)
        let pool = DynamicPool(range: try IPv4Prefix.parse("192.0.2.128/25"), idleTimeout: .max, stateFile: dir + "/p")
        pool.load(now: 100)
        pool.expire(now: 200)
        #expect(pool.count == 1)
    }
}

@Suite struct InputChecksTests {
    @Test func corruptICMPIsDroppedBothWays() throws {
        let e = try makeEngine()
        var echo6 = Build.icmpv6(type: 128, code: 0, rest: 0x00010001, body: [1, 2, 3, 4], src: c6, dst: s4in6)
        echo6[9] ^= 0xFF
        #expect(run(e, Build.ipv6(src: c6, dst: s4in6, next: 58, payload: echo6)).0 == .drop(.badChecksum))
        _ = run(e, Build.ipv6(src: c6, dst: s4in6, next: 17, payload: Build.udp(sport: 1, dport: 2, data: [], src: c6, dst: s4in6)))
        var echo4 = Build.icmpv4(type: 0, code: 0, rest: 0x00010001, body: [1, 2, 3, 4])
        echo4[9] ^= 0xFF
        #expect(run(e, Build.ipv4(src: s4, dst: "192.0.2.128", proto: 1, payload: echo4)).0 == .drop(.badChecksum))
    }

    /// RFC 7915 §4.1: an unexpired IPv4 source route is answered with
    /// "source route failed" and not translated.
    @Test func unexpiredSourceRouteIsRefused() throws {
        let e = try makeEngine(eam: eam)
        // LSRR with one address left (pointer 4 <= length 7), then end of options.
        let options: [UInt8] = [131, 7, 4, 198, 51, 100, 9, 0]
        var p4 = Build.ipv4(src: c4, dst: s6eam, proto: 17, payload: Build.udp(sport: 1, dport: 2, data: [1], src: c4, dst: s6eam))
        p4.insert(contentsOf: options, at: 20)
        p4[0] = 0x47
        p4[2] = UInt8((p4.count >> 8) & 0xFF)
        p4[3] = UInt8(p4.count & 0xFF)
        p4[10] = 0
        p4[11] = 0
        var c = InternetChecksum()
        c.add(Array(p4[0..<28]))
        p4[10] = UInt8(c.value >> 8)
        p4[11] = UInt8(c.value & 0xFF)
        let (o, r) = run(e, p4)
        guard case .reply = o else { Issue.record("\(o)"); return }
        #expect(r[20] == 3 && r[21] == 5 && IPv4Address(bytes: r[16..<20]).description == c4)
        #expect(e.snapshot[.sourceRoute] == 1)
    }
}
