import Common
import CNetlink
import Tun
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
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let e = SocketError("bind \(endpoint.map(\.description) ?? "0.0.0.0:0")")
            Glibc.close(fd)
            throw e
        }
        return UDPSocket(fd: fd)
    }

    static func handoverKey(_ endpoint: UDPEndpoint) -> String { "udp:\(endpoint)" }

    /// The socket on `endpoint` the previous program handed over (`Handover`),
    /// with the datagrams that arrived meanwhile still queued in it.
    public static func adopt(_ endpoint: UDPEndpoint) -> UDPSocket? {
        Handover.take(handoverKey(endpoint)) { UDPSocket(fd: $0).local == endpoint }.map(UDPSocket.init(fd:))
    }

    /// Closes the socket, or keeps it open for the program a reload executes.
    public func release() { Handover.release(Self.handoverKey(local), fd) }

    /// The address and port the socket is bound to.
    public var local: UDPEndpoint {
        var sa = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return UDPEndpoint(sa)
    }

    /// Reads one datagram into `p`, without waiting: its full length (larger
    /// than `capacity` when it was cut, so that the caller can refuse it) and
    /// its sender; nil when none is queued.
    public func receive(into p: UnsafeMutableRawPointer, capacity: Int) -> (length: Int, from: UDPEndpoint)? {
        var sa = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let n = withUnsafeMutablePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, p, capacity, Int32(MSG_TRUNC | MSG_DONTWAIT), $0, &len) }
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

/// Datagrams gathered and sent with one sendmmsg(2): the datapaths add what
/// one drain of their queues produces and flush once. Buffers are allocated
/// once; adding copies the datagram (cheaper than a system call).
public final class SendBatch {
    public let socket: UDPSocket
    public let capacity: Int
    static let slot = 2048
    private let data: UnsafeMutableRawPointer
    private let headers: UnsafeMutablePointer<sixgate_mmsghdr>
    private let vectors: UnsafeMutablePointer<iovec>
    private let addresses: UnsafeMutablePointer<sockaddr_in>
    private var count = 0

    public init(socket: UDPSocket, capacity: Int = 64) {
        self.socket = socket
        self.capacity = capacity
        data = .allocate(byteCount: capacity * Self.slot, alignment: 16)
        headers = .allocate(capacity: capacity)
        vectors = .allocate(capacity: capacity)
        addresses = .allocate(capacity: capacity)
        for i in 0..<capacity {
            vectors[i] = iovec(iov_base: data + i * Self.slot, iov_len: 0)
            headers[i] = sixgate_mmsghdr()
            headers[i].msg_hdr.msg_name = UnsafeMutableRawPointer(addresses + i)
            headers[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_in>.size)
            headers[i].msg_hdr.msg_iov = vectors + i
            headers[i].msg_hdr.msg_iovlen = 1
        }
    }

    deinit {
        data.deallocate()
        headers.deallocate()
        vectors.deallocate()
        addresses.deallocate()
    }

    public func add(_ p: UnsafeRawPointer, length: Int, to endpoint: UDPEndpoint) {
        guard length <= Self.slot else { return }
        if count == capacity { flush() }
        (data + count * Self.slot).copyMemory(from: p, byteCount: length)
        vectors[count].iov_len = length
        addresses[count] = sockaddr_in(endpoint)
        count += 1
    }

    /// Sends what was added. A datagram the socket cannot take now is
    /// dropped, as a full interface queue would drop it.
    public func flush() {
        var sent = 0
        while sent < count {
            let n = sixgate_sendmmsg(socket.fd, headers + sent, UInt32(count - sent), Int32(MSG_DONTWAIT))
            if n > 0 { sent += Int(n) } else if errno == EINTR { continue } else { sent += 1 }
        }
        count = 0
    }
}
