import TestPackets
import Glibc
import Packet
import TCBPF
import Testing
@testable import Translator

/// The tc-BPF translator (bpf/nat64.bpf.c) run through BPF_PROG_TEST_RUN on
/// the engine's packet vectors, against the engine with the same settings:
/// what the program translates must come out byte for byte as the engine
/// makes it (but for the Identification of small IPv6-to-IPv4 packets,
/// which each numbers itself), with checksums verified independently; what
/// it leaves to the engine must come back untouched, counted under the
/// right reason. Needs root (CAP_BPF), which make test has.
@Suite(.serialized) struct KernelPathTests {
    struct Pair {
        let engine: Engine
        let program: NAT64Program
    }

    static func pair(prefix: String = "2001:db8:64::/96", eam: [(String, String)] = [], pool: String? = "192.0.2.128/25",
                     puntAll: Bool = false) throws -> Pair {
        let engine = try makeEngine(prefix: prefix, eam: eam, pool: pool)
        let program = try NAT64Program()
        try program.maps.configure(NAT64Maps.Settings(
            prefix: engine.settings.prefix, eam: Set(engine.settings.eam.entries.map { NAT64Maps.Mapping(ipv4: $0.ipv4, ipv6: $0.ipv6) }),
            ifindex6: 1, ifindex4: 1, lowestIPv6MTU: 1280, puntAll: puntAll, l3Offset: 14))
        return Pair(engine: engine, program: program)
    }

    /// Gives `host` its pool address in the engine (its first packet) and
    /// in the program's map, as the datapath does.
    static func mapHost(_ p: Pair, _ host: String) throws -> IPv4Address {
        let a = try #require(p.engine.pool?.address(for: IPv6Address(host)!, now: 1000))
        try p.program.maps.addPoolMapping(host: IPv6Address(host)!, address: a, lastUsed: UInt64(time(nil)))
        return a
    }

    static func frame(_ packet: [UInt8]) -> [UInt8] {
        [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2] + (packet[0] >> 4 == 6 ? [0x86, 0xDD] : [0x08, 0x00]) + packet
    }

    /// Runs both; the program must translate (TC_ACT_REDIRECT) and agree
    /// with the engine. Returns the translated packet.
    @discardableResult
    static func expectSame(_ p: Pair, _ packet: [UInt8], gsoSize: Int = 0, _ note: Comment? = nil,
                           sourceLocation: SourceLocation = #_sourceLocation) throws -> [UInt8] {
        let before = p.program.maps.counters()
        let k = try p.program.testRun(frame(packet), gsoSize: UInt32(gsoSize))
        var offload = Offload()
        if gsoSize > 0 {
            offload.gsoType = packet[0] >> 4 == 6 ? (packet[6] == 17 ? Offload.udpL4 : Offload.tcp6) : (packet[9] == 17 ? Offload.udpL4 : Offload.tcp4)
            offload.gsoSize = UInt16(gsoSize)
        }
        let (outcome, engine) = run(p.engine, packet, offload: &offload)
        guard case .forward = outcome else {
            Issue.record("the engine did not translate it: \(outcome) \(note ?? "")", sourceLocation: sourceLocation)
            return []
        }
        #expect(k.translated, "the program did not translate it (verdict \(k.verdict)), punted as \(Self.punts(p, since: before)) \(note ?? "")",
                sourceLocation: sourceLocation)
        let kernel = Array(k.frame.dropFirst(14))
        #expect(k.frame[12..<14] == (engine[0] >> 4 == 4 ? [0x08, 0x00] : [0x86, 0xDD]), sourceLocation: sourceLocation)
        #expect(kernel.count == engine.count, "\(note ?? "")", sourceLocation: sourceLocation)
        if engine[0] >> 4 == 4 {
            // Both headers valid on their own; equal but for a small packet's ID.
            #expect(Verify.ipv4Header(kernel) && Verify.ipv4Header(engine), sourceLocation: sourceLocation)
            #expect(Verify.l4of4(kernel), "the program's L4 checksum \(note ?? "")", sourceLocation: sourceLocation)
            let dfSet = engine[6] & 0x40 != 0
            var k = kernel, e = engine
            if !dfSet { k[4...5] = [0, 0]; e[4...5] = [0, 0] }
            k[10...11] = [0, 0]
            e[10...11] = [0, 0]
            #expect(k == e, "byte for byte, the ID aside \(note ?? "")", sourceLocation: sourceLocation)
            if dfSet { #expect(kernel[4...5] == [0, 0], sourceLocation: sourceLocation) }
        } else {
            #expect(Verify.l4of6(kernel), "the program's L4 checksum \(note ?? "")", sourceLocation: sourceLocation)
            #expect(kernel == engine, "byte for byte \(note ?? "")", sourceLocation: sourceLocation)
        }
        return kernel
    }

