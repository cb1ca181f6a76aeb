import Packet

/// How the translator treats an IPv4 UDP datagram whose checksum is zero (RFC 7915
/// §4.5): IPv6 forbids a zero UDP checksum, so one must be computed or the packet
/// dropped. Computing needs the whole datagram, so fragments are dropped either way.
public enum ZeroChecksumPolicy: String, CaseIterable, Sendable {
    case drop
    case compute
}

/// Which implementation carries translated traffic. `auto` picks the kernel path
/// where the running kernel offers one and the TUN translator otherwise.
public enum Datapath: String, CaseIterable, Sendable {
    case auto
    case kernel
    case tun
}

public enum TranslatorDefaults {
    /// RFC 7915 §4 and §5: no IPv6 link is smaller, so it is the safe assumption.
    public static let lowestIPv6MTU = 1280
    /// RFC 7600 §3's dummy address: the source of ICMP errors when nothing better
    /// is configured (no RFC 6791 pool, no own IPv4 address).
    public static let dummyIPv4 = IPv4Address(192, 0, 0, 8)
}
