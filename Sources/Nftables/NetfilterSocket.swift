import Netlink
import CNetlink
import Glibc

/// One nfnetlink socket, opened in a given network namespace.
public final class NetfilterSocket {
    private let nl: OpaquePointer
    public let portid: UInt32
    private var seq: UInt32

    public init(namespace: String?) throws {
        nl = try NetworkNamespace.run(in: namespace) { () throws(SystemError) -> OpaquePointer in
            guard let s = mnl_socket_open(NETLINK_NETFILTER) else { throw SystemError("open netfilter netlink socket") }
            return s
        }
        guard mnl_socket_bind(nl, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let e = SystemError("bind netfilter netlink socket")
            mnl_socket_close(nl)
            throw e
        }
        portid = mnl_socket_get_portid(nl)
        seq = UInt32(truncatingIfNeeded: time(nil))
    }

    deinit { mnl_socket_close(nl) }

    public func nextSeq() -> UInt32 {
        seq &+= 1
        return seq
    }

    /// Sends one request and hands each answer to `parse` until the dump ends.
    /// A missing object (ENOENT) ends it with no answers.
    public func dump(_ what: String, build: (UnsafeMutableRawPointer, UInt32) -> UnsafeMutablePointer<nlmsghdr>,
              parse: (UnsafePointer<nlmsghdr>) throws -> Void) throws {
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 8)
        defer { buf.deallocate() }
        let s = nextSeq()
        let nlh = build(buf.baseAddress!, s)
        guard mnl_socket_sendto(nl, nlh, Int(nlh.pointee.nlmsg_len)) >= 0 else { throw SystemError("send \(what) request") }
        while true {
            let n = mnl_socket_recvfrom(nl, buf.baseAddress, buf.count)
            guard n > 0 else { throw SystemError("receive \(what)") }
            var msg = buf.baseAddress!.assumingMemoryBound(to: nlmsghdr.self)
            var left = Int32(n)
            while mnl_nlmsg_ok(msg, left) {
                if msg.pointee.nlmsg_seq == s, msg.pointee.nlmsg_pid == portid {
                    switch Int32(msg.pointee.nlmsg_type) {
                    case NLMSG_DONE: return
                    case NLMSG_ERROR:
                        let err = mnl_nlmsg_get_payload(msg)!.assumingMemoryBound(to: nlmsgerr.self).pointee.error
                        if err == 0 || -err == ENOENT { return }
                        throw SystemError("\(what)", code: -err)
                    default:
                        try parse(msg)
                    }
                }
                msg = mnl_nlmsg_next(msg, &left)
            }
        }
    }

    /// Sends a whole batch in one sendmsg, so the kernel applies all of it or
    /// none, then collects the acknowledgement of every message.
    public func send(_ batch: NftBatch) throws {
        let bytes = batch.finish()
        defer { bytes.deallocate() }
        let fd = mnl_socket_get_fd(nl)
        // Large batches (thousands of set elements) exceed the default buffers,
        // and every message is acknowledged before we read: size both for the
        // batch, never below a generous floor (a smaller buffer drops acks).
        var send = Int32(clamping: max(bytes.count + 4096, 1 << 20))
        var receive = Int32(clamping: max(batch.acknowledged.count * 1024, 1 << 20))
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &send, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &receive, socklen_t(MemoryLayout<Int32>.size))
        mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
        // A refused batch is acknowledged in part only on some kernels: never
        // wait for ever on an acknowledgement that will not come.
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        defer {
            var none = timeval(tv_sec: 0, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, socklen_t(MemoryLayout<timeval>.size))
        }
        guard mnl_socket_sendto(nl, bytes.baseAddress, bytes.count) >= 0 else { throw SystemError("send nftables batch") }

        var pending = Set(batch.acknowledged.keys)
        var firstError: (UInt32, Int32)?
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 8)
        defer { buf.deallocate() }
        while !pending.isEmpty {
            let n = mnl_socket_recvfrom(nl, buf.baseAddress, buf.count)
            if n <= 0, firstError != nil, errno == EAGAIN { break }
            guard n > 0 else { throw SystemError("receive nftables acknowledgements") }
            var msg = buf.baseAddress!.assumingMemoryBound(to: nlmsghdr.self)
            var left = Int32(n)
            while mnl_nlmsg_ok(msg, left) {
                if Int32(msg.pointee.nlmsg_type) == NLMSG_ERROR {
                    let seq = msg.pointee.nlmsg_seq
                    let err = mnl_nlmsg_get_payload(msg)!.assumingMemoryBound(to: nlmsgerr.self).pointee.error
                    pending.remove(seq)
                    if err != 0, firstError == nil { firstError = (seq, -err) }
                }
                msg = mnl_nlmsg_next(msg, &left)
            }
        }
        // The batch used sequence numbers past ours; later requests must not reuse them.
        seq = max(seq, batch.lastSeq)
        if let (seq, code) = firstError {
            throw SystemError("nftables refused the change (\(batch.acknowledged[seq] ?? "batch")); nothing was applied", code: code)
        }
    }
}
