import Foundation
import Glibc
import NetnsRig
import Testing

/// DNS64 in front of a validating Unbound (in s6, on 2001:db8:2::53) that
/// resolves a zone signed with dnssec-signzone, served by NSD, in which some
/// signatures are broken on purpose.
enum SignedUpstream {
    static let zone = """
        $TTL 3600
        @          IN SOA ns.example.org. hostmaster.example.org. 1 7200 3600 1209600 300
                   IN NS  ns.example.org.
        ns         IN AAAA 2001:db8:2::2
        v4only     IN A    192.0.2.10
        dual       IN A    192.0.2.11
        dual       IN AAAA 2001:db8:2::11
        bogus-aaaa IN A    192.0.2.40
        bogus-aaaa IN AAAA 2001:db8:2::40
        bogus-a    IN A    192.0.2.41
        mappedonly IN AAAA ::ffff:192.0.2.13
        broken     IN NS   ns.broken
        ns.broken  IN AAAA 2001:db8:2::2

        """

    /// Signs `zone`, breaks the signatures of bogus-aaaa's AAAA and bogus-a's
    /// A by changing the records after signing, and starts NSD with it. NSD
    /// also holds broken.example.org without any data, so that it answers
    /// SERVFAIL there: a failure that has nothing to do with DNSSEC. Unbound
    /// answers A queries for half.broken.example.org from local data, so
    /// that only its AAAA query fails.
    static func start(_ rig: NetnsRig) throws -> [NetnsRig.Process] {
        let dir = rig.scratch + "/signing"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try zone.write(toFile: dir + "/example.org.zone", atomically: true, encoding: .utf8)
        let ksk = try rig.checked("s6", ["dnssec-keygen", "-q", "-K", dir, "-a", "ECDSAP256SHA256", "-f", "KSK", "example.org"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try rig.checked("s6", ["dnssec-keygen", "-q", "-K", dir, "-a", "ECDSAP256SHA256", "example.org"])
        try rig.checked("s6", ["dnssec-signzone", "-S", "-K", dir, "-d", dir, "-O", "full", "-o", "example.org", "-s", "-3600", "-e", "+2592000",
                               "-f", dir + "/signed.zone", dir + "/example.org.zone"])
        // One record a line (-O full): owner, TTL, class, type, data.
        let forgeries = ["bogus-aaaa.example.org. AAAA": "2001:db8:2::41", "bogus-a.example.org. A": "192.0.2.42"]
        var forged = 0
        let signed = try String(contentsOfFile: dir + "/signed.zone", encoding: .utf8).split(separator: "\n").map { line in
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard f.count == 5, let data = forgeries["\(f[0]) \(f[3])"] else { return String(line) }
            forged += 1
            return "\(f[0]) \(f[1]) \(f[2]) \(f[3]) \(data)"
        }.joined(separator: "\n") + "\n"
        guard forged == forgeries.count else { throw BrokenFixture(what: "\(forged) of \(forgeries.count) records to forge found in the signed zone") }
        let nsd = try rig.nsd("s6", "2001:db8:2::2", zones: [("example.org", signed), ("broken.example.org", "")])
        try rig.checked("s6", ["ip", "addr", "add", "2001:db8:2::53/64", "dev", "eth0", "nodad"])
        let unbound = try rig.unbound("s6", "2001:db8:2::53", stubs: [("example.org", "2001:db8:2::2")], trustAnchors: ["\(dir)/\(ksk).key"],
                                      extra: ["local-zone: \"half.broken.example.org.\" typetransparent",
                                              "local-data: \"half.broken.example.org. 300 A 192.0.2.50\""])
        return [nsd, unbound]
    }

    struct BrokenFixture: Error { let what: String }
}

/// What dig said: status, header flags, Extended DNS Error codes, and the
/// answer section's AAAA records as "name type data" (TTLs age in caches).
struct DigAnswer: CustomStringConvertible {
    let status: String
    let flags: Set<String>
    let ede: [Int]
    let aaaa: [String]
    let raw: String

    var description: String { raw }
}

extension DNS64Gateway {
    func ask(_ name: String, _ type: String = "AAAA", tcp: Bool, _ options: [String] = []) throws -> DigAnswer {
        let r = try rig.run("c6", ["dig", "+time=5", "+tries=1", "+nocmd", "+noall", "+answer", "+comments", tcp ? "+tcp" : "+notcp",
                                   "@2001:db8:1::1", name, type] + options)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        let status = lines.first { $0.contains("status:") }.flatMap { $0.split(separator: "status: ").last?.split(separator: ",").first }.map(String.init) ?? "none"
        let flags = lines.first { $0.hasPrefix(";; flags:") }.map { $0.dropFirst(";; flags:".count).split(separator: ";")[0].split(separator: " ").map(String.init) } ?? []
        let ede = lines.filter { $0.hasPrefix("; EDE: ") }.compactMap { Int($0.dropFirst("; EDE: ".count).prefix { $0.isNumber }) }
        let aaaa = lines.filter { !$0.hasPrefix(";") }.map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init) }
            .filter { $0.count == 5 && $0[3] == "AAAA" }.map { "\($0[0]) AAAA \($0[4])" }
        return DigAnswer(status: status, flags: Set(flags), ede: ede, aaaa: aaaa, raw: r.stdout + r.stderr)
    }

