import DNS64
import Packet
import Testing

@Suite struct NamesTests {
    let nsp = try! NAT64Prefix(IPv6Prefix.parse("2001:db8:64::/96"))

    @Test func ipv4onlyArpaGivesThePrefix() {
        var q = Message()
        q.id = 9
        q.questions = [Question(name: name("IPV4ONLY.arpa"), type: RRType.aaaa)]
        let m = SpecialNames.ipv4onlyAnswer(query: q, prefix: nsp)
        #expect(m.answers.map(\.data) == [.aaaa(IPv6Address("2001:db8:64::c000:aa")!), .aaaa(IPv6Address("2001:db8:64::c000:ab")!)])
        let wkp = SpecialNames.ipv4onlyAnswer(query: q, prefix: .wellKnown)
        #expect(wkp.answers.first?.data == .aaaa(IPv6Address("64:ff9b::c000:aa")!), "synthesised even though 192.0.0.170 is not global")
    }

    @Test func reverseNamesUnderThePrefix() {
        #expect(SpecialNames.reverseZone(of: nsp).description == "0.0.0.0.0.0.0.0.0.0.0.0.4.6.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", "24 nibbles for a /96")
        let ptr = name("1.2.2.0.0.0.0.c.0.0.0.0.0.0.0.0.0.0.0.0.4.6.0.0.8.b.d.0.1.0.0.2.ip6.arpa")
        #expect(SpecialNames.inAddrName(forPTR: ptr, prefix: nsp) == name("33.2.0.192.in-addr.arpa"))
        let outside = name("1.2.2.0.0.0.0.c.0.0.0.0.0.0.0.0.0.0.0.0.5.6.0.0.8.b.d.0.1.0.0.2.ip6.arpa")
        #expect(SpecialNames.inAddrName(forPTR: outside, prefix: nsp) == nil)
        #expect(SpecialNames.inAddrName(forPTR: name("example.org"), prefix: nsp) == nil)
    }

    @Test func accessList() throws {
        let acl = AccessList([try IPPrefix.parse("2001:db8:1::/64"), try IPPrefix.parse("198.51.100.0/24")])
        #expect(acl.allows(IPAddress("2001:db8:1::99")!) && acl.allows(IPAddress("198.51.100.7")!))
        #expect(acl.allows(IPAddress("::ffff:198.51.100.7")!), "a mapped client is an IPv4 client")
        #expect(!acl.allows(IPAddress("2001:db8:2::1")!) && !acl.allows(IPAddress("203.0.113.1")!))
        #expect(!AccessList([]).allows(IPAddress("2001:db8:1::1")!), "an empty list allows nobody")
    }

    @Test func truncationForSmallBuffers() throws {
        var m = Message()
        m.isResponse = true
        m.questions = [Question(name: name("big.example.org"), type: RRType.aaaa)]
        m.answers = (0..<60).map { ResourceRecord(name: name("big.example.org"), type: RRType.aaaa, ttl: 1, data: .aaaa(IPv6Address(high: 0x2001_0db8_0000_0000, low: UInt64($0)))) }
        let small = Wire.encodeForUDP(m, limit: 512)
        let back = try Wire.decode(small)
        #expect(small.count <= 512 && back.truncated && back.answers.isEmpty && back.questions == m.questions)
        #expect(try Wire.decode(Wire.encodeForUDP(m, limit: 4096)).answers.count == 60)
    }
}
