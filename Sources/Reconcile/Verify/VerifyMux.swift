import Foundation
import Glibc
import Mux
import Packet

extension Verifier {
    /// Each [[mux]] route end to end, from this host: a connection to the
    /// listen address naming the route (a ClientHello with its server_name,
    /// an HTTP request with its Host; nothing for `tcp`) must be relayed to a
    /// backend that answers (TLS: its first record; HTTP: a status line), or
    /// for `tcp` stay open. A wildcard is tried with a name below it.
    public func mux() -> [VerifyCheck] {
        config.mux.flatMap { m -> [VerifyCheck] in
            let names: [String?] = m.kind == .tcp ? [nil] : m.routes.map { $0.name.hasPrefix("*.") ? "sixgate-verify" + $0.name.dropFirst() : $0.name }
            return names.map { name in
                let label = "mux \(m.listen)" + (name.map { " \($0)" } ?? "")
                let expected = m.kind == .tcp ? "connected" : m.kind == .tlsSNI ? "a TLS record" : "an HTTP status line"
                let hello: [UInt8] = switch m.kind {
                case .tlsSNI: Self.clientHello(serverName: name ?? "")
                case .httpHost: Array("HEAD / HTTP/1.1\r\nHost: \(name ?? "")\r\nUser-Agent: sixgatectl-verify\r\nConnection: close\r\n\r\n".utf8)
                case .tcp: []
                }
                let observed = probe(m.listen, sending: hello) { reply in
                    switch m.kind {
                    case .tlsSNI: reply.first == 22 || reply.first == 21 ? expected : nil
                    case .httpHost: reply.starts(with: Array("HTTP/1.".utf8)) ? expected : nil
                    case .tcp: expected
                    }
                }
                return VerifyCheck(name: label, expected: expected, observed: observed, ok: observed == expected)
            }
        }
    }

    /// What came back from `endpoint` after `hello`, as `judge` names it, or
    /// why nothing acceptable did. `tcp` (no hello) only needs the connection
    /// to stay open a moment.
    func probe(_ endpoint: IPEndpoint, sending hello: [UInt8], judge: ([UInt8]) -> String?) -> String {
        let fd = socket(endpoint.address.isV4 ? AF_INET : AF_INET6, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(timeout / 1000), tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var remote = sockaddr_storage()
        let length = endpoint.write(into: &remote)
        guard withUnsafePointer(to: &remote, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } }) == 0 else {
            return "cannot connect: \(String(cString: strerror(errno)))"
        }
        if hello.isEmpty {
            // A tcp route connects at once; a backend that refuses resets us soon after.
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 500) > 0 {
                var byte: UInt8 = 0
                if recv(fd, &byte, 1, Int32(MSG_PEEK)) <= 0 { return "closed: the backend did not take it" }
            }
            return judge([]) ?? "connected"
        }
        guard send(fd, hello, hello.count, Int32(MSG_NOSIGNAL)) == hello.count else { return "cannot send: \(String(cString: strerror(errno)))" }
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n > 0 else { return n == 0 ? "closed without an answer" : "no answer: \(String(cString: strerror(errno)))" }
        return judge(Array(buffer[0..<n])) ?? "an answer of another kind"
    }

    /// A minimal TLS 1.2/1.3 ClientHello naming `serverName`: enough for a
    /// server to answer with its first record (a ServerHello or an alert).
    static func clientHello(serverName: String) -> [UInt8] {
        func u16(_ n: Int) -> [UInt8] { [UInt8(n >> 8), UInt8(n & 0xFF)] }
        let name = Array(serverName.utf8)
        let sni = u16(0) + u16(name.count + 5) + u16(name.count + 3) + [0] + u16(name.count) + name
        let groups = u16(10) + u16(4) + u16(2) + u16(0x17)  // supported_groups: secp256r1
        let signatures = u16(13) + u16(4) + u16(2) + [4, 3]  // signature_algorithms: ecdsa_secp256r1_sha256
        let versions = u16(43) + u16(5) + [4] + [3, 4, 3, 3]  // supported_versions: TLS 1.3, 1.2
        let share = u16(51) + u16(2) + u16(0)  // key_share: none (a HelloRetryRequest is an answer too)
        let extensions = sni + groups + signatures + versions + share
        let suites: [UInt8] = [0x13, 0x01, 0xC0, 0x2B, 0xC0, 0x2F]
        var body: [UInt8] = [3, 3] + (0..<32).map { _ in UInt8.random(in: 0...255) } + [0]
        body += u16(suites.count) + suites + [1, 0] + u16(extensions.count) + extensions
        let handshake = [1, 0] + u16(body.count) + body
        return [22, 3, 1] + u16(handshake.count) + handshake
    }
}