    /// Asks over UDP and over TCP, each twice (the second from a cache), and
    /// checks every answer.
    func expectEverywhere(_ name: String, _ options: [String] = [], _ check: (DigAnswer) -> Bool, sourceLocation: SourceLocation = #_sourceLocation) throws {
        for tcp in [false, true] {
            for round in ["first", "again"] {
                let a = try ask(name, tcp: tcp, options)
                #expect(check(a), "\(name) \(options) over \(tcp ? "TCP" : "UDP"), \(round): \(a)", sourceLocation: sourceLocation)
            }
        }
    }
}

@Suite(.serialized) struct DNS64DNSSECTests {
    static func start(trustUpstreamAD: Bool) throws -> DNS64Gateway {
        try DNS64Gateway.start(dns64: "trust_upstream_ad = \(trustUpstreamAD)", upstream: "[2001:db8:2::53]:53", servers: SignedUpstream.start)
    }

    @Test func synthesisIsSafeBehindAValidatingResolver() throws {
        let g = try Self.start(trustUpstreamAD: true)
        defer { g.rig.teardown() }
        let synthesised = ["v4only.example.org. AAAA 2001:db8:64::c000:20a"]
        // Authenticated A, authenticated NODATA, DO: synthesised with AD (§5.5).
        try g.expectEverywhere("v4only.example.org", ["+dnssec"]) { $0.status == "NOERROR" && $0.aaaa == synthesised && $0.flags.contains("ad") }
        // Without DO: no AD.
        try g.expectEverywhere("v4only.example.org") { $0.status == "NOERROR" && $0.aaaa == synthesised && !$0.flags.contains("ad") }
        // A real AAAA passes with the upstream's AD.
        try g.expectEverywhere("dual.example.org", ["+dnssec"]) { $0.aaaa == ["dual.example.org. AAAA 2001:db8:2::11"] && $0.flags.contains("ad") }
        // A bogus AAAA: the SERVFAIL and why, never a synthesised address, with DO or without.
        for options in [["+dnssec"], []] {
            try g.expectEverywhere("bogus-aaaa.example.org", options) { $0.status == "SERVFAIL" && $0.ede == [6] && $0.aaaa.isEmpty }
        }
        // A bogus A behind a proven NODATA: SERVFAIL, not a NODATA the client would cache.
        try g.expectEverywhere("bogus-a.example.org") { $0.status == "SERVFAIL" && $0.ede == [6] && $0.aaaa.isEmpty }
        // Only an excluded (IPv4-mapped) AAAA and no A: nothing, and not the excluded one.
        try g.expectEverywhere("mappedonly.example.org") { $0.status == "NOERROR" && $0.aaaa.isEmpty && !$0.raw.contains("::ffff:") }
        // A SERVFAIL that is not about DNSSEC counts as "no AAAA" (§5.1.2): synthesised from the A, without AD.
        try g.expectEverywhere("half.broken.example.org", ["+dnssec"]) {
            $0.status == "NOERROR" && $0.aaaa == ["half.broken.example.org. AAAA 2001:db8:64::c000:232"] && !$0.flags.contains("ad")
        }
        // And when the A query fails too, its SERVFAIL is the answer.
        try g.expectEverywhere("none.broken.example.org") { $0.status == "SERVFAIL" && $0.aaaa.isEmpty }
        // A client that validates gets what the resolver said, to validate itself.
        try g.expectEverywhere("bogus-aaaa.example.org", ["+dnssec", "+cdflag"]) { $0.aaaa == ["bogus-aaaa.example.org. AAAA 2001:db8:2::41"] }
        // Counted for the operator: bogus-aaaa twice with DO, twice without, bogus-a once per transport.
        g.rig.stop(g.dns64)
        let failures = g.dns64.errors.split(separator: " ").first { $0.hasPrefix("validation_failures=") }.flatMap { Int($0.dropFirst("validation_failures=".count)) }
        #expect((failures ?? 0) >= 6, "\(g.dns64.errors.suffix(600))")
    }

