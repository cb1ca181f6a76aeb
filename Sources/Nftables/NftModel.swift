import Packet

/// sixgate's nftables table as a value: what the controller wants, and what a
/// netlink dump of the live table parses back into, so that the two compare with ==.
public struct NftTable: Sendable, Equatable {
    public static let family = "inet"
    public var name: String
    public var comment: String?
    /// NFT_TABLE_F_*; sixgate's table has none (a dormant table does nothing).
    public var flags: UInt32 = 0
    public var counters: [NftCounter] = []
    /// Objects other than counters, found in the kernel: never sixgate's.
    public var foreignObjects: [String] = []
    public var sets: [NftSet] = []
    public var chains: [NftChain] = []

    public init(name: String, comment: String? = nil) {
        self.name = name
        self.comment = comment
    }

    public func chain(_ name: String) -> NftChain? { chains.first { $0.name == name } }
}

/// A named counter object: operators read these with `nft list counters`.
public struct NftCounter: Sendable, Equatable {
    public var name: String
    public var comment: String?
    /// Read from the kernel; never part of the comparison.
    public var packets: UInt64 = 0
    public var bytes: UInt64 = 0

    public init(name: String, comment: String?) {
        self.name = name
        self.comment = comment
    }

    public static func == (a: Self, b: Self) -> Bool { a.name == b.name && a.comment == b.comment }
}

public enum NftKeyType: String, Sendable, Equatable, CaseIterable {
    case ipv4 = "ipv4_addr"
    case ipv6 = "ipv6_addr"

    /// nft's datatype numbers (TYPE_IPADDR, TYPE_IP6ADDR), stored in the set.
    var datatype: UInt32 { self == .ipv4 ? 7 : 8 }
    var length: Int { self == .ipv4 ? 4 : 16 }
}

/// An interval set of prefixes. Elements are kept merged and sorted, the form in
/// which the kernel hands them back, so equal sets compare equal.
public struct NftSet: Sendable, Equatable {
    public var name: String
    public var keyType: NftKeyType
    public var comment: String?
    public private(set) var elements: [IPPrefix]

    public init(name: String, keyType: NftKeyType, comment: String?, elements: [IPPrefix]) {
        self.name = name
        self.keyType = keyType
        self.comment = comment
        self.elements = IntervalMath.normalize(elements)
    }
}

public enum NftVerdict: String, Sendable, Equatable {
    case accept, drop

    var code: Int32 { self == .accept ? 1 : 0 }  // NF_ACCEPT, NF_DROP
}

public struct NftChain: Sendable, Equatable {
    public enum Kind: String, Sendable { case filter, nat }
    public enum Hook: String, Sendable, CaseIterable {
        case prerouting, input, forward, output, postrouting

        /// NF_INET_* hook numbers.
        var number: UInt32 { UInt32(Self.allCases.firstIndex(of: self)!) }
    }

    public var name: String
    public var kind: Kind
    /// nil only for chains found in the kernel that are not base chains.
    public var hook: Hook?
    public var priority: Int32
    public var policy: NftVerdict
    public var comment: String?
    public var rules: [NftRule] = []

    public init(name: String, kind: Kind, hook: Hook?, priority: Int32, policy: NftVerdict, comment: String? = nil) {
        self.name = name
        self.kind = kind
        self.hook = hook
        self.priority = priority
        self.policy = policy
        self.comment = comment
    }

    /// The chain without its rules, for comparing definitions.
    var header: NftChain {
        var c = self
        c.rules = []
        return c
    }
}

/// A rule: kernel bytecode plus its comment. `text` is the nft syntax it was
/// built from; rules parsed from the kernel have none, and are compared by
/// bytecode and comment only.
public struct NftRule: Sendable, Equatable {
    public var exprs: [NftExpr]
    public var comment: String?
    public var text: String?
    /// The kernel's handle, for live rules.
    public var handle: UInt64?

    public init(exprs: [NftExpr], comment: String?, text: String? = nil, handle: UInt64? = nil) {
        self.exprs = exprs
        self.comment = comment
        self.text = text
        self.handle = handle
    }

    public static func == (a: Self, b: Self) -> Bool { a.exprs == b.exprs && a.comment == b.comment }
}

/// The nf_tables expressions sixgate uses, at the level the kernel stores them.
/// Register numbers and byte layouts match what `nft` generates for the same
/// rule, so that a table loaded either way is identical.
public enum NftExpr: Sendable, Hashable {
    case meta(key: UInt32, dreg: UInt32)
    case payload(base: UInt32, offset: UInt32, length: UInt32, dreg: UInt32)
    case cmp(op: UInt32, sreg: UInt32, data: [UInt8])
    case bitwise(sreg: UInt32, dreg: UInt32, length: UInt32, mask: [UInt8], xor: [UInt8])
    case lookup(set: String, sreg: UInt32)
    case ct(key: UInt32, dreg: UInt32)
    case objref(type: UInt32, name: String)
    case verdict(Int32)
    case masq
    /// A socket's property (NFT_SOCKET_*) into a register.
    case socket(key: UInt32, dreg: UInt32)
    /// Data into a register.
    case immediate(dreg: UInt32, data: [UInt8])
    /// A register into packet metadata (NFT_META_*), such as the mark.
    case metaSet(key: UInt32, sreg: UInt32)
    /// IPv6 destination NAT to the address and port in these registers.
    case dnat6(addressRegister: UInt32, portRegister: UInt32)
    /// An expression sixgate never writes, seen in a dump: always drift.
    case foreign(String)
}
