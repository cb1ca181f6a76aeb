import TestPackets
import Foundation
import Packet
import Testing
@testable import Translator

@Suite struct ICMPMapTests {
    /// RFC 7915 §4.2, row by row.
    @Test func icmpv4ToICMPv6() {
        let rows: [((UInt8, UInt8), (UInt8, UInt8)?)] = [
            ((8, 0), (128, 0)), ((0, 0), (129, 0)),
            ((3, 0), (1, 0)), ((3, 1), (1, 0)), ((3, 2), (4, 1)), ((3, 3), (1, 4)), ((3, 4), (2, 0)),
            ((3, 5), (1, 0)), ((3, 6), (1, 0)), ((3, 7), (1, 0)), ((3, 8), (1, 0)), ((3, 9), (1, 1)),
            ((3, 10), (1, 1)), ((3, 11), (1, 0)), ((3, 12), (1, 0)), ((3, 13), (1, 1)), ((3, 14), nil), ((3, 15), (1, 1)),
            ((11, 0), (3, 0)), ((11, 1), (3, 1)), ((12, 0), (4, 0)), ((12, 1), nil), ((12, 2), (4, 0)),
            ((4, 0), nil), ((5, 0), nil), ((9, 0), nil), ((10, 0), nil), ((13, 0), nil), ((14, 0), nil),
            ((15, 0), nil), ((16, 0), nil), ((17, 0), nil), ((18, 0), nil),
        ]
        for ((t, c), want) in rows {
            let got = ICMPMap.to6(type: t, code: c).map { ($0.type, $0.code) }
            #expect(got?.0 == want?.0 && got?.1 == want?.1, "ICMPv4 \(t)/\(c)")
        }
        #expect(ICMPMap.to6(type: 3, code: 2)?.pointer == 6, "protocol unreachable points at Next Header")
    }

    /// RFC 7915 §5.2, row by row.
    @Test func icmpv6ToICMPv4() {
        let rows: [((UInt8, UInt8), (UInt8, UInt8)?)] = [
            ((128, 0), (8, 0)), ((129, 0), (0, 0)),
            ((1, 0), (3, 1)), ((1, 1), (3, 10)), ((1, 2), (3, 1)), ((1, 3), (3, 1)), ((1, 4), (3, 3)), ((1, 5), nil),
            ((2, 0), (3, 4)), ((3, 0), (11, 0)), ((3, 1), (11, 1)), ((4, 0), (12, 0)), ((4, 1), (3, 2)), ((4, 2), nil),
            ((130, 0), nil), ((133, 0), nil), ((134, 0), nil), ((135, 0), nil), ((136, 0), nil), ((137, 0), nil),
        ]
        for ((t, c), want) in rows {
            let got = ICMPMap.to4(type: t, code: c).map { ($0.type, $0.code) }
            #expect(got?.0 == want?.0 && got?.1 == want?.1, "ICMPv6 \(t)/\(c)")
        }
    }

    @Test func pointersAndPlateaus() {
        #expect(ICMPMap.pointer4to6(9) == 6 && ICMPMap.pointer4to6(8) == 7 && ICMPMap.pointer4to6(13) == 8 && ICMPMap.pointer4to6(17) == 24)
        #expect(ICMPMap.pointer4to6(4) == nil && ICMPMap.pointer4to6(10) == nil)
        #expect(ICMPMap.pointer6to4(6) == 9 && ICMPMap.pointer6to4(7) == 8 && ICMPMap.pointer6to4(20) == 12 && ICMPMap.pointer6to4(30) == 16)
        #expect(ICMPMap.pointer6to4(2) == nil && ICMPMap.pointer6to4(40) == nil)
        #expect(ICMPMap.plateau(below: 1500) == 1492 && ICMPMap.plateau(below: 2000) == 1492 && ICMPMap.plateau(below: 1492) == 1006)
        #expect(ICMPMap.plateau(below: 60) == 68)
    }
}

@Suite struct DynamicPoolTests {
    func host(_ i: Int) -> IPv6Address { IPv6Address(high: 0x2001_0db8_0001_0000, low: UInt64(i)) }

