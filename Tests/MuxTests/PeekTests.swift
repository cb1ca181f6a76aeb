import Foundation
import Testing
@testable import Mux

/// The peeks at a connection's first bytes, on a real ClientHello (OpenSSL's
/// `s_client -servername www.example.com`), on ClientHellos built field by
/// field, and on HTTP/1 request heads; every prefix of a complete one is
/// incomplete, so a ClientHello split anywhere over segments is read once
/// it is whole.
@Suite struct PeekTests {
    /// Captured from the wire (`openssl-hello.hex`, also a fuzzing seed).
    static let openssl: [UInt8] = {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("openssl-hello.hex")
        return bytes((try? String(contentsOf: file, encoding: .utf8)) ?? "")
    }()

    static func bytes(_ hex: String) -> [UInt8] {
        let digits = Array(hex.utf8.filter { $0 != 10 && $0 != 32 })
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
    }

    static func u16(_ n: Int) -> [UInt8] { [UInt8(n >> 8), UInt8(n & 0xFF)] }

    /// A ClientHello with `extensions` (nil: none at all), in records of at most `record` bytes.
    static func hello(extensions: [[UInt8]]?, record: Int = 1 << 14) -> [UInt8] {
        var body: [UInt8] = [3, 3] + [UInt8](repeating: 7, count: 32) + [0] + u16(2) + [0x13, 0x01] + [1, 0]
        if let extensions { body += u16(extensions.joined().count) + extensions.joined() }
        let message: [UInt8] = [1, 0] + u16(body.count) + body
        return stride(from: 0, to: message.count, by: record).flatMap { start -> [UInt8] in
            let part = message[start..<min(start + record, message.count)]
            return [22, 3, 1] + u16(part.count) + Array(part)
        }
    }

    static func sni(_ names: String...) -> [UInt8] {
        let list: [UInt8] = names.flatMap { (name: String) -> [UInt8] in [0] + u16(name.utf8.count) + Array(name.utf8) }
        return u16(0) + u16(list.count + 2) + u16(list.count) + list
    }

    @Test func opensslsClientHello() {
        #expect(ClientHello.peek(Self.openssl) == .name("www.example.com"))
        for n in 0..<Self.openssl.count {
            #expect(ClientHello.peek(Array(Self.openssl.prefix(n))) == .incomplete, "\(n) bytes")
        }
        // What follows the ClientHello (the client's next records) does not matter.
        #expect(ClientHello.peek(Self.openssl + [23, 3, 3, 0, 1, 0]) == .name("www.example.com"))
    }

    @Test func aClientHelloOverSeveralRecords() {
        let split = Self.hello(extensions: [[0, 0x10] + Self.u16(0)] + [Self.sni("Mail.Example.COM.")], record: 20)
        #expect(split.filter { $0 == 22 }.count >= 3)
        #expect(ClientHello.peek(split) == .name("mail.example.com"))
    }

    @Test func withoutAName() {
        #expect(ClientHello.peek(Self.hello(extensions: nil)) == .noName)
        #expect(ClientHello.peek(Self.hello(extensions: [[0, 0x10] + Self.u16(0)])) == .noName)
    }

    @Test func malformedHellosAreRefused() {
        #expect(ClientHello.peek(Array("GET / HTTP/1.1\r\n".utf8)) == .invalid("not a TLS handshake"))
        #expect(ClientHello.peek(Self.hello(extensions: [Self.sni("a.example"), Self.sni("b.example")])) == .invalid("extension 0 twice"))
        #expect(ClientHello.peek(Self.hello(extensions: [Self.sni("bad name.example")])) == .invalid("a server_name that is not a host name"))
        #expect(ClientHello.peek(Self.hello(extensions: [Self.sni("a.example", "b.example")])) == .invalid("a server_name that is not a host name"))
        var truncated = Self.hello(extensions: [Self.sni("a.example")])
        truncated[truncated.count - 11] = 0xFF  // the name claims more than its list holds
        #expect(ClientHello.peek(truncated) == .invalid("a malformed server_name"))
        #expect(ClientHello.peek([22, 3, 1, 0, 4, 1, 0xFF, 0, 0]) == .invalid("a ClientHello of 16711684 bytes"))
        #expect(ClientHello.peek([22, 3, 1, 0x40, 1]) == .invalid("a TLS record of 16385 bytes"))
        #expect(ClientHello.peek([22, 3, 1, 0, 4, 2, 0, 0, 0]) == .invalid("a handshake other than a ClientHello"))
    }

