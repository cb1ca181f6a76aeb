import Foundation
import Glibc
import NetnsRig
import Testing

/// DNS64 in gw forwarding to a real authoritative server (NSD) in s6, asked
/// with dig and kdig from c6 (a client) and c4 (not a client).
struct DNS64Gateway {
    let rig: NetnsRig
    let dns64: NetnsRig.Process
    /// The upstream's servers: NSD, by default.
    let servers: [NetnsRig.Process]

    static let zone = """
        $TTL 3600
        @        IN SOA ns.example.org. hostmaster.example.org. 1 7200 3600 1209600 300
                 IN NS  ns.example.org.
        ns       IN AAAA 2001:db8:2::2
        v4only   IN A    192.0.2.10
        dual     IN A    192.0.2.11
        dual     IN AAAA 2001:db8:2::11
        mapped   IN A    192.0.2.12
        mapped   IN AAAA ::ffff:192.0.2.12
        multi    IN A    192.0.2.21
        multi    IN A    192.0.2.22
        alias    IN CNAME v4only
        short 30 IN A    192.0.2.30
        private  IN A    10.1.2.3
        global   IN A    8.8.8.8
        s4       IN A    203.0.113.2

        """

    static let reverse = """
        $TTL 3600
        @   IN SOA ns.example.org. hostmaster.example.org. 1 7200 3600 1209600 300
            IN NS  ns.example.org.
        10  IN PTR v4only.example.org.

        """

    /// NSD in s6 on 2001:db8:2::2, serving `zone` and `reverse`, once it answers.
    static func startNSD(_ rig: NetnsRig) throws -> NetnsRig.Process {
        try rig.nsd("s6", "2001:db8:2::2", zones: [("example.org", zone), ("2.0.192.in-addr.arpa", reverse)])
    }

    /// `dns64` holds further lines of the [dns64] table; `servers` start
    /// what answers on `upstream`.
    static func start(prefix: String = "2001:db8:64::/96", dns64 more: String = "", upstream: String = "[2001:db8:2::2]:53",
                      servers: (NetnsRig) throws -> [NetnsRig.Process] = { [try startNSD($0)] }) throws -> DNS64Gateway {
        let rig = try NetnsRig.standard()
        do {
            let servers = try servers(rig)
            let config = rig.scratch + "/sixgate.toml"
            try """
                prefix = "\(prefix)"
                [gateway]
                uplink4 = "s4"
                inside6 = "c6"
                clients = ["2001:db8:1::/64"]
                [dns64]
                listen = ["[2001:db8:1::1]:53", "198.51.100.1:53"]
                upstreams = ["\(upstream)"]
                timeout = "1s"
                attempts = 2
                \(more)
                """.write(toFile: config, atomically: true, encoding: .utf8)
            let (dns64, _) = try rig.startNotifying("gw", [binDir + "/sixgated", "dns64", "--config", config], name: "dns64", readyWithin: .seconds(10))
            return DNS64Gateway(rig: rig, dns64: dns64, servers: servers)
        } catch {
            rig.teardown()
            throw error
        }
    }

    /// dig from c6 to the DNS64; the answer section as "name ttl type data" lines.
    func dig(_ name: String, _ type: String = "AAAA", from host: String = "c6", server: String = "2001:db8:1::1", extra: [String] = []) throws -> (status: String, answers: [String]) {
        let r = try rig.run(host, ["dig", "+time=3", "+tries=1", "+nocmd", "+noall", "+answer", "+comments", "@\(server)", name, type] + extra)
        let status = r.stdout.split(separator: "\n").first { $0.contains("status:") }.flatMap { $0.split(separator: "status: ").last?.split(separator: ",").first }.map(String.init) ?? "none"
        let answers = r.stdout.split(separator: "\n").filter { !$0.hasPrefix(";") && !$0.isEmpty }.map {
            $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).enumerated().filter { $0.offset != 2 }.map { String($0.element) }.joined(separator: " ")
        }
        return (status, answers)
    }
}