    @Test func allocatesInOrderSkipsReservedAndExhausts() throws {
        let pool = DynamicPool(range: try IPv4Prefix.parse("192.0.2.0/30"), idleTimeout: 60, stateFile: nil, reserved: [IPv4Address("192.0.2.1")!])
        #expect(pool.address(for: host(1), now: 0)?.description == "192.0.2.0")
        #expect(pool.address(for: host(2), now: 0)?.description == "192.0.2.2")
        #expect(pool.address(for: host(3), now: 0)?.description == "192.0.2.3")
        #expect(pool.address(for: host(4), now: 0) == nil, "exhausted")
        #expect(pool.address(for: host(1), now: 10)?.description == "192.0.2.0", "stable")
        #expect(pool.host(for: IPv4Address("192.0.2.2")!, now: 10) == host(2))
        // After the idle timeout, an exhausted pool reclaims the idle ones.
        #expect(pool.address(for: host(4), now: 65) != nil)
        #expect(pool.count == 3, "hosts 1 and 2 (used at 10) stay until 70; host 3 (used at 0) went at 60")
        #expect(pool.existingAddress(for: host(3)) == nil)
    }

    /// One client (a /64) holds at most its share; others are served, and
    /// a released address makes room again.
    @Test func limitsTheAddressesOfOneClient() throws {
        let pool = DynamicPool(range: try IPv4Prefix.parse("192.0.2.0/28"), idleTimeout: 60, stateFile: nil,
                               clientLimit: DynamicPool.ClientLimit(addresses: 2, length: 64))
        let elsewhere = IPv6Address(high: 0x2001_0db8_0002_0000, low: 1)
        #expect(try pool.allocate(for: host(1), now: 0).get().description == "192.0.2.0")
        #expect(try pool.allocate(for: host(2), now: 0).get().description == "192.0.2.1")
        #expect(throws: DropReason.poolClientLimit) { try pool.allocate(for: host(3), now: 0).get() }
        #expect(try pool.allocate(for: host(1), now: 30).get().description == "192.0.2.0", "a host that holds one keeps it")
        #expect(try pool.allocate(for: elsewhere, now: 1).get().description == "192.0.2.2", "another client is served")
        pool.expire(now: 62)
        #expect((try? pool.allocate(for: host(3), now: 62).get()) != nil, "host 2 went idle (host 1 did not): room for host 3")
        #expect(throws: DropReason.poolClientLimit) { try pool.allocate(for: host(4), now: 62).get() }
    }

    /// A client over its limit gets ICMPv6 destination unreachable,
    /// administratively prohibited (code 1), counted apart from exhaustion.
    @Test func aClientOverItsLimitIsAnswered() throws {
        let settings = try makeEngine().settings
        let engine = Engine(settings: settings, pool: DynamicPool(range: try IPv4Prefix.parse("192.0.2.128/25"), idleTimeout: 7200, stateFile: nil,
                                                                  clientLimit: DynamicPool.ClientLimit(addresses: 1, length: 64)))
        let udp = { (src: String) in Build.udp(sport: 4000, dport: 53, data: [1, 2, 3, 4], src: src, dst: "2001:db8:64::cb00:7102") }
        let first = run(engine, Build.ipv6(src: "2001:db8:1::2", dst: "2001:db8:64::cb00:7102", next: 17, payload: udp("2001:db8:1::2")))
        guard case .forward = first.0 else { Issue.record("the client's first host is translated: \(first.0)"); return }
        let (o, reply) = run(engine, Build.ipv6(src: "2001:db8:1::3", dst: "2001:db8:64::cb00:7102", next: 17, payload: udp("2001:db8:1::3")))
        guard case .reply = o else { Issue.record("answered: \(o)"); return }
        #expect(reply[6] == 58 && reply[40] == 1 && reply[41] == 1, "ICMPv6 type 1 code 1")
        #expect(IPv6Address(bytes: reply[24..<40]).description == "2001:db8:1::3")
        #expect(Verify.l4of6(reply), "its checksum holds")
        #expect(engine.snapshot.drops[DropReason.poolClientLimit.rawValue] == 1)
        #expect(engine.snapshot.drops[DropReason.poolExhausted.rawValue] == 0)
    }

