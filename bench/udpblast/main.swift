import CNetlink
import Foundation
import Glibc

// A load generator for bench/translator.sh, lighter than iperf3 so that the
// path under test, not the generator, is what runs out of CPU:
//   udpblast send DST PORT PPS SECONDS FLOWS [gso]
//                                              64-byte datagrams, paced, sendmmsg in
//                                              batches; with gso, 16 datagrams per
//                                              message cut by the kernel (UDP_SEGMENT,
//                                              as QUIC stacks send); prints how many it sent
//   udpblast recv ADDR PORT SECONDS            counts datagrams (recvmmsg); prints the count;
//                                              several may share a port (SO_REUSEPORT)
// ADDR and DST are IPv6 or IPv4 literals.

func address(_ text: String, _ port: UInt16) -> (sockaddr_storage, socklen_t, Int32) {
    var s = sockaddr_storage()
    if text.contains(":") {
        withUnsafeMutablePointer(to: &s) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
            $0.pointee.sin6_family = sa_family_t(AF_INET6)
            $0.pointee.sin6_port = port.bigEndian
            _ = inet_pton(AF_INET6, text, &$0.pointee.sin6_addr)
        } }
        return (s, socklen_t(MemoryLayout<sockaddr_in6>.size), AF_INET6)
    }
    withUnsafeMutablePointer(to: &s) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
        $0.pointee.sin_family = sa_family_t(AF_INET)
        $0.pointee.sin_port = port.bigEndian
        _ = inet_pton(AF_INET, text, &$0.pointee.sin_addr)
    } }
    return (s, socklen_t(MemoryLayout<sockaddr_in>.size), AF_INET)
}

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

let args = CommandLine.arguments
guard args.count >= 5 else {
    FileHandle.standardError.write(Data("usage: udpblast send DST PORT PPS SECONDS FLOWS | recv ADDR PORT SECONDS\n".utf8))
    exit(2)
}
let batch = 64
var payload = [UInt8](repeating: 0x5A, count: 64 * 16)
let headers = UnsafeMutablePointer<sixgate_mmsghdr>.allocate(capacity: batch)
let vectors = UnsafeMutablePointer<iovec>.allocate(capacity: batch)
let buffers = UnsafeMutableRawPointer.allocate(byteCount: batch * 2048, alignment: 16)

if args[1] == "send", args.count >= 7 {
    var (dst, len, family) = address(args[2], UInt16(args[3])!)
    let pps = Double(args[4])!, seconds = Double(args[5])!, flows = Int(args[6])!
    let gso = args.count > 7 && args[7] == "gso"
    let per = gso ? 16 : 1  // datagrams per message
    // Connected, so that the kernel looks up the route and source address
    // once per flow rather than once per datagram.
    let fds = (0..<flows).map { _ in
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue), 0)
        _ = withUnsafePointer(to: &dst) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, len) } }
        return fd
    }
    if gso {
        var size: Int32 = 64
        for fd in fds { setsockopt(fd, Int32(IPPROTO_UDP), 103, &size, socklen_t(MemoryLayout<Int32>.size)) }  // UDP_SEGMENT
    }
    payload.withUnsafeMutableBytes { p in
        for i in 0..<batch {
            vectors[i] = iovec(iov_base: p.baseAddress, iov_len: 64 * per)
            headers[i] = sixgate_mmsghdr()
            headers[i].msg_hdr.msg_iov = vectors + i
            headers[i].msg_hdr.msg_iovlen = 1
        }
        let start = now()
        var sent = 0, flow = 0
        while true {
            let t = now() - start
            if t >= seconds { break }
            let due = (Int(t * pps) - sent) / per
            if due <= 0 {
                usleep(200)
                continue
            }
            let n = min(due, batch)
            let r = sixgate_sendmmsg(fds[flow], headers, UInt32(n), 0)
            if r > 0 { sent += Int(r) * per }
            flow = (flow + 1) % flows
        }
        print(sent)
    }
} else if args[1] == "recv" {
    let (local, len, family) = address(args[2], UInt16(args[3])!)
    let seconds = Double(args[4])!
    let fd = socket(family, Int32(SOCK_DGRAM.rawValue), 0)
    var size: Int32 = 8 << 20, one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size))
    // Several receivers on one port share the flows.
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
    var l = local
    _ = withUnsafePointer(to: &l) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    var tv = timeval(tv_sec: 0, tv_usec: 200_000)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    for i in 0..<batch {
        vectors[i] = iovec(iov_base: buffers + i * 2048, iov_len: 2048)
        headers[i] = sixgate_mmsghdr()
        headers[i].msg_hdr.msg_iov = vectors + i
        headers[i].msg_hdr.msg_iovlen = 1
    }
    FileHandle.standardOutput.write(Data("ready\n".utf8))
    var got = 0
    let start = now()
    while now() - start < seconds {
        let r = sixgate_recvmmsg_waitforone(fd, headers, UInt32(batch))
        if r > 0 { got += Int(r) }
    }
    print(got)
}