    /// The program must leave it untouched (TC_ACT_OK) and count `reason`.
    static func expectPunt(_ p: Pair, _ packet: [UInt8], _ reason: KernelCounter, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let before = p.program.maps.counters()
        let k = try p.program.testRun(frame(packet))
        #expect(k.punted, "verdict \(k.verdict)", sourceLocation: sourceLocation)
        #expect(k.frame == frame(packet), "punted untouched", sourceLocation: sourceLocation)
        #expect(Self.punts(p, since: before) == [reason], sourceLocation: sourceLocation)
    }

    static func punts(_ p: Pair, since before: [UInt64]) -> [KernelCounter] {
        let after = p.program.maps.counters()
        return KernelCounter.allCases.filter { after[$0.index] != before[$0.index] }
    }

    @Test func poolTrafficBothWays() throws {
        let p = try Self.pair()
        try Self.expectPunt(p, Build.ipv6(src: c6, dst: s4in6, next: 17, payload: Build.udp(sport: 5000, dport: 53, data: [1, 2, 3], src: c6, dst: s4in6)), .source)
        let a = try Self.mapHost(p, c6).description
        // UDP, small (no DF, an ID) and large (DF); TCP; an echo; a traffic class.
        try Self.expectSame(p, Build.ipv6(src: c6, dst: s4in6, next: 17, payload: Build.udp(sport: 5000, dport: 53, data: Array(0..<100), src: c6, dst: s4in6)))
        try Self.expectSame(p, Build.ipv6(src: c6, dst: s4in6, next: 17, payload: Build.udp(sport: 5000, dport: 53, data: [UInt8](repeating: 7, count: 1300), src: c6, dst: s4in6)))
        try Self.expectSame(p, Build.ipv6(src: c6, dst: s4in6, next: 6, tc: 0xB8, payload: Build.tcp(sport: 40000, dport: 80, src: c6, dst: s4in6)))
        try Self.expectSame(p, Build.ipv6(src: c6, dst: s4in6, next: 58, payload: Build.icmpv6(type: 128, code: 0, rest: 0x0001_0007, body: Array(0..<56), src: c6, dst: s4in6)))
        // The replies, to the pool address.
        try Self.expectSame(p, Build.ipv4(src: s4, dst: a, proto: 17, tos: 0x20, payload: Build.udp(sport: 53, dport: 5000, data: Array(0..<33), src: s4, dst: a)))
        try Self.expectSame(p, Build.ipv4(src: s4, dst: a, proto: 6, payload: Build.tcp(sport: 80, dport: 40000, src: s4, dst: a)))
        try Self.expectSame(p, Build.ipv4(src: s4, dst: a, proto: 1, payload: Build.icmpv4(type: 0, code: 0, rest: 0x0001_0007, body: Array(0..<57))))
        // An odd-length echo, padded for the sum.
        try Self.expectSame(p, Build.ipv4(src: s4, dst: a, proto: 1, payload: Build.icmpv4(type: 8, code: 0, rest: 0x0002_0001, body: Array(0..<3))))
        #expect(p.program.maps.lastUses()[IPv6Address(c6)!].map { $0 + 5 >= UInt64(time(nil)) } == true, "the program stamps the mapping")
        // Another host's pool address, reached through the prefix, hairpins: the engine's.
        let other = "2001:db8:1::3", b = try Self.mapHost(p, other).description
        let viaPrefix = "2001:db8:64::" + String(IPv4Address(b)!.rawValue >> 16, radix: 16) + ":" + String(IPv4Address(b)!.rawValue & 0xFFFF, radix: 16)
        try Self.expectPunt(p, Build.ipv6(src: c6, dst: viaPrefix, next: 17, payload: Build.udp(sport: 1, dport: 2, data: [1], src: c6, dst: viaPrefix)), .hairpin)
    }

