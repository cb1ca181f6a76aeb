@testable import DNS64
import Packet
import Testing

@Suite struct CacheTests {
    func answer(_ ttl: UInt32, rcode: UInt8 = RCode.noError, name n: String = "c.example.org") -> Message {
        var m = Message()
        m.isResponse = true
        m.rcode = rcode
        m.questions = [Question(name: name(n), type: RRType.aaaa)]
        if rcode == RCode.noError {
            m.answers = [ResourceRecord(name: name(n), type: RRType.aaaa, ttl: ttl, data: .aaaa(IPv6Address("2001:db8::1")!)),
                         ResourceRecord(name: name(n), type: RRType.aaaa, ttl: ttl + 100, data: .aaaa(IPv6Address("2001:db8::2")!))]
        } else {
            m.authority = [ResourceRecord(name: name("example.org"), type: RRType.soa, ttl: 3600,
                                          data: .soa(mname: name("ns.example.org"), rname: name("h.example.org"), serial: 1, refresh: 1, retry: 1, expire: 1, minimum: ttl))]
        }
        return m
    }

    let key = AnswerCache.Key(Question(name: name("C.example.org"), type: RRType.aaaa), dnssecOK: false, checkingDisabled: false)

    /// A hit as the client gets it.
    func message(_ hit: AnswerCache.Hit?, id: UInt16 = 7, rd: Bool = true, qname: String = "c.example.org") -> Message? {
        hit.flatMap { try? Wire.decode($0.response(id: id, recursionDesired: rd, qname: name(qname).wire)) }
    }

    @Test func positiveEntriesAgeAndExpire() {
        let c = AnswerCache(bytes: 1 << 20)
        c.store(key, answer(30), now: 100)
        #expect(message(c.lookup(key, now: 110))?.answers.map(\.ttl) == [20, 120], "every TTL lowered by the age")
        #expect(message(c.lookup(key, now: 100))?.answers.map(\.ttl) == [30, 130])
        #expect(c.lookup(key, now: 130) == nil, "expired with its smallest TTL")
    }

    @Test func hitsCarryTheQuerysIDRDAndSpelling() throws {
        let c = AnswerCache(bytes: 1 << 20)
        c.store(key, answer(30), now: 0)
        let m = try #require(message(c.lookup(key, now: 1), id: 0xBEEF, rd: false, qname: "C.ExAmple.ORG"))
        #expect(m.id == 0xBEEF && !m.recursionDesired && m.isResponse)
        #expect(m.questions.first?.name.description == "C.ExAmple.ORG.", "the question as the client spelt it")
        #expect(m.answers.count == 2 && m.answers[0].name.description == "C.ExAmple.ORG.", "compressed answer names follow the question")
        let rd = try #require(message(c.lookup(key, now: 1), id: 1, rd: true))
        #expect(rd.recursionDesired)
    }

    @Test func negativeEntriesLiveForTheSOAMinimum() {
        let c = AnswerCache(bytes: 1 << 20)
        c.store(key, answer(300, rcode: RCode.nxDomain), now: 0)
        #expect(message(c.lookup(key, now: 299))?.rcode == RCode.nxDomain)
        #expect(c.lookup(key, now: 300) == nil)
        let other = AnswerCache.Key(Question(name: name("d.example.org"), type: RRType.aaaa), dnssecOK: false, checkingDisabled: false)
        c.store(other, answer(300, rcode: RCode.servFail, name: "d.example.org"), now: 0)
        #expect(c.lookup(other, now: 1) == nil, "errors are not kept")
    }

    @Test func anAnswerIsKeptOnlyUnderItsOwnQuestion() {
        let c = AnswerCache(bytes: 1 << 20)
        let other = AnswerCache.Key(Question(name: name("d.example.org"), type: RRType.aaaa), dnssecOK: false, checkingDisabled: false)
        c.store(other, answer(300), now: 0)
        #expect(c.lookup(other, now: 1) == nil, "the question name is patched in place, so it must be the key's")
    }

    @Test func validatingClientsHaveTheirOwnEntries() {
        let c = AnswerCache(bytes: 1 << 20)
        c.store(key, answer(60), now: 0)
        let validating = AnswerCache.Key(Question(name: name("c.example.org"), type: RRType.aaaa), dnssecOK: true, checkingDisabled: true)
        #expect(c.lookup(validating, now: 1) == nil)
        let withEDNS = AnswerCache.Key(Question(name: name("c.example.org"), type: RRType.aaaa), dnssecOK: false, checkingDisabled: false, edns: true)
        #expect(c.lookup(withEDNS, now: 1) == nil, "the answer's OPT follows the query's")
        #expect(c.lookup(key, now: 1) != nil, "case-insensitive names")
    }

    @Test func staysWithinItsMemoryBound() {
        let c = AnswerCache(bytes: 20_000)
        func k(_ i: Int) -> AnswerCache.Key { AnswerCache.Key(Question(name: name("n\(i).example.org"), type: RRType.aaaa), dnssecOK: false, checkingDisabled: false) }
        for i in 0..<1000 { c.store(k(i), answer(600, name: "n\(i).example.org"), now: 0) }
        #expect(c.statistics.bytes <= 20_000 && c.statistics.entries < 1000 && c.statistics.entries > 50)
        #expect(c.lookup(k(999), now: 1) != nil && c.lookup(k(0), now: 1) == nil, "the oldest went first")
    }
}

@Suite struct QueryHeadTests {
    func query(_ n: String, type: UInt16 = RRType.aaaa, edns: EDNS? = nil, cd: Bool = false, rd: Bool = true) -> [UInt8] {
        var m = Message()
        m.id = 0x1234
        m.recursionDesired = rd
        m.checkingDisabled = cd
        m.questions = [Question(name: name(n), type: type)]
        m.edns = edns
        return Wire.encode(m)
    }

    func head(_ bytes: [UInt8]) -> QueryHead? { bytes.withUnsafeBytes { QueryHead($0) } }

    @Test func readsTheKeyTheFullPathComputes() throws {
        for (edns, cd) in [(nil, false), (EDNS(udpSize: 1232, dnssecOK: false), false), (EDNS(udpSize: 4096, dnssecOK: true), true)] {
            let bytes = query("WWW.Example.org", edns: edns, cd: cd)
            let h = try #require(head(bytes))
            let m = try Wire.decode(bytes)
            let q = try #require(m.question)
            #expect(h.key == AnswerCache.Key(q, dnssecOK: m.edns?.dnssecOK ?? false, checkingDisabled: m.checkingDisabled, edns: m.edns != nil))
            #expect(h.id == 0x1234 && h.recursionDesired && h.nameEnd == 12 + q.name.wireLength)
            #expect(h.udpSize == Int(edns?.udpSize ?? 512))
        }
    }

    @Test func leavesEverythingUnusualToTheFullDecoder() {
        var response = query("a.example.org")
        response[2] |= 0x80
        #expect(head(response) == nil, "a response")
        var notify = query("a.example.org")
        notify[2] |= 4 << 3
        #expect(head(notify) == nil, "another opcode")
        #expect(head(Array(query("a.example.org").dropLast())) == nil, "truncated")
        #expect(head(query("a.example.org") + [0]) == nil, "trailing bytes")
        // A compressed question name (pointer to offset 12, i.e. itself).
        #expect(head([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 28, 0, 1]) == nil)
        var two = query("a.example.org")
        two[5] = 2
        #expect(head(two) == nil, "two questions")
        #expect(head([UInt8](repeating: 0, count: 11)) == nil)
    }
}
