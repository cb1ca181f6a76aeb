import Packet

/// Record types sixgate reads; everything else passes through as opaque bytes.
public enum RRType {
    public static let a: UInt16 = 1
    public static let ns: UInt16 = 2
    public static let cname: UInt16 = 5
    public static let soa: UInt16 = 6
    public static let ptr: UInt16 = 12
    public static let aaaa: UInt16 = 28
    public static let dname: UInt16 = 39
    public static let opt: UInt16 = 41
    public static let rrsig: UInt16 = 46
}

public enum RCode {
    public static let noError: UInt8 = 0
    public static let formErr: UInt8 = 1
    public static let servFail: UInt8 = 2
    public static let nxDomain: UInt8 = 3
    public static let notImp: UInt8 = 4
    public static let refused: UInt8 = 5
    /// RFC 6891 §6.1.3: the upper 8 bits of BADVERS (16), which go in the
    /// OPT record; the header's RCODE is 0.
    public static let badVersExtended: UInt8 = 1
}

/// Resource data: the types synthesis needs are parsed (with their names
/// decompressed), the rest kept as the bytes that came.
public enum RData: Hashable, Sendable {
    case a(IPv4Address)
    case aaaa(IPv6Address)
    case name(DNSName)  // CNAME, DNAME, PTR, NS
    case soa(mname: DNSName, rname: DNSName, serial: UInt32, refresh: UInt32, retry: UInt32, expire: UInt32, minimum: UInt32)
    case opaque([UInt8])
}

public struct ResourceRecord: Hashable, Sendable {
    public var name: DNSName
    public var type: UInt16
    public var klass: UInt16
    public var ttl: UInt32
    public var data: RData

    public init(name: DNSName, type: UInt16, klass: UInt16 = 1, ttl: UInt32, data: RData) {
        self.name = name
        self.type = type
        self.klass = klass
        self.ttl = ttl
        self.data = data
    }
}

public struct Question: Hashable, Sendable {
    public var name: DNSName
    public var type: UInt16
    public var klass: UInt16

    public init(name: DNSName, type: UInt16, klass: UInt16 = 1) {
        self.name = name
        self.type = type
        self.klass = klass
    }
}

/// EDNS0 (RFC 6891), from the OPT pseudo-record.
public struct EDNS: Hashable, Sendable {
    public var udpSize: UInt16
    public var extendedRCode: UInt8 = 0
    public var version: UInt8 = 0
    public var dnssecOK: Bool
    /// The options' wire form (RFC 6891 §6.1.2); `Wire.decode` accepts
    /// only options whose lengths add up to it.
    public var options: [UInt8] = []

    public init(udpSize: UInt16, dnssecOK: Bool) {
        self.udpSize = udpSize
        self.dnssecOK = dnssecOK
    }

    /// Extended DNS Error (RFC 8914).
    public static let extendedErrorOption: UInt16 = 15

    /// RFC 6891 §6.1.2: each option is a code, a length and that many bytes,
    /// to the end of the RDATA. Calls `body` with each option's code and
    /// range in `bytes` (indexed from 0: an array, or a rebased slice of a
    /// datagram); false when the lengths do not add up.
    @discardableResult
    static func forEachOption<Bytes: RandomAccessCollection<UInt8>>(_ bytes: Bytes, _ body: (UInt16, Range<Int>) -> Void = { _, _ in }) -> Bool
    where Bytes.Index == Int {
        var at = 0
        while at < bytes.count {
            guard at + 4 <= bytes.count else { return false }
            let code = UInt16(bytes[at]) << 8 | UInt16(bytes[at + 1]), length = Int(bytes[at + 2]) << 8 | Int(bytes[at + 3])
            guard at + 4 + length <= bytes.count else { return false }
            body(code, at..<(at + 4 + length))
            at += 4 + length
        }
        return true
    }

    /// The Extended DNS Error options alone, in wire form: what a response
    /// passes on of the upstream's options (the others, such as cookies and
    /// padding, belong to the hop they came over).
    public var extendedErrors: [UInt8] {
        var out: [UInt8] = []
        Self.forEachOption(options) { code, range in
            if code == Self.extendedErrorOption { out += options[range] }
        }
        return out
    }

    /// The INFO-CODEs of the Extended DNS Errors (an option shorter than its
    /// two bytes has none).
    public var extendedErrorCodes: [UInt16] {
        var codes: [UInt16] = []
        Self.forEachOption(options) { code, range in
            if code == Self.extendedErrorOption, range.count >= 6 {
                codes.append(UInt16(options[range.lowerBound + 4]) << 8 | UInt16(options[range.lowerBound + 5]))
            }
        }
        return codes
    }
}

/// A DNS message (RFC 1035 §4), header flags as fields.
public struct Message: Hashable, Sendable {
    public var id: UInt16 = 0
    public var isResponse = false
    public var opcode: UInt8 = 0
    public var authoritative = false
    public var truncated = false
    public var recursionDesired = false
    public var recursionAvailable = false
    public var authenticData = false
    public var checkingDisabled = false
    public var rcode: UInt8 = 0
    public var questions: [Question] = []
    public var answers: [ResourceRecord] = []
    public var authority: [ResourceRecord] = []
    public var additional: [ResourceRecord] = []
    public var edns: EDNS?

    public init() {}

    public var question: Question? { questions.first }

    /// A SERVFAIL with an Extended DNS Error of RFC 8914's codes 1–12: the
    /// resolver refused the data for a DNSSEC reason (bogus, expired, missing
    /// signatures, unsupported algorithm…; 3 and 4, stale and forged, stand
    /// among them and a policy's refusal deserves the same). Such a SERVFAIL
    /// is a verdict on the data, not a failure to get it: it must reach the
    /// client and never be worked around by synthesis.
    public var failedValidation: Bool {
        rcode == RCode.servFail && (edns?.extendedErrorCodes ?? []).contains { (1...12).contains($0) }
    }
}

extension Message {
    /// An empty response to `query`, as this server makes them: its ID,
    /// opcode, RD and CD bits and question echoed, recursion available.
    public static func response(to query: Message, rcode: UInt8 = RCode.noError) -> Message {
        var m = Message()
        m.id = query.id
        m.isResponse = true
        m.opcode = query.opcode
        m.recursionDesired = query.recursionDesired
        m.recursionAvailable = true
        m.checkingDisabled = query.checkingDisabled
        m.rcode = rcode
        m.questions = query.questions
        return m
    }
}