@Suite(.serialized) struct DNS64IntegrationTests {
    @Test func answersWhatRFC6147Requires() throws {
        let g = try DNS64Gateway.start()
        defer { g.rig.teardown() }
        // A only: synthesised, TTL = min(A 3600, negative 300).
        #expect(try g.dig("v4only.example.org").answers == ["v4only.example.org. 300 AAAA 2001:db8:64::c000:20a"])
        // Dual stack: the real AAAA.
        #expect(try g.dig("dual.example.org").answers == ["dual.example.org. 3600 AAAA 2001:db8:2::11"])
        // An IPv4-mapped AAAA counts as absent. That answer carried no SOA, so the
        // TTL is the A's capped at 600 s (RFC 6147 §5.1.7).
        let mapped = try g.dig("mapped.example.org")
        #expect(mapped.answers == ["mapped.example.org. 600 AAAA 2001:db8:64::c000:20c"], "\(mapped)")
        // Several A records give several AAAA.
        #expect(try g.dig("multi.example.org").answers.sorted() == ["multi.example.org. 300 AAAA 2001:db8:64::c000:215", "multi.example.org. 300 AAAA 2001:db8:64::c000:216"])
        // A CNAME chain is kept, and synthesis happens at its end.
        #expect(try g.dig("alias.example.org").answers == ["alias.example.org. 3600 CNAME v4only.example.org.", "v4only.example.org. 300 AAAA 2001:db8:64::c000:20a"])
        // A TTL of 30 stays 30.
        #expect(try g.dig("short.example.org").answers == ["short.example.org. 30 AAAA 2001:db8:64::c000:21e"])
        // NXDOMAIN passes through.
        #expect(try g.dig("nothing.example.org").status == "NXDOMAIN")
        // DO and CD: the client validates, so nothing is synthesised.
        let validating = try g.dig("v4only.example.org", extra: ["+dnssec", "+cdflag"])
        #expect(validating.status == "NOERROR" && validating.answers.isEmpty)
        // Over TCP with kdig, the same answer.
        let kdig = try g.rig.run("c6", ["kdig", "+tcp", "+short", "@2001:db8:1::1", "v4only.example.org", "AAAA"])
        #expect(kdig.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "2001:db8:64::c000:20a", "\(kdig)")
    }

    @Test func ptrIpv4onlyAndAccess() throws {
        let g = try DNS64Gateway.start()
        defer { g.rig.teardown() }
        let ptr = try g.dig("2001:db8:64::c000:20a", "PTR", extra: ["-x", "2001:db8:64::c000:20a"])
        #expect(ptr.answers.contains { $0.hasSuffix("PTR v4only.example.org.") }, "\(ptr)")
        // Its TTL, like every synthesised one's, is at most dns64.max_ttl (30 minutes by default).
        #expect(try g.dig("ipv4only.arpa").answers.sorted() == ["ipv4only.arpa. 1800 AAAA 2001:db8:64::c000:aa", "ipv4only.arpa. 1800 AAAA 2001:db8:64::c000:ab"])
        // c4 is not one of the gateway's clients.
        #expect(try g.dig("v4only.example.org", from: "c4", server: "198.51.100.1").status == "REFUSED")
    }

    @Test func wellKnownPrefixSkipsPrivateAddresses() throws {
        let g = try DNS64Gateway.start(prefix: "64:ff9b::/96")
        defer { g.rig.teardown() }
        let p = try g.dig("private.example.org")
        #expect(p.status == "NOERROR" && p.answers.isEmpty, "10.1.2.3 is not represented behind 64:ff9b::/96")
        #expect(try g.dig("global.example.org").answers == ["global.example.org. 300 AAAA 64:ff9b::808:808"])
    }

    @Test func upstreamDownMeansServfailInTime() throws {
        let g = try DNS64Gateway.start()
        defer { g.rig.teardown() }
        #expect(try g.dig("v4only.example.org").status == "NOERROR")
        // An upstream that swallows queries: each attempt ends at its deadline.
        try g.rig.checked("s6", ["nft", "add table ip6 hole; add chain ip6 hole in { type filter hook input priority 0; }; add rule ip6 hole in udp dport 53 drop"])
        let silent = ContinuousClock.now
        #expect(try g.dig("dual.example.org").status == "SERVFAIL")
        let waited = ContinuousClock.now - silent
        #expect(waited >= .milliseconds(1900) && waited < .seconds(3), "2 attempts of 1 s, each ended by its timeout: \(waited)")
        try g.rig.checked("s6", ["nft", "delete table ip6 hole"])
        // An upstream that is gone: refused at once.
        g.rig.stop(g.servers[0])
        // What was answered before is answered from the cache.
        #expect(try g.dig("v4only.example.org").answers.first?.hasPrefix("v4only.example.org.") == true)
        // A hit answers in the client's spelling (dig also checks the ID), with the TTL aged.
        let hit = try g.dig("V4ONLY.Example.org").answers
        #expect(hit.count == 1 && hit[0].hasPrefix("V4ONLY.Example.org. ") && hit[0].hasSuffix(" AAAA 2001:db8:64::c000:20a"), "\(hit)")
        #expect(hit.first.flatMap { Int($0.split(separator: " ")[1]) }.map { (290...300).contains($0) } == true, "\(hit)")
        let start = ContinuousClock.now
        let r = try g.dig("multi.example.org")
        #expect(r.status == "SERVFAIL")
        #expect(ContinuousClock.now - start < .seconds(3), "2 attempts of 1 s")
    }

