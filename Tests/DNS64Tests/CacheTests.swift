import DNS64
import Packet
import Testing

@Suite struct CacheTests {
    func answer(_ ttl: UInt32, rcode: UInt8 = RCode.noError) -> Message {
        var m = Message()
        m.isResponse = true
        m.rcode = rcode
        m.questions = [Question(name: name("c.example.org"), type: RRType.aaaa)]
        if rcode == RCode.noError {
            m.answers = [ResourceRecord(name: name("c.example.org"), type: RRType.aaaa, ttl: ttl, data: .aaaa(IPv6Address("2001:db8::1")!))]
        } else {
            m.authority = [ResourceRecord(name: name("example.org"), type: RRType.soa, ttl: 3600,
                                          data: .soa(mname: name("ns.example.org"), rname: name("h.example.org"), serial: 1, refresh: 1, retry: 1, expire: 1, minimum: ttl))]
        }
        return m
    }

    let key = AnswerCache.Key(Question(name: name("C.example.org"), type: RRType.aaaa), dnssecOK: false, checkingDisabled: false)

    @Test func positiveEntriesAgeAndExpire() {
        let c = AnswerCache(bytes: 1 << 20)
        c.store(key, answer(30), now: 100)
        #expect(c.lookup(key, now: 110)?.answers.first?.ttl == 20, "TTL lowered by the age")
        #expect(c.lookup(key, now: 130) == nil, "expired")
        #expect(c.statistics.hits == 1 && c.statistics.misses == 1)
    }

    @Test func negativeEntriesLiveForTheSOAMinimum() {
        let c = AnswerCache(bytes: 1 << 20)
        c.store(key, answer(300, rcode: RCode.nxDomain), now: 0)
        #expect(c.lookup(key, now: 299)?.rcode == RCode.nxDomain)
        #expect(c.lookup(key, now: 300) == nil)
        let other = AnswerCache.Key(Question(name: name("d.example.org"), type: RRType.aaaa), dnssecOK: false, checkingDisabled: false)
        c.store(other, answer(300, rcode: RCode.servFail), now: 0)
        #expect(c.lookup(other, now: 1) == nil, "errors are not kept")
    }

    @Test func validatingClientsHaveTheirOwnEntries() {
        let c = AnswerCache(bytes: 1 << 20)
        c.store(key, answer(60), now: 0)
        let validating = AnswerCache.Key(Question(name: name("c.example.org"), type: RRType.aaaa), dnssecOK: true, checkingDisabled: true)
        #expect(c.lookup(validating, now: 1) == nil)
        #expect(c.lookup(key, now: 1) != nil, "case-insensitive names")
    }

    @Test func staysWithinItsMemoryBound() {
        let c = AnswerCache(bytes: 20_000)
        for i in 0..<1000 {
            let k = AnswerCache.Key(Question(name: name("n\(i).example.org"), type: RRType.aaaa), dnssecOK: false, checkingDisabled: false)
            c.store(k, answer(600), now: 0)
        }
        #expect(c.statistics.bytes <= 20_000 && c.statistics.entries < 1000 && c.statistics.entries > 50)
        let newest = AnswerCache.Key(Question(name: name("n999.example.org"), type: RRType.aaaa), dnssecOK: false, checkingDisabled: false)
        let oldest = AnswerCache.Key(Question(name: name("n0.example.org"), type: RRType.aaaa), dnssecOK: false, checkingDisabled: false)
        #expect(c.lookup(newest, now: 1) != nil && c.lookup(oldest, now: 1) == nil, "the oldest went first")
    }
}
