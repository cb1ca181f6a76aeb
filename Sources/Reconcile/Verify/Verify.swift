import ControlProtocol
import Configuration
import Common
import DNS64
import Foundation
import Glibc
import Packet
import SixBedFour

/// One line of `sixgatectl verify`: what the config says, what the live
/// system showed when asked, and whether they agree.
public struct VerifyCheck: Codable, Sendable, Equatable {
    public var name: String
    public var expected: String
    public var observed: String
    public var ok: Bool
}

/// Proves on a live gateway that its parts agree on the one prefix, by
/// exercising them: a DNS query for ipv4only.arpa, a router solicitation to
/// the 6bed4 router, the daemon's own report of the translator, and an audit
/// of routes and nftables. Each probe runs in the caller's network namespace.
public struct Verifier {
    public let config: Config
    /// Older prefixes of a renumbering under way, as apply left them.
    public let retiring: [NAT64Prefix]
    public let timeout: Int32 = 2000

    public init(config: Config, retiring: [NAT64Prefix] = []) {
        self.config = config
        self.retiring = retiring
    }

    var prefix: String { config.prefix.description }

    /// The daemon's report: the prefix it runs with, and each part serving.
    public func daemon(_ status: Result<DaemonStatus, ControlError>) -> [VerifyCheck] {
        switch status {
        case .failure(let e):
            return [VerifyCheck(name: "daemon", expected: "sixgated answers", observed: e.what, ok: false)]
        case .success(let s):
            let expected = retiring.map(\.description).joined(separator: ", "), observed = (s.retiring ?? []).map(\.value).joined(separator: ", ")
            var checks = [VerifyCheck(name: "translator prefix (daemon)", expected: prefix, observed: s.prefix, ok: s.prefix == prefix),
                          VerifyCheck(name: "translator retiring prefixes", expected: expected.isEmpty ? "none" : expected,
                                      observed: observed.isEmpty ? "none" : observed, ok: expected == observed)]
            for part in s.parts {
                checks.append(VerifyCheck(name: "\(part.name) state", expected: "serving", observed: part.state.description, ok: part.state == .serving))
            }
            return checks
        }
    }

    /// `ipv4only.arpa AAAA` (RFC 8880) asked of DNS64 on its first listen
    /// address, from that address (a client the access list allows; from
    /// loopback when it listens on every address).
    public func dns64() -> VerifyCheck {
        let expected = DNS64Defaults.ipv4onlyAddresses.map { config.prefix.embed($0).description }
        let name = "DNS64 ipv4only.arpa AAAA"
        guard config.dns64.enabled, let listen = config.dns64.listen.first else {
            return VerifyCheck(name: name, expected: "(DNS64 off)", observed: "(DNS64 off)", ok: true)
        }
        var query = Message()
        query.id = UInt16.random(in: 0...UInt16.max)
        query.recursionDesired = true
        query.questions = [Question(name: SpecialNames.ipv4only, type: RRType.aaaa)]
        var server = listen
        let unspecified: Bool
        switch listen.address {
        case .v4(let a): unspecified = a.rawValue == 0
        case .v6(let a): unspecified = a.high == 0 && a.low == 0
        }
        if unspecified {
            server = IPEndpoint(address: listen.address.isV4 ? .v4(IPv4Address(rawValue: 0x7F00_0001)) : .v6(IPv6Address(high: 0, low: 1)), port: listen.port)
        }
        let observed: String
        switch exchange(Wire.encode(query), with: server, from: server.address) {
        case .failure(let failure):
            observed = failure.why
        case .success(let bytes):
            if let answer = try? Wire.decode(bytes), answer.id == query.id {
                observed = answer.rcode == 0
                    ? answer.answers.compactMap { if case .aaaa(let a) = $0.data { a.description } else { nil } }.sorted().joined(separator: ", ")
                    : "rcode \(answer.rcode)"
            } else {
                observed = "an answer that does not parse"
            }
        }
        return VerifyCheck(name: name, expected: expected.joined(separator: ", "), observed: observed, ok: observed == expected.joined(separator: ", "))
    }

