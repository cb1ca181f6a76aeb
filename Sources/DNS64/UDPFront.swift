import CNetlink
import Foundation
import Glibc
import Packet
import Synchronization

/// The UDP side of the DNS64 server, beside NIO: per listen address and
/// thread, a socket of its own (SO_REUSEPORT spreads clients over them), read
/// with recvmmsg and answered with one sendmmsg per batch. Cache hits, the
/// bulk of a resolver's work, are answered on the reading thread from
/// buffers allocated once; everything else becomes a task (`resolveLater`)
/// that answers with its own sendto.
final class UDPFront: Sendable {
    let server: DNS64Server
    let fd: Int32
    /// Added once per batch by the one thread that reads this socket.
    let queries = Atomic<Int>(0)
    let hits = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    static let batch = 32
    static let looksBeforeSleep = 16
    /// Room per datagram: larger queries arrive cut short and get FORMERR
    /// (no resolver sends queries this large); answers are at most 4096.
    static let slot = 4096

    struct BindError: Error, CustomStringConvertible {
        let endpoint: IPEndpoint
        let code: Int32
        var description: String { "cannot bind UDP \(endpoint): \(String(cString: strerror(code)))" }
    }

    init(server: DNS64Server, endpoint: IPEndpoint) throws(BindError) {
        self.server = server
        let v6: Bool
        if case .v6 = endpoint.address { v6 = true } else { v6 = false }
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BindError(endpoint: endpoint, code: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
        var storage = sockaddr_storage()
        let length = endpoint.write(into: &storage)
        let rc = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw BindError(endpoint: endpoint, code: e)
        }
        self.fd = fd
    }

    struct SteeringError: Error, CustomStringConvertible {
        let code: Int32
        var description: String {
            "cannot steer UDP queries by CPU (SO_ATTACH_REUSEPORT_CBPF): \(String(cString: strerror(code))); set dns64.udp_steering = \"hash\""
        }
    }

    /// Makes the kernel hand each datagram of the group of `fronts` (one
    /// address, bound in this order) to the one numbered (CPU mod count).
    static func steerByCPU(_ fronts: ArraySlice<UDPFront>) throws(SteeringError) {
        guard let first = fronts.first, sixgate_reuseport_by_cpu(first.fd, UInt32(fronts.count)) == 0 else { throw SteeringError(code: errno) }
    }

    /// The client's address in a received socket address.
    static func client(_ p: UnsafeRawPointer) -> IPAddress? {
        switch Int32(p.load(as: sa_family_t.self)) {
        case AF_INET:
            return .v4(IPv4Address(rawValue: UInt32(bigEndian: p.load(as: sockaddr_in.self).sin_addr.s_addr)))
        case AF_INET6:
            let off = MemoryLayout<sockaddr_in6>.offset(of: \.sin6_addr)!
            return .v6(IPv6Address(networkBytes: UnsafeRawBufferPointer(start: p + off, count: 16)))
        default:
            return nil
        }
    }

    /// Whether `fd` is still open. The thread closes it on its way out, so
    /// that a restarted server's sockets are the only ones of the address;
    /// an answer still on its way (a miss) checks it under the lock, so it
    /// never goes out through a descriptor reused by something else.
    private let open = Mutex(true)

    deinit { closeSocket() }

    private func closeSocket() {
        open.withLock { isOpen in
            if isOpen { close(fd) }
            isOpen = false
        }
    }

