/// Either family, for places that take both: access lists, listen and upstream
/// addresses.
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    case v4(IPv4Address)
    case v6(IPv6Address)

    public init?(_ text: some StringProtocol) {
        if let a = IPv4Address(text) { self = .v4(a) } else if let a = IPv6Address(text) { self = .v6(a) } else { return nil }
    }

    public var isV4: Bool { if case .v4 = self { true } else { false } }

    public var description: String {
        switch self {
        case .v4(let a): a.description
        case .v6(let a): a.description
        }
    }
}

public enum IPPrefix: Hashable, Sendable, CustomStringConvertible {
    case v4(IPv4Prefix)
    case v6(IPv6Prefix)

    /// The prefix of `a` alone: a /32 or a /128.
    public init(host a: IPAddress) {
        switch a {
        case .v4(let v4): self = .v4(IPv4Prefix(address: v4, length: 32))
        case .v6(let v6): self = .v6(IPv6Prefix(address: v6, length: 128))
        }
    }

    public static func parse(_ text: some StringProtocol) throws(AddressParseError) -> IPPrefix {
        if text.contains(":") { return .v6(try IPv6Prefix.parse(text)) }
        return .v4(try IPv4Prefix.parse(text))
    }

    public func contains(_ a: IPAddress) -> Bool {
        switch (self, a) {
        case (.v4(let p), .v4(let a)): p.contains(a)
        case (.v6(let p), .v6(let a)): p.contains(a)
        default: false
        }
    }

    public var range: ClosedRange<UInt128> {
        switch self {
        case .v4(let p): p.range
        case .v6(let p): p.range
        }
    }

    public func overlaps(_ other: IPPrefix) -> Bool {
        switch (self, other) {
        case (.v4(let p), .v4(let q)): p.overlaps(q)
        case (.v6(let p), .v6(let q)): p.overlaps(q)
        default: false
        }
    }

    public var description: String {
        switch self {
        case .v4(let p): p.description
        case .v6(let p): p.description
        }
    }
}

/// An address and UDP/TCP port, written "192.0.2.1:53", "[2001:db8::1]:53", or
/// without the port, which then takes the caller's default.
public struct IPEndpoint: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    public static func parse(_ text: some StringProtocol, defaultPort: UInt16) throws(AddressParseError) -> IPEndpoint {
        let s = String(text)
        var host = Substring(s)
        var portText: Substring?
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { throw .malformedAddress(s) }
            let rest = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { throw .malformedAddress(s) }
                portText = rest.dropFirst()
            }
            guard IPv6Address(host) != nil else { throw .malformedAddress(s) }
        } else if host.filter({ $0 == ":" }).count == 1 {
            let parts = host.split(separator: ":", omittingEmptySubsequences: false)
            host = parts[0]
            portText = parts[1]
        }
        guard let address = IPAddress(host) else { throw .malformedAddress(s) }
        var port = defaultPort
        if let portText {
            guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy(\.isASCIIDigit),
                  let p = UInt16(portText), p != 0 else { throw .malformedPort(s) }
            port = p
        }
        return IPEndpoint(address: address, port: port)
    }

    public var description: String {
        switch address {
        case .v4(let a): "\(a):\(port)"
        case .v6(let a): "[\(a)]:\(port)"
        }
    }
}

/// Addresses and prefixes travel in JSON (plan, audit) as their canonical text.
extension IPAddress: Codable {
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let text = try c.decode(String.self)
        guard let a = IPAddress(text) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "\"\(text)\" is not an IP address")
        }
        self = a
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

extension IPPrefix: Codable {
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        do {
            self = try IPPrefix.parse(try c.decode(String.self))
        } catch let e as AddressParseError {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: e.description)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
