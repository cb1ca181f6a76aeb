import NIOCore
import Packet

extension IPAddress {
    /// The address of a socket address, without going through text.
    init?(_ s: SocketAddress) {
        switch s {
        case .v4(let a): self = .v4(IPv4Address(rawValue: UInt32(bigEndian: a.address.sin_addr.s_addr)))
        case .v6(let a): self = .v6(withUnsafeBytes(of: a.address.sin6_addr) { IPv6Address(networkBytes: $0) })
        case .unixDomainSocket: return nil
        }
    }
}