    /// A mapping keeps the last use the pool knew, and traffic either way
    /// (a one-way stream back from IPv4 too) counts as use.
    @Test func lastUseBothWays() throws {
        let p = try Self.pair(pool: "192.0.2.128/25")
        let now = UInt64(time(nil))
        let host = IPv6Address(c6)!, a = try #require(p.engine.pool?.address(for: host, now: now))
        try p.program.maps.addPoolMapping(host: host, address: a, lastUsed: now - 1000)
        let before = try #require(p.program.maps.lastUses()[host])
        #expect(before + 1000 <= now + 2 && before + 1000 + 2 >= now, "the pool's last use, not the time of the copy: \(now - before) s ago")
        let s = a.description
        try Self.expectSame(p, Build.ipv4(src: s4, dst: s, proto: 17, payload: Build.udp(sport: 53, dport: 5000, data: [1], src: s4, dst: s)))
        #expect(try #require(p.program.maps.lastUses()[host]) + 2 >= now, "a packet back from IPv4 is a use")
    }

    /// The last uses come back for every mapping, past one batch of reads.
    @Test func lastUsesOfALargePool() throws {
        let p = try Self.pair(pool: "192.0.2.0/24")
        let now = UInt64(time(nil))
        for i in 0..<1500 {
            try p.program.maps.addPoolMapping(host: IPv6Address(high: 0x2001_0db8_0001_0000, low: UInt64(i)),
                                         address: IPv4Address(rawValue: 0xC633_0000 + UInt32(i)), lastUsed: now - UInt64(i % 100))
        }
        let uses = p.program.maps.lastUses()
        #expect(uses.count == 1500)
        #expect(uses[IPv6Address(high: 0x2001_0db8_0001_0000, low: 1499)].map { $0 + 99 + 2 >= now && $0 + 99 <= now + 2 } == true)
    }

    @Test func explicitMappingsLongestFirst() throws {
        let p = try Self.pair(eam: [("203.0.113.0/28", "2001:db8:3::/124"), ("203.0.113.10/32", "2001:db8:2::10/128")], pool: nil)
        let to10 = try Self.expectSame(p, Build.ipv4(src: c4, dst: "203.0.113.10", proto: 17, payload: Build.udp(sport: 1, dport: 2, data: [9], src: c4, dst: "203.0.113.10")))
        #expect(IPv6Address(bytes: to10[24..<40]) == IPv6Address("2001:db8:2::10")!, "the /32 beats the /28")
        let to5 = try Self.expectSame(p, Build.ipv4(src: c4, dst: "203.0.113.5", proto: 6, payload: Build.tcp(sport: 1, dport: 2, src: c4, dst: "203.0.113.5")))
        #expect(IPv6Address(bytes: to5[24..<40]) == IPv6Address("2001:db8:3::5")!, "the suffix carries over")
        // And back: the source maps through the mapping, the destination through the prefix.
        try Self.expectSame(p, Build.ipv6(src: "2001:db8:3::5", dst: c4in6, next: 17, payload: Build.udp(sport: 2, dport: 1, data: [1], src: "2001:db8:3::5", dst: c4in6)))
        // An IPv4 destination that is itself mapped back hairpins: the engine's.
        try Self.expectPunt(p, Build.ipv6(src: "2001:db8:3::5", dst: "2001:db8:64::cb00:710a", next: 17,
                                          payload: Build.udp(sport: 2, dport: 1, data: [1], src: "2001:db8:3::5", dst: "2001:db8:64::cb00:710a")), .hairpin)
    }

