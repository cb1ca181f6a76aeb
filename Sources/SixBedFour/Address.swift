import Packet

/// An IPv4 address and UDP port: where a peer's datagrams come from after any
/// NAT (its observed endpoint), and what its 6bed4 address embeds.
public struct UDPEndpoint: Hashable, Sendable, CustomStringConvertible {
    public var address: IPv4Address
    public var port: UInt16

    public init(address: IPv4Address, port: UInt16) {
        self.address = address
        self.port = port
    }

    public var description: String { "\(address):\(port)" }

    /// The 6-byte "link-layer address" of ND options (spec §3.6): the port
    /// low byte first, then the IPv4 address in network order.
    public var linkLayer: [UInt8] {
        let a = address.rawValue
        return [UInt8(port & 0xFF), UInt8(port >> 8), UInt8(a >> 24), UInt8(a >> 16 & 0xFF), UInt8(a >> 8 & 0xFF), UInt8(a & 0xFF)]
    }
}

/// The 6bed4 address layout (spec §3.1): a /64 prefix, then the IPv4 address
/// with its two low bits of the first octet moved to the top of byte 14 (so
/// the interface ID's u/l and i/g bits stay clear), the port, and a 14-bit
/// "lanip" (1 for the peer itself, 0 for its /114 prefix).
public enum SixBedFourAddress {
    public static func encode(prefix: UInt64, endpoint e: UDPEndpoint, lanip: UInt16) -> IPv6Address {
        let a = UInt64(e.address.rawValue)
        let low = (a & 0xFCFF_FFFF) << 32 | UInt64(e.port) << 16 | (a >> 24 & 3) << 14 | UInt64(lanip & 0x3FFF)
        return IPv6Address(high: prefix, low: low)
    }

    /// The endpoint and lanip an address embeds, whatever its prefix.
    public static func decode(_ a: IPv6Address) -> (endpoint: UDPEndpoint, lanip: UInt16) {
        let v4 = UInt32(truncatingIfNeeded: a.low >> 32) & 0xFCFF_FFFF | UInt32(truncatingIfNeeded: a.low >> 14 & 3) << 24
        return (UDPEndpoint(address: IPv4Address(rawValue: v4), port: UInt16(truncatingIfNeeded: a.low >> 16)), UInt16(a.low & 0x3FFF))
    }

    /// `validate_originator` (spec §3.1): the address is link-local or under
    /// `prefix`, and embeds `endpoint`; the lanip is free.
    public static func validates(_ a: IPv6Address, from endpoint: UDPEndpoint, prefix: UInt64) -> Bool {
        (a.high == prefix || a.high == linkLocal) && decode(a).endpoint == endpoint
    }

    /// The top 64 bits of fe80::/64.
    public static let linkLocal: UInt64 = 0xFE80_0000_0000_0000
}
