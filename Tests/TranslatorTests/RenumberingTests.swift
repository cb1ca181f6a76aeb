import TestPackets
import Foundation
import Packet
import Testing
@testable import Translator

/// Make-before-break renumbering: the old prefix 2001:db8:64::/96 retires at
/// second 2000, the new one is 2001:db8:46::/96. The tests run at second 1000.
private let oldPrefix = "2001:db8:64::/96", newPrefix = "2001:db8:46::/96"
private let until: UInt64 = 2000
private let s4old = "2001:db8:64::cb00:7102", s4new = "2001:db8:46::cb00:7102"
private let c4old = "2001:db8:64::c633:6402", c4new = "2001:db8:46::c633:6402"
private let pool1 = "192.0.2.128"

private func nat64(_ text: String) throws -> NAT64Prefix { try NAT64Prefix(IPv6Prefix.parse(text)) }

private func makeRenumberingEngine(retiring: [(String, UInt64)] = [(oldPrefix, until)], flows: PrefixFlows? = PrefixFlows(capacity: 1024)) throws -> Engine {
    let settings = TranslatorSettings(
        prefix: try nat64(newPrefix),
        eam: EAMTable(try eam.map { try EAMTable.Entry(ipv4: IPv4Prefix.parse($0.0), ipv6: IPv6Prefix.parse($0.1)) }),
        own4: IPv4Address("192.0.2.1"),
        retiring: try retiring.map { RetiringPrefix(try nat64($0.0), until: $0.1) })
    return Engine(settings: settings, pool: DynamicPool(range: try IPv4Prefix.parse("192.0.2.128/25"), idleTimeout: 7200, stateFile: nil), flows: flows)
}

/// A TCP segment with the given flags (0x02 SYN, 0x10 ACK, 0x12 SYN+ACK).
private func tcp(sport: Int, dport: Int, flags: UInt8, src: String, dst: String) -> [UInt8] {
    var t = Build.be16(sport) + Build.be16(dport) + [0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags] + Build.be16(65535) + [0, 0, 0, 0]
    let c = Build.l4Checksum(t, proto: 6, src: src, dst: dst)
    t[16] = UInt8(c >> 8)
    t[17] = UInt8(c & 0xFF)
    return t
}

private func udp6(from: String = c6, to: String, sport: Int, dport: Int = 53) -> [UInt8] {
    Build.ipv6(src: from, dst: to, next: 17, payload: Build.udp(sport: sport, dport: dport, data: [1, 2, 3], src: from, dst: to))
}

private func udp4(from: String = s4, to: String = pool1, sport: Int = 53, dport: Int) -> [UInt8] {
    Build.ipv4(src: from, dst: to, proto: 17, payload: Build.udp(sport: sport, dport: dport, data: [4, 5, 6], src: from, dst: to))
}

private func source6(_ p: [UInt8]) -> String { p.count >= 40 ? IPv6Address(bytes: p[8..<24]).description : "none" }
private func destination6(_ p: [UInt8]) -> String { p.count >= 40 ? IPv6Address(bytes: p[24..<40]).description : "none" }

@Suite struct RenumberingTests {
    @Test func bothPrefixesTranslateUntilTheDeadline() throws {
        let e = try makeRenumberingEngine()
        for dst in [s4old, s4new] {
            let (o, v4) = run(e, udp6(to: dst, sport: 5000), now: 1000)
            guard case .forward = o else { Issue.record("to \(dst): \(o)"); return }
            #expect(IPv4Address(bytes: v4[16..<20]).description == s4, "to \(dst)")
            #expect(Verify.ipv4Header(v4) && Verify.l4of4(v4))
        }
        #expect(e.snapshot.retiring6to4 == 1, "one packet went through the old prefix")

        // At the deadline the old prefix is untranslatable, answered like any other.
        let (late, r) = run(e, udp6(to: s4old, sport: 5000), now: until)
        guard case .reply = late else { Issue.record("\(late)"); return }
        #expect(r[40] == 1 && r[41] == 0, "ICMPv6 destination unreachable")
        #expect(source6(r) == "2001:db8:46::c000:201", "the translator's own errors come from the current prefix")
        #expect(e.snapshot[.untranslatableDestination] == 1)
        let (stillNew, _) = run(e, udp6(to: s4new, sport: 5000), now: until)
        guard case .forward = stillNew else { Issue.record("\(stillNew)"); return }
        #expect(e.snapshot.retiring6to4 == 1)
    }