    @Test func survivesARestartThroughItsStateFile() throws {
        let dir = NSTemporaryDirectory() + "sixgate-pool-\(getpid())-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/pool4.state"
        let range = try IPv4Prefix.parse("192.0.2.128/25")
        let a = DynamicPool(range: range, idleTimeout: 7200, stateFile: file)
        let x = a.address(for: host(7), now: 1000), y = a.address(for: host(9), now: 1000)
        try a.save()
        let b = DynamicPool(range: range, idleTimeout: 7200, stateFile: file)
        b.load(now: 2000)
        #expect(b.existingAddress(for: host(7)) == x && b.existingAddress(for: host(9)) == y)
        #expect(b.address(for: host(11), now: 2000) != x && b.address(for: host(11), now: 2000) != y)
        // Expired or out-of-range mappings are not restored.
        let c = DynamicPool(range: range, idleTimeout: 7200, stateFile: file)
        c.load(now: 1000 + 7201)
        #expect(c.count == 0)
        let d = DynamicPool(range: try IPv4Prefix.parse("198.51.100.0/24"), idleTimeout: 7200, stateFile: file)
        d.load(now: 2000)
        #expect(d.count == 0)
    }

    /// What the kernel datapath follows: the mappings there are, then each
    /// one made and released; and the last use it reports keeps a mapping.
    @Test func observersSeeEveryMappingAndTouchesKeepThem() throws {
        final class Seen: @unchecked Sendable { var changes: [String] = [] }
        let pool = DynamicPool(range: try IPv4Prefix.parse("192.0.2.0/30"), idleTimeout: 60, stateFile: nil)
        _ = pool.address(for: host(1), now: 0)
        let seen = Seen()
        pool.observe { change in
            switch change {
            case .added(let m): seen.changes.append("+\(m.ipv4)")
            case .released(let m): seen.changes.append("-\(m.ipv4)")
            }
        }
        _ = pool.address(for: host(2), now: 0)
        pool.touch([host(2): 50, host(9): 50])
        pool.expire(now: 100)
        #expect(seen.changes == ["+192.0.2.0", "+192.0.2.1", "-192.0.2.0"], "host 2, used at 50 by the kernel, stays until 110")
        #expect(pool.existingAddress(for: host(2)) != nil)
        pool.observe(nil)
        pool.expire(now: 200)
        #expect(seen.changes.count == 3, "no more calls once the observer is gone")
    }
}

/// A changed pool: hosts holding an address of the earlier range keep it
/// (their connections live on) until its deadline; new hosts get the new range.
@Suite struct PoolRenumberingTests {
    @Test func earlierRangeKeptUntilItsDeadline() throws {
        let file = NSTemporaryDirectory() + "sixgate-pool-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: file) }
        let old = try IPv4Prefix.parse("192.0.2.128/25"), new = try IPv4Prefix.parse("198.51.100.0/25")
        let h1 = IPv6Address("2001:db8:1::1")!, h2 = IPv6Address("2001:db8:1::2")!
        let before = DynamicPool(range: old, idleTimeout: 7200, stateFile: file)
        #expect(before.address(for: h1, now: 1000)?.description == "192.0.2.128")
        try before.save()

        let after = DynamicPool(range: new, idleTimeout: 7200, stateFile: file, retiring: [.init(old, until: 2000)])
        after.load(now: 1500)
        #expect(after.address(for: h1, now: 1500)?.description == "192.0.2.128", "h1 keeps its address")
        #expect(after.host(for: IPv4Address("192.0.2.128")!, now: 1500) == h1, "and its replies still find it")
        #expect(after.owns(IPv4Address("192.0.2.128")!, now: 1500) && !after.owns(IPv4Address("192.0.2.128")!, now: 2000))
        #expect(after.address(for: h2, now: 1500)?.description == "198.51.100.0", "new hosts get the new range")
        after.expire(now: 1999)
        #expect(after.count == 2)
        after.expire(now: 2000)
        #expect(after.count == 1 && after.host(for: IPv4Address("192.0.2.128")!, now: 2000) == nil, "released at the deadline")
        #expect(after.address(for: h1, now: 2000)?.description == "198.51.100.1", "then h1 moves to the new range")

        let without = DynamicPool(range: new, idleTimeout: 7200, stateFile: file)
        try before.save()
        without.load(now: 1500)
        #expect(without.count == 0, "without the earlier range, its mappings are not loaded")
    }
}
