import DNS64
import Packet
import Testing

@Suite struct SynthesisTests {
    let nsp = Synthesis(prefix: try! NAT64Prefix(IPv6Prefix.parse("2001:db8:64::/96")))
    let q = name("www.example.org")

    func query(doCD: Bool = false) -> Message {
        var m = Message()
        m.id = 7
        m.recursionDesired = true
        m.questions = [Question(name: q, type: RRType.aaaa)]
        if doCD {
            m.checkingDisabled = true
            m.edns = EDNS(udpSize: 1232, dnssecOK: true)
        }
        return m
    }

    func response(_ rcode: UInt8 = RCode.noError, answers: [ResourceRecord] = [], soaTTL: UInt32? = 300, minimum: UInt32 = 300) -> Message {
        var m = Message()
        m.id = 7
        m.isResponse = true
        m.rcode = rcode
        m.authenticData = true
        m.questions = [Question(name: q, type: RRType.aaaa)]
        m.answers = answers
        if let soaTTL {
            m.authority = [ResourceRecord(name: name("example.org"), type: RRType.soa, ttl: soaTTL,
                                          data: .soa(mname: name("ns.example.org"), rname: name("h.example.org"), serial: 1, refresh: 1, retry: 1, expire: 1, minimum: minimum))]
        }
        return m
    }

    func a(_ n: String, _ addr: String, ttl: UInt32 = 30) -> ResourceRecord {
        ResourceRecord(name: name(n), type: RRType.a, ttl: ttl, data: .a(IPv4Address(addr)!))
    }

    func aaaa(_ n: String, _ addr: String) -> ResourceRecord {
        ResourceRecord(name: name(n), type: RRType.aaaa, ttl: 60, data: .aaaa(IPv6Address(addr)!))
    }

    @Test func nodataLeadsToSynthesisWithTheRightTTL() throws {
        #expect(nsp.decide(query: query(), aaaaResponse: response()) == .askForA)
        let m = try #require(nsp.synthesize(query: query(), aaaaResponse: response(minimum: 300), aResponse: response(answers: [a("www.example.org", "192.0.2.33", ttl: 30)])))
        #expect(m.answers.count == 1 && m.answers[0].type == RRType.aaaa)
        #expect(m.answers[0].data == .aaaa(IPv6Address("2001:db8:64::c000:221")!))
        #expect(m.answers[0].ttl == 30, "min(A TTL 30, negative TTL 300)")
        #expect(!m.authenticData && m.id == 7 && m.isResponse)
        let long = try #require(nsp.synthesize(query: query(), aaaaResponse: response(minimum: 20), aResponse: response(answers: [a("www.example.org", "192.0.2.33", ttl: 3000)])))
        #expect(long.answers[0].ttl == 20)
        let noSOA = try #require(nsp.synthesize(query: query(), aaaaResponse: response(soaTTL: nil), aResponse: response(answers: [a("www.example.org", "192.0.2.33", ttl: 3000)])))
        #expect(noSOA.answers[0].ttl == 600, "RFC 6147 §5.1.7: at most 600 s without an SOA")
        // dns64.max_ttl: how long a renumbering must keep the old prefix.
        let capped = Synthesis(prefix: nsp.prefix, maxTTL: 45)
        let short = try #require(capped.synthesize(query: query(), aaaaResponse: response(minimum: 300), aResponse: response(answers: [a("www.example.org", "192.0.2.33", ttl: 3000)])))
        #expect(short.answers[0].ttl == 45)
    }

    @Test func usableAAAAPassesAndExcludedCountsAsAbsent() {
        let dual = response(answers: [aaaa("www.example.org", "2001:db8::1")])
        #expect(nsp.decide(query: query(), aaaaResponse: dual) == .pass(dual))
        let mapped = response(answers: [aaaa("www.example.org", "::ffff:192.0.2.1")])
        #expect(nsp.decide(query: query(), aaaaResponse: mapped) == .askForA)
        let mixed = response(answers: [aaaa("www.example.org", "::ffff:192.0.2.1"), aaaa("www.example.org", "2001:db8::2")])
        guard case .pass(let cleaned) = nsp.decide(query: query(), aaaaResponse: mixed) else { Issue.record("not passed"); return }
        #expect(cleaned.answers.count == 1)
    }

    @Test func rcodes() {
        let nx = response(RCode.nxDomain)
        #expect(nsp.decide(query: query(), aaaaResponse: nx) == .pass(nx))
        #expect(nsp.decide(query: query(), aaaaResponse: response(RCode.servFail)) == .askForA, "§5.1.2: other errors count as empty")
    }

    @Test func validatingClientsGetTheRealAnswer() {
        let nodata = response()
        #expect(nsp.decide(query: query(doCD: true), aaaaResponse: nodata) == .pass(nodata))
    }

    @Test func severalAAndTheCNAMEChainIsKept() throws {
        let chain = [ResourceRecord(name: q, type: RRType.cname, ttl: 300, data: .name(name("web.example.org"))),
                     a("web.example.org", "192.0.2.1"), a("web.example.org", "192.0.2.2")]
        let m = try #require(nsp.synthesize(query: query(), aaaaResponse: response(), aResponse: response(answers: chain)))
        #expect(m.answers.map(\.type) == [RRType.cname, RRType.aaaa, RRType.aaaa])
        #expect(m.answers[2].name == name("web.example.org"))
    }

    @Test func wellKnownPrefixSkipsNonGlobal() {
        let wkp = Synthesis(prefix: .wellKnown)
        #expect(wkp.synthesize(query: query(), aaaaResponse: response(), aResponse: response(answers: [a("www.example.org", "10.1.2.3")])) == nil)
        let m = wkp.synthesize(query: query(), aaaaResponse: response(), aResponse: response(answers: [a("www.example.org", "10.1.2.3"), a("www.example.org", "8.8.8.8")]))
        #expect(m?.answers.map(\.data) == [.aaaa(IPv6Address("64:ff9b::808:808")!)])
    }

    @Test func nothingToSynthesiseFrom() {
        #expect(nsp.synthesize(query: query(), aaaaResponse: response(), aResponse: response()) == nil)
        #expect(nsp.synthesize(query: query(), aaaaResponse: response(), aResponse: response(RCode.nxDomain)) == nil)
    }
}