    @Test func udpAndTCPFlowsKeepTheirPrefix() throws {
        let e = try makeRenumberingEngine()
        // UDP: port 5000 started on the old prefix, 5001 to the same peer on the new one.
        _ = run(e, udp6(to: s4old, sport: 5000))
        _ = run(e, udp6(to: s4new, sport: 5001))
        for (port, expected) in [(5000, s4old), (5001, s4new)] {
            let (o, v6) = run(e, udp4(dport: port))
            guard case .forward = o else { Issue.record("port \(port): \(o)"); return }
            #expect(source6(v6) == expected, "UDP reply to port \(port)")
            #expect(destination6(v6) == c6 && Verify.l4of6(v6))
        }
        // TCP likewise: the SYN-ACK (no SYN of a new flow) follows its SYN's prefix.
        _ = run(e, Build.ipv6(src: c6, dst: s4old, next: 6, payload: tcp(sport: 40000, dport: 80, flags: 0x02, src: c6, dst: s4old)))
        _ = run(e, Build.ipv6(src: c6, dst: s4new, next: 6, payload: tcp(sport: 40001, dport: 80, flags: 0x02, src: c6, dst: s4new)))
        for (port, expected) in [(40000, s4old), (40001, s4new)] {
            let (o, v6) = run(e, Build.ipv4(src: s4, dst: pool1, proto: 6, payload: tcp(sport: 80, dport: port, flags: 0x12, src: s4, dst: pool1)))
            guard case .forward = o else { Issue.record("port \(port): \(o)"); return }
            #expect(source6(v6) == expected, "TCP reply to port \(port)")
            #expect(Verify.l4of6(v6))
        }
        #expect(e.snapshot.retiring4to6 == 2 && e.snapshot.retiring6to4 == 2)
    }

    /// Queues have an engine each, sharing the table: a reply read on another
    /// queue than its flow's first packet finds the prefix there (an engine's
    /// own one-flow cache cannot know it).
    @Test func repliesOnAnotherQueueFindTheTable() throws {
        let flows = PrefixFlows(capacity: 1024)
        let e1 = try makeRenumberingEngine(flows: flows), e2 = Engine(settings: e1.settings, pool: e1.pool, flows: flows)
        // On the new prefix: an unknown flow would get the old one.
        _ = run(e1, udp6(to: s4new, sport: 5000))
        let (o, v6) = run(e2, udp4(dport: 5000))
        guard case .forward = o else { Issue.record("\(o)"); return }
        #expect(source6(v6) == s4new)
    }

    @Test func unknownFlowsFromIPv4() throws {
        let e = try makeRenumberingEngine()
        // A segment of a connection the table never saw predates the change.
        let (o, v6) = run(e, Build.ipv4(src: c4, dst: s6eam, proto: 6, payload: tcp(sport: 40000, dport: 80, flags: 0x10, src: c4, dst: s6eam)))
        guard case .forward = o else { Issue.record("\(o)"); return }
        #expect(source6(v6) == c4old && destination6(v6) == s6 && Verify.l4of6(v6))

        // A SYN starts a connection now: the new prefix, kept by its later segments.
        let (o2, syn) = run(e, Build.ipv4(src: c4, dst: s6eam, proto: 6, payload: tcp(sport: 40001, dport: 80, flags: 0x02, src: c4, dst: s6eam)))
        guard case .forward = o2 else { Issue.record("\(o2)"); return }
        #expect(source6(syn) == c4new && Verify.l4of6(syn))
        let (o3, ack) = run(e, Build.ipv4(src: c4, dst: s6eam, proto: 6, payload: tcp(sport: 40001, dport: 80, flags: 0x10, src: c4, dst: s6eam)))
        guard case .forward = o3 else { Issue.record("\(o3)"); return }
        #expect(source6(ack) == c4new, "the connection stays on the new prefix")

        // The server answers on the new prefix.
        let (o4, v4) = run(e, Build.ipv6(src: s6, dst: c4new, next: 6, payload: tcp(sport: 80, dport: 40001, flags: 0x12, src: s6, dst: c4new)))
        guard case .forward = o4 else { Issue.record("\(o4)"); return }
        #expect(IPv4Address(bytes: v4[12..<16]).description == s6eam && IPv4Address(bytes: v4[16..<20]).description == c4)
        #expect(Verify.ipv4Header(v4) && Verify.l4of4(v4))
    }

