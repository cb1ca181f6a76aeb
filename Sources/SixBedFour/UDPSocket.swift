import Glibc
import Packet

public struct SocketError: Error, Sendable, CustomStringConvertible {
    public let operation: String
    public let code: Int32

    public init(_ operation: String) {
        self.operation = operation
        code = errno
    }

    public var description: String { "\(operation): \(String(cString: strerror(code)))" }
}

/// The UDP/IPv4 socket 6bed4 frames travel on. Datagrams go out with DF
/// clear (spec §2 recommendation): a 1308-byte frame must cross IPv4 paths
/// of any MTU, fragmented if need be.
public struct UDPSocket: Sendable {
    public let fd: Int32

    /// Binds `endpoint`; nil binds any address and a port the kernel picks.
    public static func bind(_ endpoint: UDPEndpoint?) throws(SocketError) -> UDPSocket {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError("socket") }
        var one: Int32 = 1
        var dont = IP_PMTUDISC_DONT
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, Int32(IPPROTO_IP), IP_MTU_DISCOVER, &dont, socklen_t(MemoryLayout<Int32>.size))
        var sa = sockaddr_in(endpoint ?? UDPEndpoint(address: IPv4Address(rawValue: 0), port: 0))
        let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else {
            let e = SocketError("bind \(endpoint.map(\.description) ?? "0.0.0.0:0")")
            Glibc.close(fd)
            throw e
        }
        return UDPSocket(fd: fd)
    }

    /// The address and port the socket is bound to.
    public var local: UDPEndpoint {
        var sa = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return UDPEndpoint(sa)
    }

    /// Reads one datagram into `p`: its full length (larger than `capacity`
    /// when it was cut, so that the caller can refuse it) and its sender.
    public func receive(into p: UnsafeMutableRawPointer, capacity: Int) -> (length: Int, from: UDPEndpoint)? {
        var sa = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let n = withUnsafeMutablePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, p, capacity, Int32(MSG_TRUNC), $0, &len) }
        }
        guard n >= 0 else { return nil }
        return (n, UDPEndpoint(sa))
    }

    @discardableResult
    public func send(_ p: UnsafeRawPointer, length: Int, to endpoint: UDPEndpoint) -> Bool {
        var sa = sockaddr_in(endpoint)
        return withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, p, length, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == length
    }

    /// A keepalive (spec §5.4): an empty datagram with a TTL just high
    /// enough to refresh the NAT mappings near the sender.
    public func sendKeepalive(to endpoint: UDPEndpoint, ttl: Int) {
        func setTTL(_ ttl: Int32) {
            var v = ttl
            setsockopt(fd, Int32(IPPROTO_IP), IP_TTL, &v, socklen_t(MemoryLayout<Int32>.size))
        }
        setTTL(Int32(ttl))
        var empty: UInt8 = 0
        send(&empty, length: 0, to: endpoint)
        setTTL(-1)  // back to the system default
    }

    public func close() { _ = Glibc.close(fd) }
}

extension sockaddr_in {
    init(_ e: UDPEndpoint) {
        self.init()
        sin_family = sa_family_t(AF_INET)
        sin_port = e.port.bigEndian
        sin_addr.s_addr = e.address.rawValue.bigEndian
    }
}

extension UDPEndpoint {
    init(_ sa: sockaddr_in) {
        self.init(address: IPv4Address(rawValue: UInt32(bigEndian: sa.sin_addr.s_addr)), port: UInt16(bigEndian: sa.sin_port))
    }
}
