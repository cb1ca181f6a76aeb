import Packet

public enum DNS64Defaults {
    public static let port: UInt16 = 53
    /// RFC 6147 §5.1.4: AAAA records in ::ffff:0:0/96 (IPv4-mapped) are not usable
    /// by an IPv6-only client and are treated as if absent.
    public static let exclusions: [IPv6Prefix] = [.ipv4Mapped]
    /// 30 minutes: as long as the PREF64 lifetime's default, so that a
    /// renumbering waits for both alike.
    public static let maxTTL: UInt32 = 1800
    /// RFC 8880: the name whose A records let clients discover the NAT64 prefix.
    public static let ipv4onlyAddresses: [IPv4Address] = [IPv4Address(192, 0, 0, 170), IPv4Address(192, 0, 0, 171)]
}