    @Test func icmpv4ErrorFollowsItsFlow() throws {
        let e = try makeRenumberingEngine()
        _ = run(e, udp6(to: s4old, sport: 5000, dport: 9))
        _ = run(e, udp6(to: s4new, sport: 5001, dport: 9))
        for (port, expected) in [(5000, s4old), (5001, s4new)] {
            let quoted = Build.ipv4(src: pool1, dst: s4, proto: 17, ttl: 63, payload: Build.udp(sport: port, dport: 9, data: [1, 2, 3], src: pool1, dst: s4))
            let (o, v6) = run(e, Build.ipv4(src: s4, dst: pool1, proto: 1, payload: Build.icmpv4(type: 3, code: 3, body: quoted)))
            guard case .forward = o else { Issue.record("port \(port): \(o)"); return }
            #expect(v6[40] == 1 && v6[41] == 4, "port unreachable")
            #expect(source6(v6) == expected, "outer source, port \(port)")
            let inner = Array(v6[48...])
            #expect(destination6(inner) == expected, "quoted destination, port \(port)")
            #expect(source6(inner) == c6)
            #expect(Verify.l4of6(v6) && Verify.l4of6(inner))
        }
    }

    @Test func echoKeepsItsPrefixByIdentifier() throws {
        let e = try makeRenumberingEngine()
        let body = Array(repeating: UInt8(0xAB), count: 32)
        for (id, dst) in [(0x1234, s4old), (0x5678, s4new)] {
            let rest = UInt32(id) << 16 | 1
            _ = run(e, Build.ipv6(src: c6, dst: dst, next: 58, payload: Build.icmpv6(type: 128, code: 0, rest: rest, body: body, src: c6, dst: dst)))
        }
        for (id, expected) in [(0x1234, s4old), (0x5678, s4new)] {
            let reply = Build.ipv4(src: s4, dst: pool1, proto: 1, payload: Build.icmpv4(type: 0, code: 0, rest: UInt32(id) << 16 | 1, body: body))
            let (o, v6) = run(e, reply)
            guard case .forward = o else { Issue.record("id \(id): \(o)"); return }
            #expect(v6[40] == 129 && source6(v6) == expected, "echo reply \(id)")
            #expect(Verify.l4of6(v6))
        }
    }

    /// IPv4 fragments after the first carry no ports: they follow the first.
    @Test func fragmentsFollowTheirFirstFragment() throws {
        let e = try makeRenumberingEngine()
        _ = run(e, udp6(to: s4new, sport: 5001))
        let first = Build.ipv4(src: s4, dst: pool1, proto: 17, id: 0x4242, flags: 0x2000,
                               payload: Build.be16(53) + Build.be16(5001) + Build.be16(8 + 40) + [0x12, 0x34] + Array(repeating: 1, count: 16))
        let (o1, f1) = run(e, first)
        guard case .forward = o1 else { Issue.record("\(o1)"); return }
        #expect(source6(f1) == s4new)
        let rest = Build.ipv4(src: s4, dst: pool1, proto: 17, id: 0x4242, flags: 3, payload: Array(repeating: 2, count: 24))
        let (o2, f2) = run(e, rest)
        guard case .forward = o2 else { Issue.record("\(o2)"); return }
        #expect(source6(f2) == s4new, "a later fragment keeps its datagram's prefix")
        // One of an unknown datagram predates the change.
        let stray = Build.ipv4(src: s4, dst: pool1, proto: 17, id: 0x4343, flags: 3, payload: Array(repeating: 2, count: 24))
        #expect(source6(run(e, stray).1) == s4old)
    }