    /// Sends a miss's answer, unless the socket is closed by now.
    func send(_ answer: [UInt8], to: sockaddr_storage, length: socklen_t) {
        var to = to
        open.withLock { isOpen in
            guard isOpen else { return }
            _ = answer.withUnsafeBytes { a in
                withUnsafePointer(to: &to) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, a.baseAddress, a.count, Int32(MSG_DONTWAIT), $0, length) }
                }
            }
        }
    }

    /// Ends the thread, which closes the socket.
    func stop() {
        stopping.store(true, ordering: .relaxed)
        // Wakes a recvmmsg waiting on the socket.
        shutdown(fd, Int32(SHUT_RDWR))
    }

    func start() {
        let thread = Thread { self.serve() }
        thread.name = "sixgate-dns64-udp"
        thread.start()
    }

    private func serve() {
        let n = Self.batch, slot = Self.slot
        let rx = UnsafeMutableRawPointer.allocate(byteCount: n * slot, alignment: 16)
        let tx = UnsafeMutableRawPointer.allocate(byteCount: n * slot, alignment: 16)
        let names = UnsafeMutablePointer<sockaddr_storage>.allocate(capacity: 2 * n)
        let vectors = UnsafeMutablePointer<iovec>.allocate(capacity: 2 * n)
        let rxh = UnsafeMutablePointer<sixgate_mmsghdr>.allocate(capacity: n)
        let txh = UnsafeMutablePointer<sixgate_mmsghdr>.allocate(capacity: n)
        for i in 0..<n {
            vectors[i] = iovec(iov_base: rx + i * slot, iov_len: slot)
            vectors[n + i] = iovec(iov_base: tx + i * slot, iov_len: 0)
            for (h, k) in [(rxh, i), (txh, n + i)] {
                h[i] = sixgate_mmsghdr()
                h[i].msg_hdr.msg_name = UnsafeMutableRawPointer(names + k)
                h[i].msg_hdr.msg_iov = vectors + k
                h[i].msg_hdr.msg_iovlen = 1
            }
        }
        defer {
            closeSocket()
            for p in [rx, tx, UnsafeMutableRawPointer(names), UnsafeMutableRawPointer(vectors), UnsafeMutableRawPointer(rxh),
                      UnsafeMutableRawPointer(txh)] { p.deallocate() }
        }
        let server = server
        while !stopping.load(ordering: .relaxed) {
            for i in 0..<n { rxh[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size) }
            // Under load the next query is microseconds away: a few more
            // looks before sleeping spare the clients' side of the kernel
            // the wake-up of this thread (a tenth more answers per second
            // with one thread). At low load they cost microseconds per query.
            var got = sixgate_recvmmsg_nowait(fd, rxh, UInt32(n))
            var looks = 0
            while got < 0, errno == EAGAIN, looks < Self.looksBeforeSleep {
                looks += 1
                got = sixgate_recvmmsg_nowait(fd, rxh, UInt32(n))
            }
            if got < 0, errno == EAGAIN { got = sixgate_recvmmsg_waitforone(fd, rxh, UInt32(n)) }
            // A shut socket reads as one empty datagram.
            guard got > 0, !stopping.load(ordering: .relaxed) else {
                if errno == EINTR || errno == EAGAIN { continue }
                return
            }
            var out = 0
            for i in 0..<Int(got) {
                let name = UnsafeRawPointer(names + i)
                guard let client = Self.client(name) else { continue }
                let query = UnsafeRawBufferPointer(start: rx + i * slot, count: min(Int(rxh[i].msg_len), slot))
                if let length = server.answerFromCache(query, from: client, into: UnsafeMutableRawBufferPointer(start: tx + out * slot, count: slot)) {
                    vectors[n + out].iov_len = length
                    (names + n + out).update(from: names + i, count: 1)
                    txh[out].msg_hdr.msg_namelen = rxh[i].msg_hdr.msg_namelen
                    out += 1
                } else {
                    let to = names[i], toLength = rxh[i].msg_hdr.msg_namelen, front = self
                    server.resolveLater(Array(query), from: client) { front.send($0, to: to, length: toLength) }
                }
            }
            var sent = 0
            while sent < out {
                let r = sixgate_sendmmsg(fd, txh + sent, UInt32(out - sent), Int32(MSG_DONTWAIT))
                if r > 0 { sent += Int(r) } else if errno == EINTR { continue } else { sent += 1 }
            }
            queries.wrappingAdd(Int(got), ordering: .relaxed)
            hits.wrappingAdd(out, ordering: .relaxed)
        }
    }
}