    @Test func httpHost() {
        let head = Array("GET /index.html HTTP/1.1\r\nUser-Agent: curl\r\nhost:  WWW.Example.org:8080 \r\nAccept: */*\r\n\r\n".utf8)
        #expect(HTTPHost.peek(head) == .name("www.example.org"))
        for n in 0..<(head.count - 1) { #expect(HTTPHost.peek(Array(head.prefix(n))) == .incomplete, "\(n) bytes") }
        // The body (or a pipelined request) after the head does not matter.
        #expect(HTTPHost.peek(head + Array("POST".utf8)) == .name("www.example.org"))
        #expect(HTTPHost.peek(Array("GET http://Other.Example/x HTTP/1.1\r\nHost: www.example.org\r\n\r\n".utf8)) == .name("other.example"),
                "an absolute-form target wins over Host")
        #expect(HTTPHost.peek(Array("GET / HTTP/1.0\r\n\r\n".utf8)) == .noName)
        #expect(HTTPHost.peek(Array("GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n".utf8)) == .noName)
    }

    @Test func malformedRequestsAreRefused() {
        #expect(HTTPHost.peek(Array("GET / HTTP/1.1\r\n\r\n".utf8)) == .invalid("no Host"))
        #expect(HTTPHost.peek(Array("GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n".utf8)) == .invalid("Host twice"))
        #expect(HTTPHost.peek(Array("GET / HTTP/2\r\nHost: a\r\n\r\n".utf8)) == .invalid("not an HTTP/1 request line"))
        #expect(HTTPHost.peek(Array("GET / HTTP/1.1\r\nHost: a.example:x\r\n\r\n".utf8)) == .invalid("a Host that is not a host name"))
        // Found by make fuzz: one trailing dot is dropped, a second one is an empty label.
        #expect(HTTPHost.peek(Array("GET / HTTP/1.1\r\nHost: www..\r\n\r\n".utf8)) == .invalid("a Host that is not a host name"))
        #expect(HTTPHost.peek(Array("GET / HTTP/1.1\r\nno colon\r\n\r\n".utf8)) == .invalid("a malformed header field"))
        #expect(HTTPHost.peek(Self.openssl.prefix(3).map { $0 }) == .invalid("not an HTTP/1 request"), "TLS is told apart at once")
        #expect(HTTPHost.peek(Array("GET / HTTP/1.1\r\nX: ".utf8) + [UInt8](repeating: 65, count: HTTPHost.largest)) == .invalid("a request head over 16384 bytes"))
    }

    @Test func routes() {
        let r = NameRoutes([("www.example.com", 1), ("*.example.com", 2), ("*.eu.example.com", 3)], fallback: 9)
        #expect(r.backend(for: "www.example.com") == 1)
        #expect(r.backend(for: "mail.example.com") == 2 && r.backend(for: "a.b.example.com") == 2)
        #expect(r.backend(for: "x.eu.example.com") == 3, "the longest suffix wins")
        #expect(r.backend(for: "example.com") == 9, "a wildcard does not cover its apex")
        #expect(r.backend(for: "notexample.com") == 9 && r.backend(for: nil) == 9)
        #expect(NameRoutes([("a.example", 1)]).backend(for: "b.example") == nil, "no default: reject")
    }
}
