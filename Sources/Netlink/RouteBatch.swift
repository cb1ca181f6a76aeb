import CNetlink
import Glibc
import Packet

/// Adds or deletes many routes with few system calls: the messages are packed
/// into 32 KiB datagrams, and each datagram's acknowledgements are read before
/// the next is sent. Ten thousand mapping routes take tens of milliseconds
/// instead of one round trip each. rtnetlink has no transactions: a refused
/// route does not stop the others, and the first refusal is reported.
public enum RouteBatch {
    public enum Operation: Sendable { case add, delete }

    public static func run(_ op: Operation, _ routes: [OwnedRoute], protocol proto: UInt8, links: [LinkInfo], namespace: String?) throws {
        guard !routes.isEmpty else { return }
        let index = Dictionary(links.map { ($0.name, $0.index) }, uniquingKeysWith: { a, _ in a })
        let nl = try NetworkNamespace.run(in: namespace) { () throws(SystemError) -> OpaquePointer in
            guard let s = mnl_socket_open(NETLINK_ROUTE) else { throw SystemError("open rtnetlink socket") }
            return s
        }
        defer { mnl_socket_close(nl) }
        guard mnl_socket_bind(nl, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else { throw SystemError("bind rtnetlink socket") }
        // Every message of a datagram is acknowledged before we read: the socket
        // must hold them all, or the kernel drops them (ENOBUFS). Acks without
        // the echoed request (NETLINK_CAP_ACK) keep them small.
        var one: Int32 = 1, size: Int32 = 8 << 20
        mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size))
        let portid = mnl_socket_get_portid(nl)
        let verb = op == .add ? "add" : "delete"

        let chunk = 1 << 15
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk + 512, alignment: 8)
        defer { buf.deallocate() }
        var seq = UInt32(truncatingIfNeeded: time(nil)) &* 1000
        var bySeq: [UInt32: OwnedRoute] = [:]
        var firstError: (OwnedRoute, Int32)?
        var i = 0
        while i < routes.count {
            var used = 0
            var pending = Set<UInt32>()
            while i < routes.count, used < chunk - 256 {
                let r = routes[i]
                guard let oif = index[r.device] else {
                    // A route whose link is gone went with it.
                    if op == .delete { i += 1; continue }
                    throw SystemError("\(verb) route \(r) proto \(proto): no device \(r.device)", code: ENODEV)
                }
                seq &+= 1
                let nlh = mnl_nlmsg_put_header(buf.baseAddress! + used)!
                nlh.pointee.nlmsg_type = UInt16(op == .add ? RTM_NEWROUTE : RTM_DELROUTE)
                nlh.pointee.nlmsg_flags = UInt16(NLM_F_REQUEST | NLM_F_ACK | (op == .add ? NLM_F_CREATE | NLM_F_EXCL : 0))
                nlh.pointee.nlmsg_seq = seq
                let rtm = mnl_nlmsg_put_extra_header(nlh, MemoryLayout<rtmsg>.size)!.assumingMemoryBound(to: rtmsg.self)
                let (family, bytes, length) = r.destination.netlinkParts
                rtm.pointee.rtm_family = UInt8(family)
                rtm.pointee.rtm_dst_len = UInt8(length)
                rtm.pointee.rtm_table = UInt8(RT_TABLE_MAIN.rawValue)
                rtm.pointee.rtm_protocol = proto
                // A delete matches any scope and type, as `ip route del` does: a
                // route of ours added by hand with a gateway is still found.
                rtm.pointee.rtm_scope = UInt8(op == .add ? RT_SCOPE_LINK.rawValue : RT_SCOPE_NOWHERE.rawValue)
                rtm.pointee.rtm_type = UInt8(op == .add ? RTN_UNICAST : RTN_UNSPEC)
                bytes.withUnsafeBytes { mnl_attr_put(nlh, UInt16(RTA_DST.rawValue), $0.count, $0.baseAddress) }
                mnl_attr_put_u32(nlh, UInt16(RTA_OIF.rawValue), UInt32(oif))
                mnl_attr_put_u32(nlh, UInt16(RTA_PRIORITY.rawValue), r.metric)
                mnl_attr_put_u32(nlh, UInt16(RTA_TABLE.rawValue), UInt32(RT_TABLE_MAIN.rawValue))
                used += (Int(nlh.pointee.nlmsg_len) + 3) & ~3
                bySeq[seq] = r
                pending.insert(seq)
                i += 1
            }
            if used == 0 { continue }
            guard mnl_socket_sendto(nl, buf.baseAddress, used) >= 0 else { throw SystemError("send \(pending.count) route messages") }
            while !pending.isEmpty {
                let n = mnl_socket_recvfrom(nl, buf.baseAddress, buf.count)
                guard n > 0 else { throw SystemError("receive route acknowledgements") }
                var msg = buf.baseAddress!.assumingMemoryBound(to: nlmsghdr.self)
                var left = Int32(n)
                while mnl_nlmsg_ok(msg, left) {
                    if Int32(msg.pointee.nlmsg_type) == NLMSG_ERROR, msg.pointee.nlmsg_pid == portid,
                       pending.remove(msg.pointee.nlmsg_seq) != nil {
                        let err = mnl_nlmsg_get_payload(msg)!.assumingMemoryBound(to: nlmsgerr.self).pointee.error
                        // A route already gone is what a delete wants.
                        let gone = op == .delete && (-err == ESRCH || -err == ENOENT)
                        if err != 0, !gone, firstError == nil, let r = bySeq[msg.pointee.nlmsg_seq] { firstError = (r, -err) }
                    }
                    msg = mnl_nlmsg_next(msg, &left)
                }
            }
        }
        if let (r, code) = firstError { throw SystemError("\(verb) route \(r) proto \(proto)", code: code) }
    }
}
