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
        let m = nsp.answer(query: query(), aaaaResponse: response(minimum: 300), aResponse: response(answers: [a("www.example.org", "192.0.2.33", ttl: 30)]))
        #expect(m.answers.count == 1 && m.answers[0].type == RRType.aaaa)
        #expect(m.answers[0].data == .aaaa(IPv6Address("2001:db8:64::c000:221")!))
        #expect(m.answers[0].ttl == 30, "min(A TTL 30, negative TTL 300)")
        #expect(!m.authenticData && m.id == 7 && m.isResponse)
        let long = nsp.answer(query: query(), aaaaResponse: response(minimum: 20), aResponse: response(answers: [a("www.example.org", "192.0.2.33", ttl: 3000)]))
        #expect(long.answers[0].ttl == 20)
        let noSOA = nsp.answer(query: query(), aaaaResponse: response(soaTTL: nil), aResponse: response(answers: [a("www.example.org", "192.0.2.33", ttl: 3000)]))
        #expect(noSOA.answers[0].ttl == 600, "RFC 6147 §5.1.7: at most 600 s without an SOA")
        // dns64.max_ttl: how long a renumbering must keep the old prefix.
        let capped = Synthesis(prefix: nsp.prefix, maxTTL: 45)
        let short = capped.answer(query: query(), aaaaResponse: response(minimum: 300), aResponse: response(answers: [a("www.example.org", "192.0.2.33", ttl: 3000)]))
        #expect(short.answers[0].ttl == 45)
    }

    @Test func usableAAAAPassesAndExcludedCountsAsAbsent() {
        let dual = response(answers: [aaaa("www.example.org", "2001:db8::1")])
        #expect(nsp.decide(query: query(), aaaaResponse: dual) == .pass(nsp.passedOn(dual)))
        let mapped = response(answers: [aaaa("www.example.org", "::ffff:192.0.2.1")])
        #expect(nsp.decide(query: query(), aaaaResponse: mapped) == .askForA)
        let mixed = response(answers: [aaaa("www.example.org", "::ffff:192.0.2.1"), aaaa("www.example.org", "2001:db8::2")])
        guard case .pass(let cleaned) = nsp.decide(query: query(), aaaaResponse: mixed) else { Issue.record("not passed"); return }
        #expect(cleaned.answers.count == 1)
    }

    @Test func rcodes() {
        let nx = response(RCode.nxDomain)
        #expect(nsp.decide(query: query(), aaaaResponse: nx) == .pass(nsp.passedOn(nx)))
        #expect(nsp.decide(query: query(), aaaaResponse: response(RCode.servFail)) == .askForA, "§5.1.2: other errors count as empty")
    }

    @Test func validatingClientsGetTheRealAnswer() {
        let nodata = response()
        #expect(nsp.decide(query: query(doCD: true), aaaaResponse: nodata) == .pass(nodata))
    }

    @Test func severalAAndTheCNAMEChainIsKept() throws {
        let chain = [ResourceRecord(name: q, type: RRType.cname, ttl: 300, data: .name(name("web.example.org"))),
                     a("web.example.org", "192.0.2.1"), a("web.example.org", "192.0.2.2")]
        let m = nsp.answer(query: query(), aaaaResponse: response(), aResponse: response(answers: chain))
        #expect(m.answers.map(\.type) == [RRType.cname, RRType.aaaa, RRType.aaaa])
        #expect(m.answers[2].name == name("web.example.org"))
    }

    @Test func wellKnownPrefixSkipsNonGlobal() {
        let wkp = Synthesis(prefix: .wellKnown)
        let none = wkp.answer(query: query(), aaaaResponse: response(), aResponse: response(answers: [a("www.example.org", "10.1.2.3")]))
        #expect(none.rcode == RCode.noError && none.answers.isEmpty, "the AAAA answer's NODATA")
        let m = wkp.answer(query: query(), aaaaResponse: response(), aResponse: response(answers: [a("www.example.org", "10.1.2.3"), a("www.example.org", "8.8.8.8")]))
        #expect(m.answers.map(\.data) == [.aaaa(IPv6Address("64:ff9b::808:808")!)])
    }

    @Test func nothingToSynthesiseFromGivesTheEmptyAnswer() {
        let nodata = response(soaTTL: 120)
        #expect(nsp.answer(query: query(), aaaaResponse: nodata, aResponse: response()) == nsp.passedOn(nodata), "the AAAA query's NODATA, with its SOA")
    }

    // MARK: - DNSSEC (RFC 6147 §5.5)

    /// An upstream SERVFAIL with an Extended DNS Error (RFC 8914) of `code`.
    func servfail(ede code: UInt16?) -> Message {
        var m = response(RCode.servFail, soaTTL: nil)
        m.authenticData = false
        m.edns = EDNS(udpSize: 1232, dnssecOK: true)
        if let code { m.edns?.options = [0, 15, 0, 5, UInt8(code >> 8), UInt8(code & 0xFF)] + Array("bad".utf8) }
        return m
    }

    @Test func aBogusAAAAIsNeverSynthesisedAround() {
        for code: UInt16 in [1, 6, 7, 9, 10, 12] {
            let bogus = servfail(ede: code)
            guard case .pass(let m) = nsp.decide(query: query(), aaaaResponse: bogus) else {
                Issue.record("EDE \(code): synthesised around a failed validation")
                continue
            }
            #expect(m.rcode == RCode.servFail && m.edns?.extendedErrorCodes == [code] && m.failedValidation)
        }
        // A SERVFAIL that says nothing of DNSSEC, or something else (22: no
        // reachable authority), keeps §5.1.2.
        #expect(nsp.decide(query: query(), aaaaResponse: servfail(ede: nil)) == .askForA)
        #expect(nsp.decide(query: query(), aaaaResponse: servfail(ede: 22)) == .askForA)
        #expect(!servfail(ede: 22).failedValidation && !servfail(ede: 13).failedValidation)
    }

    @Test func anErrorOnTheAQueryIsTheAnswer() {
        // A bogus A: its SERVFAIL and EDE, not the AAAA query's NODATA.
        let bogusA = nsp.answer(query: query(), aaaaResponse: response(), aResponse: servfail(ede: 6))
        #expect(bogusA.rcode == RCode.servFail && bogusA.edns?.extendedErrorCodes == [6])
        let plain = nsp.answer(query: query(), aaaaResponse: servfail(ede: nil), aResponse: servfail(ede: nil))
        #expect(plain.rcode == RCode.servFail)
        #expect(nsp.answer(query: query(), aaaaResponse: response(), aResponse: response(RCode.refused, soaTTL: nil)).rcode == RCode.refused)
        #expect(nsp.answer(query: query(), aaaaResponse: response(), aResponse: response(RCode.nxDomain)).rcode == RCode.nxDomain)
        // A plain SERVFAIL on AAAA counts as empty (§5.1.2): the A records are synthesised.
        let synthesised = nsp.answer(query: query(), aaaaResponse: servfail(ede: nil), aResponse: response(answers: [a("www.example.org", "192.0.2.50")]))
        #expect(synthesised.answers.map(\.data) == [.aaaa(IPv6Address("2001:db8:64::c000:232")!)])
    }

    func rrsig(covering type: UInt16) -> ResourceRecord {
        ResourceRecord(name: q, type: RRType.rrsig, ttl: 60, data: .opaque([UInt8(type >> 8), UInt8(type & 0xFF)] + [UInt8](repeating: 7, count: 20)))
    }

    @Test func excludedAAAAIsNeverReturned() {
        // Only excluded AAAA and no A: the A query's empty answer, with its SOA; no AD (it proves nothing of AAAA).
        let mapped = response(answers: [aaaa("www.example.org", "::ffff:192.0.2.13"), rrsig(covering: RRType.aaaa)], soaTTL: nil)
        #expect(nsp.decide(query: query(), aaaaResponse: mapped) == .askForA)
        let trusting = Synthesis(prefix: nsp.prefix, trustUpstreamAD: true)
        let m = trusting.answer(query: query(), aaaaResponse: mapped, aResponse: response(soaTTL: 90))
        #expect(m.rcode == RCode.noError && m.answers.isEmpty && !m.authenticData)
        #expect(m.authority.map(\.ttl) == [90])
        // Some excluded: the rest passes without them, their signature and AD.
        let mixed = response(answers: [aaaa("www.example.org", "::ffff:192.0.2.1"), aaaa("www.example.org", "2001:db8::2"), rrsig(covering: RRType.aaaa)])
        guard case .pass(let cleaned) = trusting.decide(query: query(), aaaaResponse: mixed) else { Issue.record("not passed"); return }
        #expect(cleaned.answers.map(\.data) == [.aaaa(IPv6Address("2001:db8::2")!)] && !cleaned.authenticData)
        // A client that validates gets them as they are (§5.5: it validates, and synthesises, itself).
        #expect(trusting.decide(query: query(doCD: true), aaaaResponse: mapped) == .pass(mapped))
    }

    func query(dnssecOK: Bool) -> Message {
        var m = query()
        m.edns = EDNS(udpSize: 1232, dnssecOK: dnssecOK)
        return m
    }

    @Test func adOnASynthesisedAnswerOnlyFromTrustedAuthenticatedData() {
        let trusting = Synthesis(prefix: nsp.prefix, trustUpstreamAD: true)
        let secureA = response(answers: [a("www.example.org", "192.0.2.33"), rrsig(covering: RRType.a)])
        var insecureA = secureA
        insecureA.authenticData = false
        var insecureNodata = response()
        insecureNodata.authenticData = false
        let m = trusting.answer(query: query(dnssecOK: true), aaaaResponse: response(), aResponse: secureA)
        #expect(m.authenticData, "§5.5: both authenticated, DO set")
        #expect(m.answers.map(\.type) == [RRType.aaaa], "no signature of the A records")
        #expect(!trusting.answer(query: query(dnssecOK: false), aaaaResponse: response(), aResponse: secureA).authenticData, "DO clear")
        #expect(!trusting.answer(query: query(), aaaaResponse: response(), aResponse: secureA).authenticData, "no EDNS")
        #expect(!trusting.answer(query: query(dnssecOK: true), aaaaResponse: response(), aResponse: insecureA).authenticData, "A not authenticated")
        #expect(!trusting.answer(query: query(dnssecOK: true), aaaaResponse: insecureNodata, aResponse: secureA).authenticData, "NODATA not authenticated")
        #expect(!trusting.answer(query: query(dnssecOK: true), aaaaResponse: servfail(ede: nil), aResponse: secureA).authenticData, "no NODATA at all")
        #expect(!nsp.answer(query: query(dnssecOK: true), aaaaResponse: response(), aResponse: secureA).authenticData, "upstream not trusted")
        // Passed on: AD only from a trusted upstream.
        #expect(trusting.passedOn(secureA).authenticData && !nsp.passedOn(secureA).authenticData)
    }
}