    /// A router solicitation to the 6bed4 router; the PREF64 option of its
    /// advertisement (RFC 8781).
    public func sixBedFour() -> VerifyCheck {
        let name = "6bed4 RA PREF64"
        guard config.sixbedfour.enabled, let v4 = config.sixbedfour.address4 else {
            return VerifyCheck(name: name, expected: "(6bed4 off)", observed: "(6bed4 off)", ok: true)
        }
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 8)
        defer { scratch.deallocate() }
        let rs = Array(UnsafeRawBufferPointer(start: scratch, count: ND.writeRS(scratch)))
        let observed: String
        let router = IPEndpoint(address: .v4(v4), port: config.sixbedfour.port)
        // The router answers sixbedfour.rs_per_second solicitations per second
        // and source: a verify right after another may find them used up, so
        // one silence is asked again, in another second.
        switch exchange(rs, with: router, from: nil).flatMapError({ _ in exchange(rs, with: router, from: nil) }) {
        case .failure(let failure):
            observed = failure.why
        case .success(let ra):
            observed = Self.pref64(inRA: ra) ?? "no PREF64 in the advertisement"
        }
        let expected = ([prefix] + retiring.map { "\($0) (lifetime 0)" }).joined(separator: ", ")
        return VerifyCheck(name: name, expected: expected, observed: observed, ok: observed == expected)
    }

    /// The audit, in two rows: routes (and links, addresses, sysctls), and nftables.
    public func audit(_ drift: Result<[Drift], any Error>) -> [VerifyCheck] {
        switch drift {
        case .failure(let e):
            return [VerifyCheck(name: "audit", expected: "no drift", observed: "\(e)", ok: false)]
        case .success(let d):
            let nft = d.filter { $0.area == .nft }, rest = d.filter { $0.area != .nft }
            func summary(_ d: [Drift]) -> String { d.isEmpty ? "no drift" : d.map(\.description).joined(separator: "; ") }
            return [
                VerifyCheck(name: "routes, links, addresses", expected: "no drift", observed: summary(rest), ok: rest.isEmpty),
                VerifyCheck(name: "nftables", expected: "no drift", observed: summary(nft), ok: nft.isEmpty),
            ]
        }
    }

    /// The prefixes of the PREF64 options of a router advertisement (an IPv6
    /// packet), read as our peer reads them (`ND.readRA`), a withdrawn one
    /// (lifetime 0) marked so. nil when it has none or is not acceptable.
    static func pref64(inRA ra: [UInt8]) -> String? {
        var bytes = ra
        guard let learned = bytes.withUnsafeMutableBytes({ b in b.baseAddress.flatMap { ND.readRA($0, length: b.count) } }) else { return nil }
        let found = [learned.pref64].compactMap { $0?.description } + learned.withdrawnPref64.map { "\($0) (lifetime 0)" }
        return found.isEmpty ? nil : found.joined(separator: ", ")
    }

    /// One datagram to `server` (from `source`, when given) and the first one back.
    struct ProbeFailure: Error {
        let why: String
    }

    func exchange(_ datagram: [UInt8], with server: IPEndpoint, from source: IPAddress?) -> Result<[UInt8], ProbeFailure> {
        let v4 = server.address.isV4
        let fd = socket(v4 ? AF_INET : AF_INET6, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(ProbeFailure(why: String(cString: strerror(errno)))) }
        defer { close(fd) }
        if let source {
            var local = sockaddr_storage()
            let length = IPEndpoint(address: source, port: 0).write(into: &local)
            guard withUnsafePointer(to: &local, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }) == 0 else {
                return .failure(ProbeFailure(why: "cannot send from \(source): \(String(cString: strerror(errno)))"))
            }
        }
        var remote = sockaddr_storage()
        let length = server.write(into: &remote)
        guard withUnsafePointer(to: &remote, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } }) == 0,
              datagram.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == datagram.count else {
            return .failure(ProbeFailure(why: "cannot send to \(server): \(String(cString: strerror(errno)))"))
        }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, timeout) > 0 else { return .failure(ProbeFailure(why: "no answer from \(server) within \(timeout / 1000) s")) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n > 0 else { return .failure(ProbeFailure(why: "no answer from \(server): \(String(cString: strerror(errno)))")) }
        return .success(Array(buffer[0..<n]))
    }

}