    @Test func malformedQueriesGetFormerrAndServiceGoesOn() throws {
        let g = try DNS64Gateway.start()
        defer { g.rig.teardown() }
        let script = """
            import socket, os, struct
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.settimeout(0.2)
            formerr = 0
            # A truncated header, random bytes, and a name whose pointer points at itself.
            loop = struct.pack('>HHHHHH', 0x4242, 0x0100, 1, 0, 0, 0) + b'\\xc0\\x0c' + b'\\x00\\x01\\x00\\x01'
            for d in [b"\\x12\\x34\\x01"] + [os.urandom(n) for n in range(12, 40)] + [loop]:
                s.sendto(d, ('2001:db8:1::1', 53))
                try:
                    r = s.recv(4096)
                    if r[3] & 0x0f == 1: formerr += 1
                except socket.timeout: pass
            print(formerr)
            """
        let out = try g.rig.checked("c6", ["python3", "-c", script]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect((Int(out) ?? 0) >= 1, "the compression loop at least gets FORMERR: \(out)")
        #expect(try g.dig("v4only.example.org").answers == ["v4only.example.org. 300 AAAA 2001:db8:64::c000:20a"], "still answering")
    }

    /// Queries sent from each CPU in turn, a new socket (source port) each;
    /// then the server is stopped: its UDP queries per socket, from the stop log.
    static func queriesPerSocket(steering: String, fromCPUs counts: [(cpu: Int, queries: Int)]) throws -> String {
        let g = try DNS64Gateway.start(dns64: "threads = 2\nudp_steering = \"\(steering)\"")
        defer { g.rig.teardown() }
        let script = """
            import os, socket, sys
            answered = 0
            for cpu, n in [\(counts.map { "(\($0.cpu), \($0.queries))" }.joined(separator: ", "))]:
                os.sched_setaffinity(0, {cpu})
                for i in range(n):
                    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.settimeout(2)
                    s.sendto(bytes.fromhex('%04x01000001000000000000' % i) + b'\\x06v4only\\x07example\\x03org\\x00\\x00\\x1c\\x00\\x01', ('2001:db8:1::1', 53))
                    answered += len(s.recv(4096)) > 12
                    s.close()
            print(answered)
            """
        let answered = try g.rig.checked("c6", ["python3", "-c", script]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(answered == String(counts.reduce(0) { $0 + $1.queries }), "every query answered")
        g.rig.stop(g.dns64)
        let log = g.dns64.errors
        return log.split(separator: " ").first { $0.hasPrefix("udp_per_socket=") }.map { String($0.dropFirst("udp_per_socket=".count)).trimmingCharacters(in: .whitespacesAndNewlines) } ?? "none in: \(log)"
    }

    @Test func aQueryIsAnsweredByTheThreadOfTheCPUThatTookItIn() throws {
        try #require(sysconf(Int32(_SC_NPROCESSORS_ONLN)) >= 2, "the test needs two CPUs to tell the threads apart")
        // Two threads, two addresses: sockets v6 #0, v6 #1, v4 #0, v4 #1.
        let perSocket = try Self.queriesPerSocket(steering: "cpu", fromCPUs: [(0, 30), (1, 50)])
        #expect(perSocket == "30/50/0/0", "\(perSocket)")
    }

    @Test func hashSteeringSpreadsOneCPUsQueries() throws {
        try #require(sysconf(Int32(_SC_NPROCESSORS_ONLN)) >= 2, "the test needs two CPUs to tell the threads apart")
        let counts = try Self.queriesPerSocket(steering: "hash", fromCPUs: [(0, 80)]).split(separator: "/").compactMap { Int($0) }
        // 80 source ports all on one of two sockets has odds of 2^-79.
        #expect(counts.count == 4 && counts[0] > 0 && counts[1] > 0 && counts[0] + counts[1] == 80, "\(counts)")
    }
}