    /// A client reaching a mapped server through the old prefix appears to it
    /// in the old prefix too.
    @Test func hairpinKeepsThePrefixTheClientAddressed() throws {
        let e = try makeRenumberingEngine()
        for (dst, expected) in [("2001:db8:64::cb00:710a", "2001:db8:64::c000:280"), ("2001:db8:46::cb00:710a", "2001:db8:46::c000:280")] {
            let (o, out) = run(e, udp6(to: dst, sport: 7000, dport: 7))
            guard case .forward = o else { Issue.record("\(o)"); return }
            #expect(destination6(out) == s6 && source6(out) == expected, "through \(dst)")
            #expect(Verify.l4of6(out))
        }
    }

    @Test func flowTableSurvivesSaveAndLoad() throws {
        let dir = NSTemporaryDirectory() + "sixgate-flows-\(getpid())-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/prefix-flows.state"

        let flows = PrefixFlows(capacity: 1024)
        let e = try makeRenumberingEngine(flows: flows)
        _ = run(e, udp6(to: s4old, sport: 5000))
        _ = run(e, udp6(to: s4new, sport: 5001))
        let stray = PrefixFlows.Key(local4: IPv4Address("192.0.2.200")!, remote4: IPv4Address(s4)!, localPort: 1, remotePort: 2, proto: 17)
        flows.record(stray, prefix: try nat64("64:ff9b::/96"), now: 1000)
        #expect(flows.count == 3)
        try flows.save(to: path)

        // After a re-execution: the same pool, a new table loaded from the file.
        let loaded = PrefixFlows(capacity: 1024)
        loaded.load(from: path, now: 1100, accepting: [try nat64(newPrefix), try nat64(oldPrefix)])
        #expect(loaded.count == 2, "the entry of a prefix no longer accepted is dropped")
        #expect(loaded.prefix(for: stray) == nil)
        let e2 = try makeRenumberingEngine(flows: loaded)
        _ = run(e2, udp6(to: s4new, sport: 9999))  // takes the same pool address again
        for (port, expected) in [(5000, s4old), (5001, s4new)] {
            let (o, v6) = run(e2, udp4(dport: port), now: 1100)
            guard case .forward = o else { Issue.record("port \(port): \(o)"); return }
            #expect(source6(v6) == expected, "reply to port \(port) after the reload")
        }

        let none = PrefixFlows(capacity: 64)
        none.load(from: dir + "/missing", now: 1000, accepting: [try nat64(newPrefix)])
        try "garbage\n1.2.3.4 5.6.7.8 x y z p 2001:db8:46::/96 1\n".write(toFile: dir + "/bad", atomically: true, encoding: .utf8)
        none.load(from: dir + "/bad", now: 1000, accepting: [try nat64(newPrefix)])
        #expect(none.count == 0)
    }

    @Test func fullWindowEvictsTheFlowSeenLeastRecently() throws {
        // Eight slots, one window: every key competes for the same slots.
        let flows = PrefixFlows(capacity: 8)
        let p = try nat64(newPrefix)
        func key(_ i: Int) -> PrefixFlows.Key {
            PrefixFlows.Key(local4: IPv4Address(rawValue: 0xC000_0280), remote4: IPv4Address(rawValue: 0xCB00_7102), localPort: UInt16(i), remotePort: 53, proto: 17)
        }
        for i in 0..<8 { flows.record(key(i), prefix: p, now: UInt64(1 + i)) }
        flows.record(key(0), prefix: p, now: 20)
        flows.record(key(8), prefix: p, now: 21)
        #expect(flows.count == 8)
        #expect(flows.prefix(for: key(1)) == nil, "the least recently seen gave way")
        #expect(flows.prefix(for: key(0)) == p && flows.prefix(for: key(8)) == p)
    }

