/// Why a piece of address text was refused. The cases carry what an operator needs
/// to fix the text, e.g. the prefix they probably meant.
public enum AddressParseError: Error, Equatable, Sendable, CustomStringConvertible {
    case malformedAddress(String)
    case missingLength(String)
    case badLength(String, maximum: Int)
    case hostBitsSet(String, masked: String)
    case malformedPort(String)

    public var description: String {
        switch self {
        case .malformedAddress(let t): "\(t.quotedForMessage) is not a valid address"
        case .missingLength(let t): "\(t.quotedForMessage) has no prefix length (write it as address/length)"
        case .badLength(let t, let max): "\(t.quotedForMessage) has a prefix length outside 0...\(max)"
        case .hostBitsSet(let t, let masked): "\(t.quotedForMessage) has bits set beyond its length (did you mean \(masked)?)"
        case .malformedPort(let t): "\(t.quotedForMessage) has a port that is not a number in 1...65535"
        }
    }
}

extension String {
    /// In quotes, for a message: cut after 40 characters, so that a value
    /// pasted wrong (a whole file, say) never floods the terminal.
    public var quotedForMessage: String {
        count <= 48 ? "\"\(self)\"" : "\"\(prefix(40))…\" (\(count) characters)"
    }
}

public struct IPv4Prefix: Hashable, Sendable, CustomStringConvertible {
    /// The network address, host bits always zero.
    public let address: IPv4Address
    public let length: Int

    /// Masks `address` to `length`: use `parse` when host bits are an input error.
    public init(address: IPv4Address, length: Int) {
        precondition((0...32).contains(length), "IPv4 prefix length out of range")
        self.address = IPv4Address(rawValue: address.rawValue & Self.mask(length))
        self.length = length
    }

    public static func mask(_ length: Int) -> UInt32 {
        length == 0 ? 0 : UInt32.max << (32 - length)
    }

    public var mask: UInt32 { Self.mask(length) }
    public var first: IPv4Address { address }
    public var last: IPv4Address { IPv4Address(rawValue: address.rawValue | ~mask) }
    /// Number of addresses, as UInt64 because a /0 holds 2^32.
    public var size: UInt64 { 1 << UInt64(32 - length) }

    /// Parses "a.b.c.d/len"; a bare address is a /32. Host bits are an error.
    public static func parse(_ text: some StringProtocol) throws(AddressParseError) -> IPv4Prefix {
        let s = String(text)
        let (addrText, len) = try splitLength(s, maximum: 32, bareLength: 32)
        guard let addr = IPv4Address(addrText) else { throw .malformedAddress(s) }
        let prefix = IPv4Prefix(address: addr, length: len)
        guard prefix.address == addr else { throw .hostBitsSet(s, masked: prefix.description) }
        return prefix
    }

    public init?(_ text: some StringProtocol) {
        guard let p = try? Self.parse(text) else { return nil }
        self = p
    }

    /// The addresses as integers, for interval arithmetic shared with IPv6.
    public var range: ClosedRange<UInt128> { UInt128(first.rawValue)...UInt128(last.rawValue) }

    public func contains(_ a: IPv4Address) -> Bool { a.rawValue & mask == address.rawValue }
    public func contains(_ p: IPv4Prefix) -> Bool { p.length >= length && contains(p.address) }
    public func overlaps(_ p: IPv4Prefix) -> Bool { contains(p.address) || p.contains(address) }

    public var description: String { "\(address)/\(length)" }
}

public struct IPv6Prefix: Hashable, Sendable, CustomStringConvertible {
    public let address: IPv6Address
    public let length: Int

    public static let wellKnownNAT64 = IPv6Prefix(address: IPv6Address(high: 0x0064_ff9b_0000_0000, low: 0), length: 96)
    public static let ipv4Mapped = IPv6Prefix(address: IPv6Address(high: 0, low: 0x0000_ffff_0000_0000), length: 96)

    public init(address: IPv6Address, length: Int) {
        precondition((0...128).contains(length), "IPv6 prefix length out of range")
        let (mh, ml) = Self.mask(length)
        self.address = IPv6Address(high: address.high & mh, low: address.low & ml)
        self.length = length
    }

    public static func mask(_ length: Int) -> (UInt64, UInt64) {
        switch length {
        case 0: (0, 0)
        case 1...63: (UInt64.max << (64 - length), 0)
        case 64: (UInt64.max, 0)
        default: (UInt64.max, UInt64.max << (128 - length))
        }
    }

    /// Parses "addr/len"; a bare address is a /128. Host bits are an error.
    public static func parse(_ text: some StringProtocol) throws(AddressParseError) -> IPv6Prefix {
        let s = String(text)
        let (addrText, len) = try splitLength(s, maximum: 128, bareLength: 128)
        guard let addr = IPv6Address(addrText) else { throw .malformedAddress(s) }
        let prefix = IPv6Prefix(address: addr, length: len)
        guard prefix.address == addr else { throw .hostBitsSet(s, masked: prefix.description) }
        return prefix
    }

    public init?(_ text: some StringProtocol) {
        guard let p = try? Self.parse(text) else { return nil }
        self = p
    }

    /// The addresses as integers, for interval arithmetic.
    public var range: ClosedRange<UInt128> {
        let first = UInt128(address.high) << 64 | UInt128(address.low)
        return first...(length == 0 ? .max : first | ((UInt128(1) << (128 - length)) - 1))
    }

    public func contains(_ a: IPv6Address) -> Bool {
        let (mh, ml) = Self.mask(length)
        return a.high & mh == address.high && a.low & ml == address.low
    }

    public func contains(_ p: IPv6Prefix) -> Bool { p.length >= length && contains(p.address) }
    public func overlaps(_ p: IPv6Prefix) -> Bool { contains(p.address) || p.contains(address) }

    public var description: String { "\(address.formatted(mixed: false))/\(length)" }
}

/// Splits "addr/len". Without "/", the address stands for a single host.
private func splitLength(_ s: String, maximum: Int, bareLength: Int) throws(AddressParseError) -> (Substring, Int) {
    guard let slash = s.utf8.firstIndex(of: UInt8(ascii: "/")) else { return (Substring(s), bareLength) }
    var length = 0, digits = 0
    for b in s.utf8[s.utf8.index(after: slash)...] {
        guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9"), digits < 3 else { throw .badLength(s, maximum: maximum) }
        length = length * 10 + Int(b - UInt8(ascii: "0"))
        digits += 1
    }
    guard digits > 0, length <= maximum else { throw .badLength(s, maximum: maximum) }
    return (s[..<slash], length)
}