    @Test func everyPrefixLength() throws {
        for (prefix, server) in [("2001:db8::/32", "2001:db8:cb00:7102::"), ("2001:db8:100::/40", "2001:db8:1cb:71:2::"),
                                 ("2001:db8:100::/48", "2001:db8:100:cb00:71:200::"), ("2001:db8:100::/56", "2001:db8:100:cb:0:7102::"),
                                 ("2001:db8:100::/64", "2001:db8:100:0:cb:71:200:0"), ("2001:db8:100::/96", "2001:db8:100::cb00:7102")] {
            let p = try Self.pair(prefix: prefix)
            let a = try Self.mapHost(p, c6).description
            let back = try Self.expectSame(p, Build.ipv4(src: s4, dst: a, proto: 17, payload: Build.udp(sport: 53, dport: 5000, data: [5], src: s4, dst: a)), "\(prefix)")
            #expect(IPv6Address(bytes: back[8..<24]) == IPv6Address(server)!, "\(prefix)")
            try Self.expectSame(p, Build.ipv6(src: c6, dst: server, next: 17, payload: Build.udp(sport: 5000, dport: 53, data: [6], src: c6, dst: server)), "\(prefix)")
        }
    }

    @Test func superPackets() throws {
        let p = try Self.pair()
        let a = try Self.mapHost(p, c6).description
        // TCP: its segments carry DF. UDP of 64-byte datagrams: no DF, an ID.
        let v4 = try Self.expectSame(p, Build.ipv6(src: c6, dst: s4in6, next: 6, payload: Self.tcp(payload: 2800, src: c6, dst: s4in6)), gsoSize: 1400)
        #expect(v4[6] & 0x40 != 0)
        let udp = try Self.expectSame(p, Build.ipv6(src: c6, dst: s4in6, next: 17, payload: Build.udp(sport: 5000, dport: 9, data: [UInt8](repeating: 1, count: 640), src: c6, dst: s4in6)), gsoSize: 64)
        #expect(udp[6] & 0x40 == 0)
        try Self.expectSame(p, Build.ipv4(src: s4, dst: a, proto: 6, payload: Self.tcp(payload: 2900, src: s4, dst: a)), gsoSize: 1440)
    }

    /// A TCP segment with `payload` bytes and its checksum over all of them.
    static func tcp(payload: Int, src: String, dst: String) -> [UInt8] {
        var t = Build.tcp(sport: 40000, dport: 80, src: src, dst: dst) + [UInt8](repeating: 0x5A, count: payload)
        t[16...17] = [0, 0]
        let c = Build.l4Checksum(t, proto: 6, src: src, dst: dst)
        t[16...17] = [UInt8(c >> 8), UInt8(c & 0xFF)]
        return t
    }

    @Test func wellKnownPrefixPolicy() throws {
        let p = try Self.pair(prefix: "64:ff9b::/96")
        let a = try Self.mapHost(p, c6).description
        try Self.expectSame(p, Build.ipv6(src: c6, dst: "64:ff9b::808:808", next: 17, payload: Build.udp(sport: 1, dport: 53, data: [1], src: c6, dst: "64:ff9b::808:808")))
        try Self.expectPunt(p, Build.ipv6(src: c6, dst: "64:ff9b::a01:203", next: 17, payload: Build.udp(sport: 1, dport: 53, data: [1], src: c6, dst: "64:ff9b::a01:203")), .policy)
        try Self.expectPunt(p, Build.ipv4(src: "10.1.2.3", dst: a, proto: 17, payload: Build.udp(sport: 53, dport: 1, data: [1], src: "10.1.2.3", dst: a)), .policy)
    }

