import Packet
import Testing
@testable import DNS64

/// The names the gateway publishes, answered locally: exact names before
/// wildcards, a wildcard below its name only, NODATA for a type a local
/// name lacks, and everything else upstream (nil).
struct LocalNamesTests {
    func q(_ name: String, _ type: UInt16) -> Question { Question(name: DNSName(name)!, type: type) }

    @Test func answersExactNamesThenWildcards() {
        var names = LocalNames()
        names.add("www.example.com", v4: [IPv4Address("203.0.113.20")!], v6: [IPv6Address("2001:db8:2::10")!])
        names.add("*.example.com", v4: [IPv4Address("203.0.113.20")!], v6: [IPv6Address("2001:db8:2::11")!])
        names.add("6bed4.example.com", v6: [IPv6Address("2001:db8:6b:bed::")!])
        #expect(names.records(q("WWW.Example.com", RRType.aaaa))?.map(\.data) == [.aaaa(IPv6Address("2001:db8:2::10")!)])
        #expect(names.records(q("shop.eu.example.com", RRType.aaaa))?.map(\.data) == [.aaaa(IPv6Address("2001:db8:2::11")!)])
        #expect(names.records(q("shop.example.com", RRType.a))?.map(\.data) == [.a(IPv4Address("203.0.113.20")!)])
        #expect(names.records(q("6bed4.example.com", RRType.a)) == [], "local, without A: NODATA")
        #expect(names.records(q("example.com", RRType.a)) == nil, "a wildcard does not cover its own name")
        #expect(names.records(q("www.example.com", 15)) == nil && names.records(q("other.org", RRType.a)) == nil)
        #expect(names.records(q("www.example.com", RRType.a))?.first?.ttl == LocalNames.ttl)
    }
}
