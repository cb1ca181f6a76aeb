import Foundation
import Glibc
import Packet

// A load generator and backend for bench/mux.sh, lighter than the paths
// under test:
//   muxload serve ADDR PORT THREADS REPLY_BYTES    answers each connection's first bytes with
//                                                    REPLY_BYTES, then closes; SO_REUSEPORT
//                                                    listener per thread
//   muxload connect ADDR PORT SECONDS THREADS HELLO_HEX_FILE
//                                                    connections in a loop per thread: connect,
//                                                    send the ClientHello, read the reply to its
//                                                    end, close; prints connections per second
// ADDR is an IPv6 or IPv4 literal.

func address(_ text: String, _ port: UInt16) -> (sockaddr_storage, socklen_t, Int32) {
    let a: IPAddress? = text.contains(":") ? IPv6Address(text).map(IPAddress.v6) : IPv4Address(text).map(IPAddress.v4)
    guard let a else { print("not an IP address: \(text)"); exit(64) }
    var s = sockaddr_storage()
    let length = IPEndpoint(address: a, port: port).write(into: &s)
    return (s, length, a.isV4 ? AF_INET : AF_INET6)
}

func withSockaddr<T>(_ s: inout sockaddr_storage, _ body: (UnsafePointer<sockaddr>) -> T) -> T {
    withUnsafePointer(to: &s) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1, body) }
}

let args = CommandLine.arguments
guard args.count >= 2 else { print("usage: muxload serve|connect …"); exit(64) }
switch args[1] {
case "serve":
    let (addr, port, threads, replyBytes) = (args[2], UInt16(args[3])!, Int(args[4])!, Int(args[5])!)
    let reply = [UInt8](repeating: 0x5A, count: replyBytes)
    for _ in 0..<threads {
        var (s, len, family) = address(addr, port)
        let fd = socket(family, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, 4)
        guard withSockaddr(&s, { bind(fd, $0, len) }) == 0, listen(fd, 4096) == 0 else { perror("listen"); exit(1) }
        Thread {
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let c = accept(fd, nil, nil)
                guard c >= 0 else { continue }
                _ = recv(c, &buffer, buffer.count, 0)
                _ = send(c, reply, reply.count, Int32(MSG_NOSIGNAL))
                close(c)
            }
        }.start()
    }
    FileHandle.standardError.write(Data("serving\n".utf8))
    while true { sleep(3600) }
case "connect":
    let (addr, port, seconds, threads) = (args[2], UInt16(args[3])!, Double(args[4])!, Int(args[5])!)
    let hex = try String(contentsOfFile: args[6], encoding: .utf8).filter(\.isHexDigit)
    let hello = stride(from: 0, to: hex.count, by: 2).map { i -> UInt8 in
        let start = hex.index(hex.startIndex, offsetBy: i)
        return UInt8(hex[start..<hex.index(start, offsetBy: 2)], radix: 16)!
    }
    let done = DispatchGroup()
    // Each thread writes only its own slot; read after all have ended.
    nonisolated(unsafe) let counts = UnsafeMutablePointer<Int>.allocate(capacity: threads)
    nonisolated(unsafe) let failures = UnsafeMutablePointer<Int>.allocate(capacity: threads)
    let end = Date().addingTimeInterval(seconds)
    for t in 0..<threads {
        counts[t] = 0
        failures[t] = 0
        done.enter()
        Thread {
            var buffer = [UInt8](repeating: 0, count: 65536)
            while Date() < end {
                var (s, len, family) = address(addr, port)
                let fd = socket(family, Int32(SOCK_STREAM.rawValue), 0)
                var linger = Glibc.linger(l_onoff: 1, l_linger: 0)  // no TIME_WAIT pile-up on the client side
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
                var ok = withSockaddr(&s, { connect(fd, $0, len) }) == 0 && send(fd, hello, hello.count, Int32(MSG_NOSIGNAL)) == hello.count
                var got = 0
                while ok {
                    let n = recv(fd, &buffer, buffer.count, 0)
                    if n <= 0 { ok = got > 0; break }
                    got += n
                }
                close(fd)
                if ok { counts[t] += 1 } else { failures[t] += 1 }
            }
            done.leave()
        }.start()
    }
    done.wait()
    let total = (0..<threads).reduce(0) { $0 + counts[$1] }, failed = (0..<threads).reduce(0) { $0 + failures[$1] }
    print(String(format: "%.0f %d", Double(total) / seconds, failed))
default:
    print("usage: muxload serve|connect …")
    exit(64)
}