    @Test func everythingElseIsTheEngines() throws {
        let p = try Self.pair()
        let a = try Self.mapHost(p, c6).description
        let udp6 = Build.udp(sport: 5000, dport: 53, data: [1], src: c6, dst: s4in6)
        try Self.expectPunt(p, Build.ipv6(src: c6, dst: s4in6, next: 17, hop: 1, payload: udp6), .hopLimit)
        try Self.expectPunt(p, Build.ipv6(src: c6, dst: s4in6, next: 0, payload: [17, 0, 1, 4, 0, 0, 0, 0] + udp6), .headers)
        try Self.expectPunt(p, Build.ipv6(src: c6, dst: s4in6, next: 44, payload: [17, 0, 0, 0, 0, 0, 0, 9] + udp6), .fragment)
        try Self.expectPunt(p, Build.ipv6(src: c6, dst: s4in6, next: 58, payload: Build.icmpv6(type: 1, code: 0, body: [UInt8](repeating: 0, count: 48), src: c6, dst: s4in6)), .unsupportedProtocol)
        try Self.expectPunt(p, Build.ipv6(src: c6, dst: "2001:db8:99::1", next: 17, payload: Build.udp(sport: 1, dport: 2, data: [1], src: c6, dst: "2001:db8:99::1")), .destination)
        var badEcho = Build.icmpv6(type: 128, code: 0, body: [1, 2, 3, 4], src: c6, dst: s4in6)
        badEcho[9] ^= 0xFF
        try Self.expectPunt(p, Build.ipv6(src: c6, dst: s4in6, next: 58, payload: badEcho), .checksum)

        let udp4 = Build.udp(sport: 53, dport: 5000, data: [1], src: s4, dst: a)
        try Self.expectPunt(p, Build.ipv4(src: s4, dst: a, proto: 17, ttl: 1, payload: udp4), .hopLimit)
        try Self.expectPunt(p, Build.ipv4(src: s4, dst: a, proto: 17, flags: 0x2000, payload: udp4), .fragment)
        try Self.expectPunt(p, Build.ipv4(src: s4, dst: a, proto: 17, payload: Array(udp4[0..<6]) + [0, 0] + Array(udp4[8...])), .checksum)
        try Self.expectPunt(p, Build.ipv4(src: s4, dst: "192.0.2.200", proto: 17, payload: udp4), .destination)
        try Self.expectPunt(p, Build.ipv4(src: s4, dst: a, proto: 17, flags: 0, payload: Build.udp(sport: 53, dport: 5000, data: [UInt8](repeating: 2, count: 1300), src: s4, dst: a)), .size)
        var options = Build.ipv4(src: s4, dst: a, proto: 17, payload: udp4)
        options[0] = 0x46
        options.insert(contentsOf: [1, 1, 1, 0], at: 20)
        try Self.expectPunt(p, options, .headers)
        var badHeader = Build.ipv4(src: s4, dst: a, proto: 17, payload: udp4)
        badHeader[8] = 63
        try Self.expectPunt(p, badHeader, .checksum)

        // A released mapping leaves the map: the host's next packet is the engine's again.
        p.program.maps.removePoolMapping(host: IPv6Address(c6)!, address: IPv4Address(a)!)
        try Self.expectPunt(p, Build.ipv6(src: c6, dst: s4in6, next: 17, payload: udp6), .source)

        // A renumbering punts everything, until the program is told it ended.
        let renumbering = try Self.pair(puntAll: true)
        _ = try Self.mapHost(renumbering, c6)
        try Self.expectPunt(renumbering, Build.ipv6(src: c6, dst: s4in6, next: 17, payload: udp6), .renumbering)
        var over = try #require(renumbering.program.maps.settings())
        over.puntAll = false
        try renumbering.program.maps.configure(over)
        try Self.expectSame(renumbering, Build.ipv6(src: c6, dst: s4in6, next: 17, payload: udp6))
    }
}
