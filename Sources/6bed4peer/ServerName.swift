import DNS64
import Foundation
import Glibc
import Packet
import SixBedFour

/// The router `--server` names: an IPv4 address as it is; a DNS name through
/// its AAAA record where that address embeds the router's IPv4 endpoint (the
/// 6bed4 address layout, a non-zero port in bytes 12–13), else through its A
/// record and `--port`. `sixgatectl publish` writes both records.
enum ServerName {
    struct Unresolved: Error, CustomStringConvertible {
        let name: String
        let why: String
        var description: String { "--server \(name): \(why)" }
    }

    static func resolve(_ server: String, port: UInt16, resolver: IPEndpoint?) throws -> (UDPEndpoint, String) {
        if let a = IPv4Address(server) { return (UDPEndpoint(address: a, port: port), "") }
        let v6 = try lookup(server, type: RRType.aaaa, resolver: resolver).compactMap { if case .v6(let a) = $0 { a } else { nil } }
        for a in v6 {
            let b = a.bytes
            let embedded = UInt16(b[12]) << 8 | UInt16(b[13])
            if embedded != 0 {
                let v4 = IPv4Address(bytes: [(b[8] & 0xFC) | (b[14] >> 6), b[9], b[10], b[11]])
                return (UDPEndpoint(address: v4, port: embedded), "\(server) AAAA \(a) embeds it")
            }
        }
        let v4 = try lookup(server, type: RRType.a, resolver: resolver).compactMap { if case .v4(let a) = $0 { a } else { nil } }
        guard let a = v4.first else { throw Unresolved(name: server, why: "neither its AAAA embeds an IPv4 endpoint nor has it an A record") }
        return (UDPEndpoint(address: a, port: port), "\(server) A \(a)" + (v6.isEmpty ? "" : " (its AAAA \(v6[0]) embeds no endpoint)"))
    }

    /// The addresses of `type` for `name`: from `resolver` over UDP when
    /// given, else from the system's resolver.
    static func lookup(_ name: String, type: UInt16, resolver: IPEndpoint?) throws -> [IPAddress] {
        guard let resolver else { return system(name, family: type == RRType.aaaa ? AF_INET6 : AF_INET) }
        guard let qname = DNSName(name) else { throw Unresolved(name: name, why: "not a DNS name") }
        var query = Message()
        query.id = UInt16.random(in: 0...UInt16.max)
        query.recursionDesired = true
        query.questions = [Question(name: qname, type: type)]
        let wire = Wire.encode(query)
        let fd = socket(resolver.address.isV4 ? AF_INET : AF_INET6, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Unresolved(name: name, why: "no socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var to = sockaddr_storage()
        let length = resolver.write(into: &to)
        var buffer = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<3 {
            _ = withUnsafePointer(to: &to) { p in p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, wire, wire.count, 0, $0, length) } }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 2000) > 0 else { continue }
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0, let answer = try? Wire.decode(Array(buffer[0..<n])), answer.id == query.id else { continue }
            return answer.answers.compactMap { rr in
                switch rr.data {
                case .a(let a): .v4(a)
                case .aaaa(let a): .v6(a)
                default: nil
                }
            }
        }
        throw Unresolved(name: name, why: "\(resolver) did not answer")
    }

    static func system(_ name: String, family: Int32) -> [IPAddress] {
        var hints = addrinfo()
        hints.ai_family = family
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(name, nil, &hints, &result) == 0 else { return [] }
        defer { freeaddrinfo(result) }
        var out: [IPAddress] = []
        var p = result
        while let info = p {
            if let sa = info.pointee.ai_addr {
                if family == AF_INET6 {
                    sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { s in
                        out.append(.v6(IPv6Address(bytes: withUnsafeBytes(of: s.pointee.sin6_addr) { Array($0) })))
                    }
                } else {
                    sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { s in
                        out.append(.v4(IPv4Address(rawValue: UInt32(bigEndian: s.pointee.sin_addr.s_addr))))
                    }
                }
            }
            p = info.pointee.ai_next
        }
        return out
    }
}
