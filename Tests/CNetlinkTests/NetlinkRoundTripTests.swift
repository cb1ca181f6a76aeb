import CNetlink
import Glibc
import Testing

/// Proves that the four C libraries link and talk to the kernel. Each test only
/// reads (dumps) state of the namespace it runs in; nothing is changed.
@Suite struct NetlinkRoundTripTests {
    @Test func libmnlDumpsLinks() throws {
        let names = try RawDump.linkNames()
        #expect(names.contains("lo"), "every namespace has a loopback link; got \(names)")
    }

    @Test func libnlRouteFindsLoopback() throws {
        let sock = try #require(nl_socket_alloc())
        defer { nl_socket_free(sock) }
        #expect(nl_connect(sock, NETLINK_ROUTE) == 0)
        var link: OpaquePointer?
        let err = rtnl_link_get_kernel(sock, 0, "lo", &link)
        try #require(err == 0, "rtnl_link_get_kernel: \(String(cString: nl_geterror(err)))")
        defer { rtnl_link_put(link) }
        #expect(rtnl_link_get_ifindex(link) > 0)
        #expect(String(cString: rtnl_link_get_name(link)) == "lo")
    }

    /// A GETTABLE dump through nfnetlink, parsed by libnftnl. Tables may or may not
    /// exist; what matters is that the kernel answers and libnftnl parses each one.
    @Test func libnftnlDumpsTables() throws {
        let (messages, parsed) = try RawDump.nftTables()
        #expect(messages == parsed)
    }
}

struct DumpFailed: Error, CustomStringConvertible {
    let step: String
    let code: Int32
    var description: String { "\(step): \(String(cString: strerror(code)))" }
}

/// The raw libmnl plumbing, kept out of the test bodies.
enum RawDump {
    final class Collected {
        var names: [String] = []
        var messages = 0
        var parsed = 0
    }

    static func linkNames() throws -> [String] {
        let box = Collected()
        try dump(bus: NETLINK_ROUTE, box: box, build: { raw, seq in
            let nlh = mnl_nlmsg_put_header(raw)!
            nlh.pointee.nlmsg_type = UInt16(RTM_GETLINK)
            nlh.pointee.nlmsg_flags = UInt16(NLM_F_REQUEST | NLM_F_DUMP)
            nlh.pointee.nlmsg_seq = seq
            let ifm = mnl_nlmsg_put_extra_header(nlh, MemoryLayout<ifinfomsg>.size)!.assumingMemoryBound(to: ifinfomsg.self)
            ifm.pointee.ifi_family = UInt8(AF_UNSPEC)
            return nlh
        }, callback: { nlh, data in
            guard let nlh, let data else { return MNL_CB_ERROR }
            let box = Unmanaged<Collected>.fromOpaque(data).takeUnretainedValue()
            let offset = MemoryLayout<ifinfomsg>.size
            var attr = mnl_nlmsg_get_payload_offset(nlh, offset)!.assumingMemoryBound(to: nlattr.self)
            var remaining = Int32(mnl_nlmsg_get_payload_len(nlh)) - Int32((offset + 3) & ~3)
            while mnl_attr_ok(attr, remaining) {
                if mnl_attr_get_type(attr) == IFLA_IFNAME { box.names.append(String(cString: mnl_attr_get_str(attr))) }
                remaining -= Int32((Int(attr.pointee.nla_len) + 3) & ~3)
                attr = mnl_attr_next(attr)!
            }
            return MNL_CB_OK
        })
        return box.names
    }

    static func nftTables() throws -> (Int, Int) {
        let box = Collected()
        try dump(bus: NETLINK_NETFILTER, box: box, build: { raw, seq in
            nftnl_nlmsg_build_hdr(raw.assumingMemoryBound(to: CChar.self), UInt16(NFT_MSG_GETTABLE.rawValue),
                                  UInt16(NFPROTO_UNSPEC), UInt16(NLM_F_DUMP), seq)!
        }, callback: { nlh, data in
            guard let nlh, let data else { return MNL_CB_ERROR }
            let box = Unmanaged<Collected>.fromOpaque(data).takeUnretainedValue()
            let t = nftnl_table_alloc()
            defer { nftnl_table_free(t) }
            box.messages += 1
            if nftnl_table_nlmsg_parse(nlh, t) == 0, nftnl_table_get_str(t, UInt16(NFTNL_TABLE_NAME.rawValue)) != nil {
                box.parsed += 1
            }
            return MNL_CB_OK
        })
        return (box.messages, box.parsed)
    }

    /// Sends one dump request and runs `callback` on every answer until NLMSG_DONE.
    static func dump(bus: Int32, box: Collected,
                     build: (UnsafeMutableRawPointer, UInt32) -> UnsafeMutablePointer<nlmsghdr>,
                     callback: mnl_cb_t) throws {
        guard let nl = mnl_socket_open(bus) else { throw DumpFailed(step: "mnl_socket_open", code: errno) }
        defer { mnl_socket_close(nl) }
        guard mnl_socket_bind(nl, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else { throw DumpFailed(step: "bind", code: errno) }
        let portid = mnl_socket_get_portid(nl)
        let seq = UInt32(truncatingIfNeeded: time(nil))
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 8)
        defer { buf.deallocate() }
        let nlh = build(buf.baseAddress!, seq)
        guard mnl_socket_sendto(nl, nlh, Int(nlh.pointee.nlmsg_len)) > 0 else { throw DumpFailed(step: "sendto", code: errno) }
        let context = Unmanaged.passUnretained(box).toOpaque()
        while true {
            let n = mnl_socket_recvfrom(nl, buf.baseAddress, buf.count)
            guard n > 0 else { throw DumpFailed(step: "recvfrom", code: errno) }
            let ret = mnl_cb_run(buf.baseAddress, n, seq, portid, callback, context)
            if ret == MNL_CB_STOP { return }
            if ret < MNL_CB_STOP { throw DumpFailed(step: "mnl_cb_run", code: errno) }
        }
    }
}