    /// Each retiring prefix has its own deadline; an unknown flow takes the
    /// most recent one still accepted.
    @Test func severalRetiringPrefixes() throws {
        let older = "2001:db8:99::/96", s4older = "2001:db8:99::cb00:7102"
        let e = try makeRenumberingEngine(retiring: [(older, 1500), (oldPrefix, until)])
        let (o, _) = run(e, udp6(to: s4older, sport: 5000), now: 1499)
        guard case .forward = o else { Issue.record("\(o)"); return }
        #expect(source6(run(e, udp4(dport: 5000), now: 1499).1) == s4older, "its flow keeps the oldest prefix while it lasts")
        let ack = Build.ipv4(src: c4, dst: s6eam, proto: 6, payload: tcp(sport: 40000, dport: 80, flags: 0x10, src: c4, dst: s6eam))
        #expect(source6(run(e, ack, now: 1499).1) == c4old, "an unknown flow takes the latest retiring prefix")

        let (gone, _) = run(e, udp6(to: s4older, sport: 5000), now: 1500)
        guard case .reply = gone else { Issue.record("\(gone)"); return }
        let (kept, _) = run(e, udp6(to: s4old, sport: 5001), now: 1500)
        guard case .forward = kept else { Issue.record("\(kept)"); return }
        #expect(source6(run(e, udp4(dport: 5000), now: 1500).1) == s4old, "a flow on an expired prefix moves to the latest one left")
    }

    @Test func noTransitionNoTable() throws {
        for retiring in [[], [(oldPrefix, UInt64(500))]] {
            let flows = PrefixFlows(capacity: 64)
            let e = try makeRenumberingEngine(retiring: retiring, flows: flows)
            _ = run(e, udp6(to: s4new, sport: 5000))
            let (o, v6) = run(e, udp4(dport: 5000))
            guard case .forward = o else { Issue.record("\(o)"); return }
            #expect(source6(v6) == s4new)
            _ = run(e, Build.ipv4(src: c4, dst: s6eam, proto: 6, payload: tcp(sport: 40000, dport: 80, flags: 0x10, src: c4, dst: s6eam)))
            let (old, _) = run(e, udp6(to: s4old, sport: 5000))
            guard case .reply = old else { Issue.record("\(old)"); return }
            #expect(e.snapshot[.untranslatableDestination] == 1, "the old prefix is not accepted")
            #expect(flows.count == 0, "retiring \(retiring.count): the table stays empty")
            #expect(e.snapshot.retiring6to4 == 0 && e.snapshot.retiring4to6 == 0)
        }
    }
}

/// A /96 renumbered to the /64 around it: during the transition, addresses
/// of the /96 are still read as the /96 embeds them, not as the /64 would.
@Suite struct NestedRenumberingTests {
    @Test func anOlderPrefixInsideTheNewOneKeepsItsAddresses() throws {
        let settings = TranslatorSettings(prefix: try NAT64Prefix(IPv6Prefix.parse("2001:db8:64::/64")), own4: IPv4Address("192.0.2.1"),
                                          retiring: [RetiringPrefix(try NAT64Prefix(IPv6Prefix.parse("2001:db8:64::/96")), until: 2000)])
        let e = Engine(settings: settings, pool: DynamicPool(range: try IPv4Prefix.parse("192.0.2.128/25"), idleTimeout: 7200, stateFile: nil),
                       flows: PrefixFlows(capacity: 1024))
        let old = "2001:db8:64::cb00:7102"
        let (o, v4) = run(e, Build.ipv6(src: c6, dst: old, next: 17, payload: Build.udp(sport: 5000, dport: 53, data: [1], src: c6, dst: old)), now: 1000)
        guard case .forward = o else { Issue.record("\(o)"); return }
        #expect(IPv4Address(bytes: v4[16..<20]).description == s4, "the /96's address, not the /64's reading of it")
        let (_, back) = run(e, Build.ipv4(src: s4, dst: "192.0.2.128", proto: 17, payload: Build.udp(sport: 53, dport: 5000, data: [2], src: s4, dst: "192.0.2.128")), now: 1000)
        #expect(back.count >= 40 && IPv6Address(bytes: back[8..<24]).description == old, "the reply comes from the address c6 used")
    }
}