    @Test func withoutTrustNoAnswerCarriesAD() throws {
        let g = try Self.start(trustUpstreamAD: false)
        defer { g.rig.teardown() }
        try g.expectEverywhere("v4only.example.org", ["+dnssec"]) { $0.aaaa == ["v4only.example.org. AAAA 2001:db8:64::c000:20a"] && !$0.flags.contains("ad") }
        try g.expectEverywhere("dual.example.org", ["+dnssec"]) { $0.aaaa == ["dual.example.org. AAAA 2001:db8:2::11"] && !$0.flags.contains("ad") }
        // Trusted or not, a failed validation is never synthesised around.
        try g.expectEverywhere("bogus-aaaa.example.org") { $0.status == "SERVFAIL" && $0.ede == [6] && $0.aaaa.isEmpty }
    }

    @Test func ednsVersionsAndMalformedOptions() throws {
        let g = try DNS64Gateway.start()
        defer { g.rig.teardown() }
        // The answer cached first, so that the cache's fast path must refuse these too.
        #expect(try g.ask("v4only.example.org", tcp: false).aaaa == ["v4only.example.org. AAAA 2001:db8:64::c000:20a"])
        // RFC 6891 §6.1.3: a version we do not speak gets BADVERS (and our version, 0).
        try g.expectEverywhere("v4only.example.org", ["+edns=1", "+noednsnegotiation"]) { $0.status == "BADVERS" && $0.aaaa.isEmpty }
        // Options whose lengths do not add up to the OPT record: FORMERR, over UDP and TCP.
        let script = """
            import socket, struct
            def query(options):
                opt = b'\\x00' + struct.pack('>HHIH', 41, 1232, 0, len(options)) + options
                return struct.pack('>HHHHHH', 0x4242, 0x0100, 1, 0, 0, 1) + b'\\x06v4only\\x07example\\x03org\\x00' + struct.pack('>HH', 28, 1) + opt
            def rcode(r): return r[3] & 0x0f
            out = []
            # A cookie that claims 12 bytes and has 8; one that claims 4 and has 8.
            for options in [struct.pack('>HH', 10, 12) + b'12345678', struct.pack('>HH', 10, 4) + b'12345678', struct.pack('>HH', 10, 8) + b'12345678']:
                u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u.settimeout(3)
                u.sendto(query(options), ('2001:db8:1::1', 53))
                t = socket.create_connection(('2001:db8:1::1', 53), timeout=3)
                q = query(options); t.sendall(struct.pack('>H', len(q)) + q)
                n = struct.unpack('>H', t.recv(2))[0]; r = b''
                while len(r) < n: r += t.recv(n - len(r))
                out.append('%d/%d' % (rcode(u.recv(4096)), rcode(r)))
            print(' '.join(out))
            """
        let rcodes = try g.rig.checked("c6", ["python3", "-c", script]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        // FORMERR (1) over UDP and TCP for both; the well-formed one is answered (0).
        #expect(rcodes == "1/1 1/1 0/0", "\(rcodes)")
    }
}
