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
}

public enum RCode {
    public static let noError: UInt8 = 0
    public static let formErr: UInt8 = 1
    public static let servFail: UInt8 = 2
    public static let nxDomain: UInt8 = 3
    public static let notImp: UInt8 = 4
    public static let refused: UInt8 = 5
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
    /// Options, passed on as they came.
    public var options: [UInt8] = []

    public init(udpSize: UInt16, dnssecOK: Bool) {
        self.udpSize = udpSize
        self.dnssecOK = dnssecOK
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
