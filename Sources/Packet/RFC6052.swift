/// A prefix that IPv4 addresses can be embedded in, per RFC 6052 §2.2.
/// Only a validated value can exist, so the translator, DNS64 and the 6bed4 router
/// never have to re-check the length or the u-octet.
public struct NAT64Prefix: Hashable, Sendable, CustomStringConvertible {
    public static let allowedLengths: Set<Int> = [32, 40, 48, 56, 64, 96]
    public static let wellKnown = NAT64Prefix(unchecked: .wellKnownNAT64)

    public let prefix: IPv6Prefix

    public enum Invalid: Error, Equatable, Sendable, CustomStringConvertible {
        case length(Int)
        case nonZeroUOctet(IPv6Prefix)

        public var description: String {
            switch self {
            case .length(let l): "length /\(l) is not one of RFC 6052's 32, 40, 48, 56, 64 or 96"
            case .nonZeroUOctet(let p): "\(p) sets bits 64-71 (the u-octet), which RFC 6052 §2.2 requires to be zero"
            }
        }
    }

    public init(_ prefix: IPv6Prefix) throws(Invalid) {
        guard Self.allowedLengths.contains(prefix.length) else { throw .length(prefix.length) }
        // Only a /96 reaches past bit 63; shorter prefixes have the u-octet masked off.
        guard prefix.address.low >> 56 == 0 else { throw .nonZeroUOctet(prefix) }
        self.prefix = prefix
    }

    private init(unchecked prefix: IPv6Prefix) { self.prefix = prefix }

    public var length: Int { prefix.length }
    public var isWellKnown: Bool { prefix == .wellKnownNAT64 }
    public var description: String { prefix.description }

    /// RFC 6052 §2.2: the IPv4 bits fill the suffix from the prefix end, skipping the
    /// u-octet (bits 64-71); the bits after them stay zero.
    @inlinable
    public func embed(_ v4: IPv4Address) -> IPv6Address {
        let a = UInt64(v4.rawValue)
        let p = prefix.address
        switch prefix.length {
        case 96: return IPv6Address(high: p.high, low: p.low | a)
        case 64: return IPv6Address(high: p.high, low: a << 24)
        default:
            let k = UInt64(64 - prefix.length)  // IPv4 bits that fit before the u-octet
            return IPv6Address(high: p.high | a >> (32 - k), low: (a & ((1 << (32 - k)) - 1)) << (24 + k))
        }
    }

    /// The inverse of `embed`, or nil when the address is not under this prefix.
    /// The suffix and u-octet are not checked: RFC 6052 §2.2 tells the receiver to
    /// ignore the suffix, and the u-octet is reserved.
    @inlinable
    public func extract(_ v6: IPv6Address) -> IPv4Address? {
        guard prefix.contains(v6) else { return nil }
        return IPv4Address(rawValue: extractUnchecked(v6))
    }

    @inlinable
    func extractUnchecked(_ v6: IPv6Address) -> UInt32 {
        switch prefix.length {
        case 96: return UInt32(truncatingIfNeeded: v6.low)
        case 64: return UInt32(truncatingIfNeeded: v6.low >> 24)
        default:
            let k = UInt64(64 - prefix.length)
            let top = v6.high & ((1 << k) - 1)
            let rest = (v6.low >> (24 + k)) & ((1 << (32 - k)) - 1)
            return UInt32(truncatingIfNeeded: top << (32 - k) | rest)
        }
    }

    /// RFC 6052 §3.1: the well-known prefix must not represent non-global IPv4
    /// addresses; a network-specific prefix may represent any. This is the one
    /// place that decides it: config validation, the translator (per packet) and
    /// DNS64 synthesis all call it.
    @inlinable
    public func canRepresent(_ v4: IPv4Address) -> Bool {
        !isWellKnown || v4.isGlobal
    }

    /// The same rule for a whole range, as configured in a mapping.
    public func canRepresent(_ range: IPv4Prefix) -> Bool {
        !isWellKnown || !IPv4Address.nonGlobalBlocks.contains { $0.overlaps(range) }
    }
}

extension IPv4Address {
    /// The blocks RFC 6052 §3.1 forbids behind the well-known prefix: the
    /// non-global entries of RFC 5735 §3 it cites, plus the shared address space
    /// 100.64.0.0/10 (RFC 6598), which came later and is just as private.
    public static let nonGlobalBlocks: [IPv4Prefix] = [
        (0x0000_0000, 8),   // 0.0.0.0/8 "this network"
        (0x0A00_0000, 8),   // 10.0.0.0/8 RFC 1918
        (0x6440_0000, 10),  // 100.64.0.0/10 RFC 6598
        (0x7F00_0000, 8),   // 127.0.0.0/8 loopback
        (0xA9FE_0000, 16),  // 169.254.0.0/16 link local
        (0xAC10_0000, 12),  // 172.16.0.0/12 RFC 1918
        (0xC000_0000, 24),  // 192.0.0.0/24 IETF protocol assignments
        (0xC000_0200, 24),  // 192.0.2.0/24 TEST-NET-1
        (0xC058_6300, 24),  // 192.88.99.0/24 6to4 relay anycast
        (0xC0A8_0000, 16),  // 192.168.0.0/16 RFC 1918
        (0xC612_0000, 15),  // 198.18.0.0/15 benchmarking
        (0xC633_6400, 24),  // 198.51.100.0/24 TEST-NET-2
        (0xCB00_7100, 24),  // 203.0.113.0/24 TEST-NET-3
        (0xE000_0000, 4),   // 224.0.0.0/4 multicast
        (0xF000_0000, 4),   // 240.0.0.0/4 reserved, and 255.255.255.255
    ].map { IPv4Prefix(address: IPv4Address(rawValue: $0.0), length: $0.1) }

    @inlinable
    public var isGlobal: Bool {
        // A linear scan of 15 masks beats any tree at this size, and allocates nothing.
        for block in Self.nonGlobalBlocks where block.contains(self) { return false }
        return true
    }
}
