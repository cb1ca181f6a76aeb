import DNS64
import Packet
import Testing

func name(_ s: String) -> DNSName { DNSName(s)! }

@Suite struct WireTests {
    func sample() -> Message {
        var m = Message()
        m.id = 0xBEEF
        m.isResponse = true
        m.recursionDesired = true
        m.recursionAvailable = true
        m.questions = [Question(name: name("www.example.org"), type: RRType.aaaa)]
        m.answers = [
            ResourceRecord(name: name("www.example.org"), type: RRType.cname, ttl: 300, data: .name(name("web.example.org"))),
            ResourceRecord(name: name("web.example.org"), type: RRType.a, ttl: 30, data: .a(IPv4Address("192.0.2.33")!)),
        ]
        m.authority = [ResourceRecord(name: name("example.org"), type: RRType.soa, ttl: 3600,
                                      data: .soa(mname: name("ns.example.org"), rname: name("hostmaster.example.org"), serial: 1, refresh: 2, retry: 3, expire: 4, minimum: 300))]
        m.additional = [ResourceRecord(name: name("ns.example.org"), type: 99, ttl: 5, data: .opaque([1, 2, 3]))]
        m.edns = EDNS(udpSize: 1232, dnssecOK: true)
        return m
    }

    @Test func roundTripWithCompression() throws {
        let m = sample()
        let bytes = Wire.encode(m)
        #expect(try Wire.decode(bytes) == m)
        // Compression: "example.org" is written once; the rest point at it.
        let plain = m.questions.map(\.name.wireLength).reduce(0, +) + 4 * 16
        #expect(bytes.count < 12 + plain + 80)
    }

    /// Names point at what was written before, whatever its case: the
    /// answer's owner at the question, the CNAME target's "example.org" at
    /// the question's.
    @Test func compressionPointsAtEarlierNames() {
        var m = Message()
        m.isResponse = true
        m.questions = [Question(name: name("www.example.org"), type: RRType.a)]
        m.answers = [ResourceRecord(name: name("WWW.example.org"), type: RRType.cname, ttl: 60, data: .name(name("mail.EXAMPLE.org")))]
        let bytes = Wire.encode(m)
        // Header 12, question name 17 and type/class 4: the answer starts at 33.
        #expect(Array(bytes[33..<35]) == [0xC0, 12])
        // Its owner, type, class, TTL and length take 12: the target at 45.
        #expect(Array(bytes[43..<45]) == [0, 7])
        #expect(Array(bytes[45..<52]) == [4] + Array("mail".utf8) + [0xC0, 16])
        #expect(bytes.count == 52)
    }

    @Test func namesCompareWithoutCase() {
        #expect(name("WWW.Example.ORG") == name("www.example.org"))
        #expect(Set([name("A.b"), name("a.B")]).count == 1)
        #expect(name("a.b.example.org").isSubdomain(of: name("Example.org")))
        #expect(name("x.old.example").replacing(suffix: name("old.example"), with: name("new.example.net")) == name("x.new.example.net"))
        #expect(DNSName(".") == .root && DNSName("") == nil && DNSName("a..b") == nil)
        #expect(DNSName(String(repeating: "a", count: 64)) == nil)
    }

    @Test func refusesMalformedMessages() {
        let good = Wire.encode(sample())
        #expect(throws: DNSDecodeError.truncated) { try Wire.decode(Array(good.prefix(11))) }
        #expect(throws: DNSDecodeError.trailingBytes) { try Wire.decode(good + [0]) }
        // A compression pointer to itself: a loop.
        var loop: [UInt8] = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1]
        #expect(throws: DNSDecodeError.compressionLoop) { try Wire.decode(loop) }
        loop[12] = 0x80  // reserved label type
        #expect(throws: DNSDecodeError.badLabel) { try Wire.decode(loop) }
        // An A record whose data is not 4 bytes.
        var bad = sample()
        bad.answers = [ResourceRecord(name: name("x.org"), type: RRType.a, ttl: 1, data: .opaque([1, 2, 3]))]
        #expect(throws: DNSDecodeError.badRData(type: RRType.a)) { try Wire.decode(Wire.encode(bad)) }
    }

    /// Random bytes and mutations of a good message never crash the decoder.
    @Test func survivesGarbage() {
        let good = Wire.encode(sample())
        var rng = SystemRandomNumberGenerator()
        var decoded = 0
        for i in 0..<20_000 {
            var b: [UInt8]
            if i % 2 == 0 {
                b = (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                b = good
                for _ in 0..<Int.random(in: 1...4, using: &rng) { b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
                b = Array(b.prefix(Int.random(in: 0...b.count, using: &rng)))
            }
            if (try? Wire.decode(b)) != nil { decoded += 1 }
        }
        #expect(decoded < 20_000)
    }

    @Test func ednsOptionsMustAddUp() throws {
        var m = sample()
        // A cookie (code 10, 8 bytes) and an Extended DNS Error (15): 6, "x".
        m.edns?.options = [0, 10, 0, 8] + [UInt8](repeating: 1, count: 8) + [0, 15, 0, 3, 0, 6, 0x78]
        let wire = Wire.encode(m)
        let decoded = try Wire.decode(wire)
        #expect(decoded.edns?.extendedErrorCodes == [6])
        #expect(decoded.edns?.extendedErrors == [0, 15, 0, 3, 0, 6, 0x78], "only the EDE is passed on")
        // The last option claims one byte more than there is, then one less.
        for delta: Int in [1, -1] {
            var bad = wire
            let lengthAt = bad.count - 5  // the EDE's length, before its 3 bytes
            bad[lengthAt] = UInt8(3 + delta)
            #expect(throws: DNSDecodeError.badOption) { try Wire.decode(bad) }
        }
    }
}
