import Packet

/// The 6bed4 router's /64, completed from a shorter configured prefix exactly as
/// the reference router's `expand_v6prefix` does (spec §4), so that our router and
/// reference peers agree on the addresses.
public enum SixBedFourPrefix {
    public static let defaultPort: UInt16 = 25790
    public static let defaultNetID: UInt16 = 0x0BED
    /// The reference's default when no prefix is given; it warns that this may change.
    public static let referenceDefault = IPv6Prefix(address: IPv6Address(high: 0xFC64_0000_0000_0000, low: 0), length: 16)

    public enum Invalid: Error, Equatable, Sendable, CustomStringConvertible {
        case uniqueLocalNeedsSlash64(IPv6Prefix)
        case length(Int)

        public var description: String {
            switch self {
            case .uniqueLocalNeedsSlash64(let p):
                "\(p) is a unique local (fd00::/8) prefix shorter than /64; give the full fdXX:…/64"
            case .length(let l):
                "/\(l) cannot be completed to a /64; use /16, /32, /48 or /64"
            }
        }
    }

    /// Completes `prefix` to the router's /64 (spec §4): /16 gets the netid and
    /// then the IPv4 address, /32 the IPv4 address, /48 the netid.
    public static func complete(_ prefix: IPv6Prefix, routerAddress: IPv4Address,
                                netID: UInt16 = defaultNetID) throws(Invalid) -> IPv6Prefix {
        var p = prefix.length == 0 ? referenceDefault : prefix
        if p.address.high >> 56 == 0xFD, (8..<64).contains(p.length) { throw .uniqueLocalNeedsSlash64(p) }
        var high = p.address.high
        switch p.length {
        case 16: high |= UInt64(netID) << 32 | UInt64(routerAddress.rawValue)
        case 32: high |= UInt64(routerAddress.rawValue)
        case 48: high |= UInt64(netID)
        case 64: break
        default: throw .length(p.length)
        }
        p = IPv6Prefix(address: IPv6Address(high: high, low: 0), length: 64)
        return p
    }
}
