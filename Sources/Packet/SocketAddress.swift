import Glibc

extension IPEndpoint {
    /// Writes the endpoint as a `sockaddr_in` or `sockaddr_in6` into `s`;
    /// returns its length, for bind, connect and sendto.
    public func write(into s: inout sockaddr_storage) -> socklen_t {
        withUnsafeMutablePointer(to: &s) { p in
            switch address {
            case .v4(let a):
                p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    $0.pointee.sin_family = sa_family_t(AF_INET)
                    $0.pointee.sin_port = port.bigEndian
                    $0.pointee.sin_addr.s_addr = a.rawValue.bigEndian
                }
                return socklen_t(MemoryLayout<sockaddr_in>.size)
            case .v6(let a):
                p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    $0.pointee.sin6_family = sa_family_t(AF_INET6)
                    $0.pointee.sin6_port = port.bigEndian
                    withUnsafeMutableBytes(of: &$0.pointee.sin6_addr) { b in
                        b.storeBytes(of: a.high.bigEndian, toByteOffset: 0, as: UInt64.self)
                        b.storeBytes(of: a.low.bigEndian, toByteOffset: 8, as: UInt64.self)
                    }
                }
                return socklen_t(MemoryLayout<sockaddr_in6>.size)
            }
        }
    }
}
