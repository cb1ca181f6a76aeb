import Demo
import Foundation
import Glibc
import NetnsRig
import Testing

/// The multiplexer of `sixgated run`, from a config `sixgatectl apply` made
/// the kernel state for: c4 (IPv4 only) reaches three HTTPS sites and two
/// HTTP sites in s6 (IPv6 only) on one IPv4 address, chosen by the TLS
/// server_name, the HTTP Host and the port; each backend sees the client as
/// prefix::c4, as through an explicit mapping.
@Suite(.serialized) struct MuxIntegrationTests {
    static let mux = "203.0.113.20"
    static let c4in6 = "2001:db8:64::c633:6402"
    static let sites = [("www.example.com", "2001:db8:2::10"), ("mail.example.com", "2001:db8:2::11"), ("shop.example.net", "2001:db8:2::12")]

    /// An HTTPS (with `cert`) or HTTP server on [address]:port that answers
    /// every GET with its name and the client's address, or serves `dir`.
    static let server = """
        import http.server, socket, ssl, sys
        address, port, name, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
        class H(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                if self.path.startswith('/blob'):
                    return super().do_GET()
                body = (name + ' ' + self.client_address[0] + '\\n').encode()
                self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)
        class S(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6
        s = S((address, port), lambda *a: H(*a, directory=sys.argv[6] if len(sys.argv) > 6 else '.'))
        if cert != '-':
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
            s.socket = ctx.wrap_socket(s.socket, server_side=True)
        print('listening', file=sys.stderr, flush=True)
        s.serve_forever()
        """

    func backend(_ rig: NetnsRig, _ address: String, _ port: Int, name: String, tls: Bool, dir: String = ".") throws -> NetnsRig.Process {
        let cert = rig.scratch + "/\(name).crt", key = rig.scratch + "/\(name).key"
        if tls {
            try rig.checked("s6", ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                                   "-subj", "/CN=\(name)", "-addext", "subjectAltName=DNS:\(name)", "-keyout", key, "-out", cert])
        }
        let p = try rig.start("s6", ["python3", "-c", Self.server, address, "\(port)", name, tls ? cert : "-", tls ? key : "-", dir], name: "site-\(name)-\(port)")
        try p.waitForLog("listening")
        return p
    }

    @Test func oneIPv4AddressManyIPv6Sites() throws {
        let rig = try NetnsRig(links: [
            .init(host: "c4", gatewayInterface: "c4", hostAddresses: ["198.51.100.2/24"], gatewayAddresses: ["198.51.100.1/24"]),
            .init(host: "s6", gatewayInterface: "s6", hostAddresses: ["2001:db8:2::2/64"], gatewayAddresses: ["2001:db8:2::1/64"]),
        ])
        defer { rig.teardown() }
        for (_, address) in Self.sites { try rig.checked("s6", ["ip", "addr", "add", address + "/64", "dev", "eth0", "nodad"]) }
        var servers: [NetnsRig.Process] = []
        for (name, address) in Self.sites { servers.append(try backend(rig, address, 443, name: name, tls: true)) }
        let (dir, sha) = try rig.blob(size: 100 << 20)
        servers.append(try backend(rig, "2001:db8:2::10", 80, name: "www.example.com", tls: false, dir: dir))
        servers.append(try backend(rig, "2001:db8:2::11", 80, name: "mail.example.com", tls: false))
        servers.append(try backend(rig, "2001:db8:2::12", 8000, name: "xmpp", tls: false))
        defer { servers.forEach(rig.stop) }

        let config = rig.scratch + "/sixgate.toml"
        let routes443 = Self.sites.map { "[[mux.route]]\nname = \"\($0.0)\"\nbackend = \"[\($0.1)]:443\"\n" }.joined()
        try """
            prefix = "2001:db8:64::/96"
            [gateway]
            uplink4 = "c4"
            inside6 = "s6"
            clients = ["2001:db8:2::/64"]
            [nat64]
            enabled = false
            [dns64]
            enabled = false
            [controller]
            state_dir = "\(rig.scratch)/state"
            bpf_dir = "\(rig.scratch)/bpf"
            control_socket = "\(rig.scratch)/control.sock"
            metrics = "[2001:db8:2::1]:9164"
            [multiplexer]
            peek_timeout = "2s"
            threads = 2
            [[mux]]
            listen = "\(Self.mux):443"
            kind = "tls-sni"
            \(routes443)
            [[mux]]
            listen = "\(Self.mux):80"
            kind = "http-host"
            [[mux.route]]
            name = "www.example.com"
            backend = "[2001:db8:2::10]:80"
            [[mux.route]]
            name = "*.example.com"
            backend = "[2001:db8:2::11]:80"
            [[mux]]
            listen = "\(Self.mux):5222"
            kind = "tcp"
            default = "[2001:db8:2::12]:8000"

            """.write(toFile: config, atomically: true, encoding: .utf8)
        // A backend the gateway reaches only through the IPv4 uplink is refused before anything changes.
        try rig.checked("gw", ["ip", "-6", "addr", "add", "2001:db8:98::1/64", "dev", "c4", "nodad"])
        let stray = rig.scratch + "/stray.toml"
        try (try String(contentsOfFile: config, encoding: .utf8)).replacingOccurrences(of: "[2001:db8:2::10]:443", with: "[2001:db8:98::10]:443")
            .write(toFile: stray, atomically: true, encoding: .utf8)
        let refused = try runProduct("sixgatectl", ["apply", stray, "--netns", rig.ns("gw")])
        #expect(refused.status == 1 && refused.stderr.contains("the backend [2001:db8:98::10]:443 of mux[0] www.example.com goes to c4 (route 2001:db8:98::/64), not to the IPv6 side"),
                "\(refused)")
        #expect(!(try rig.checked("gw", ["ip", "-6", "rule"]).stdout.contains("0x5347")), "nothing was applied")
        let applied = try runProduct("sixgatectl", ["apply", config, "--netns", rig.ns("gw")])
        try #require(applied.succeeded, "\(applied)")
        #expect(applied.stdout.contains("local 203.0.113.20/32 dev lo table local") && applied.stdout.contains("fwmark 0x5347 lookup 5347"), "\(applied)")
        let (daemon, _) = try rig.startNotifying("gw", [binDir + "/sixgated", "run", "--config", config], name: "sixgated")
        defer { rig.stop(daemon) }
        func counters() throws -> [String: Int] {
            let status = try runProduct("sixgatectl", ["status", config, "--json"]).stdout
            let parts = (try JSONSerialization.jsonObject(with: Data(status.utf8)) as? [String: Any])?["parts"] as? [[String: Any]]
            return parts?.first { $0["name"] as? String == "mux" }?["counters"] as? [String: Int] ?? [:]
        }

        // Three HTTPS sites on one address and port, each from its own backend,
        // which sees the client as prefix::c4; TLS end to end (curl checks each certificate).
        for (name, _) in Self.sites {
            let r = try rig.run("c4", ["curl", "-sS", "--max-time", "5", "--cacert", rig.scratch + "/\(name).crt", "--resolve", "\(name):443:\(Self.mux)", "https://\(name)/"])
            #expect(r.succeeded && r.stdout == "\(name) \(Self.c4in6)\n", "\(r)")
        }
        // By Host, a wildcard route too; and a port alone.
        let http = try rig.run("c4", ["curl", "-sS", "--max-time", "5", "-H", "Host: webmail.example.com", "http://\(Self.mux)/"])
        #expect(http.stdout == "mail.example.com \(Self.c4in6)\n", "\(http)")
        let tcp = try rig.run("c4", ["curl", "-sS", "--max-time", "5", "http://\(Self.mux):5222/"])
        #expect(tcp.stdout == "xmpp \(Self.c4in6)\n", "\(tcp)")
        // A name no route takes, with no default: reset.
        let unknown = try rig.run("c4", ["curl", "-sS", "--max-time", "5", "-k", "--resolve", "other.example.org:443:\(Self.mux)", "https://other.example.org/"])
        #expect(!unknown.succeeded, "\(unknown)")

        // A ClientHello in three segments, with pauses between them, is routed.
        let split = """
            import socket, sys, time
            hello = bytes.fromhex(open(sys.argv[1]).read().replace('\\n', ''))
            s = socket.create_connection(('\(Self.mux)', 443), timeout=5)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for part in (hello[:7], hello[7:120], hello[120:]):
                s.send(part); time.sleep(0.3)  # what is tested: segments that arrive apart
            reply = s.recv(5)
            sys.exit(0 if reply[:1] == b'\\x16' else 1)
            """
        let hello = repoRoot + "/Tests/MuxTests/openssl-hello.hex"
        #expect(try rig.run("c4", ["python3", "-c", split, hello]).succeeded, "the backend's ServerHello came back")

        // Slowloris, junk and an oversized head are closed and counted; 1,000
        // idle connections do not keep a new client from being served.
        let abuse = """
            import resource, socket, sys, time
            resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
            idle = [socket.create_connection(('\(Self.mux)', 443), timeout=5) for _ in range(1000)]
            slow = socket.create_connection(('\(Self.mux)', 443), timeout=5)
            junk = socket.create_connection(('\(Self.mux)', 443), timeout=5); junk.send(b'SSH-2.0-OpenSSH_9.2\\r\\n')
            big = socket.create_connection(('\(Self.mux)', 80), timeout=5); big.send(b'GET / HTTP/1.1\\r\\nX: ' + b'a' * 20000)
            print('open', file=sys.stderr, flush=True)
            for b in b'\\x16\\x03\\x01\\x01\\x3c\\x01':
                try:
                    slow.send(bytes([b])); time.sleep(0.5)  # what is tested: a byte every half second
                except OSError:
                    break
            # Until the multiplexer has closed each (its peek timeout, 2 s,
            # or the invalid head): then it has counted them.
            end = time.time() + 10
            for s in idle + [slow, junk, big]:
                s.settimeout(max(0.01, end - time.time()))
                try:
                    while s.recv(4096): pass
                except OSError:
                    pass
            """
        let abuser = try rig.start("c4", ["python3", "-c", abuse], name: "abuse")
        try abuser.waitForLog("open", deadline: .seconds(20))
        let served = try rig.run("c4", ["curl", "-sS", "--max-time", "5", "--cacert", rig.scratch + "/www.example.com.crt", "--resolve", "www.example.com:443:\(Self.mux)",
                                        "https://www.example.com/"])
        let during = try counters()
        #expect(served.succeeded && (during["connections_open"] ?? 0) >= 1000, "\(served) with \(during)")
        _ = Spawn.wait(abuser.pid, timeout: .seconds(20))
        let counted = try counters()
        let tls = "\(Self.mux):443", plain = "\(Self.mux):80"
        #expect((counted["\(tls) invalid"] ?? 0) >= 1 && (counted["\(plain) invalid"] ?? 0) >= 1, "junk and the oversized head: \(counted)")
        #expect((counted["\(tls) peek_timeouts"] ?? 0) >= 1000, "the slow and the idle ones: \(counted)")
        #expect(counted["\(tls) no_match"] == 1 && counted["\(tls) www.example.com connections"] == 3, "\(counted)")
        // The same for Prometheus, the address and route as labels.
        let scrape = try rig.run("s6", ["curl", "-sS", "--max-time", "5", "http://[2001:db8:2::1]:9164/metrics"]).stdout
        #expect(scrape.contains("sixgate_mux_route_connections_total{listen=\"\(tls)\",route=\"www.example.com\"} 3")
                && scrape.contains("sixgate_mux_no_match_total{listen=\"\(tls)\"} 1"), "\(scrape)")

        // 100 MB through the multiplexer, whole.
        let fetched = try rig.run("c4", ["sh", "-c", "curl -sS --max-time 60 -H 'Host: www.example.com' http://\(Self.mux)/blob | sha256sum"], timeout: .seconds(90))
        #expect(fetched.stdout.hasPrefix(sha), "\(fetched)")
        #expect((try counters()["\(Self.mux):80 www.example.com bytes_down"] ?? 0) > 100 << 20)
        // Clients that ask for it and close at once: their FIN, then their
        // RST when the answer comes, make the relay's next write fail with
        // EPIPE (and SIGPIPE, for splice); the multiplexer goes on, in the
        // same process.
        let resets = """
            import socket, time
            for _ in range(5):
                s = socket.create_connection(('\(Self.mux)', 80), timeout=5)
                s.send(b'GET /blob HTTP/1.1\\r\\nHost: www.example.com\\r\\n\\r\\n')
                s.close()
                time.sleep(0.2)  # one at a time, each on its own
            """
        let routed = try counters()["\(Self.mux):80 www.example.com connections"] ?? 0
        #expect(try rig.run("c4", ["python3", "-c", resets]).succeeded)
        // Each relayed and closed on the multiplexer's side (its writes met the reset).
        var afterResets: [String: Int] = [:]
        try waitUntil("the five reset connections routed and closed: \(afterResets)", deadline: .seconds(10), poll: .milliseconds(100)) {
            afterResets = try counters()
            return afterResets["\(Self.mux):80 www.example.com connections"] == routed + 5 && afterResets["connections_open"] == 0
        }
        #expect(afterResets["restarts"] == 0, "\(afterResets)")
        let stillServes = try rig.run("c4", ["curl", "-sS", "--max-time", "5", "-H", "Host: webmail.example.com", "http://\(Self.mux)/"])
        #expect(stillServes.stdout == "mail.example.com \(Self.c4in6)\n", "\(stillServes)")

        // verify tries every route from the gateway: each answers.
        let verify = try runProduct("sixgatectl", ["verify", config, "--netns", rig.ns("gw"), "--json"])
        let checks = (try JSONSerialization.jsonObject(with: Data(verify.stdout.utf8)) as? [String: Any])?["checks"] as? [[String: Any]] ?? []
        let muxChecks = checks.filter { ($0["name"] as? String ?? "").hasPrefix("mux \(Self.mux)") }
        #expect(verify.succeeded && muxChecks.count == 6 && muxChecks.allSatisfy { $0["ok"] as? Bool == true }, "\(verify)")
        rig.stop(servers[1])
        let broken = try runProduct("sixgatectl", ["verify", config, "--netns", rig.ns("gw"), "--json"])
        let failed = ((try JSONSerialization.jsonObject(with: Data(broken.stdout.utf8)) as? [String: Any])?["checks"] as? [[String: Any]] ?? [])
            .filter { $0["ok"] as? Bool == false }.compactMap { $0["name"] as? String }
        #expect(broken.status == 2 && failed == ["mux \(Self.mux):443 mail.example.com"], "a stopped backend is found: \(broken)")

        // remove takes the rule and the local routes with the rest.
        rig.stop(daemon)
        let removed = try runProduct("sixgatectl", ["remove", config, "--netns", rig.ns("gw")])
        #expect(removed.succeeded, "\(removed)")
        #expect(!(try rig.checked("gw", ["ip", "-6", "rule"]).stdout.contains("0x5347")))
        #expect(!(try rig.checked("gw", ["ip", "route", "show", "table", "local"]).stdout.contains("203.0.113.20")))
    }

    /// A [[mux]] address mapped alone: the translator (tc-BPF where it
    /// loads) turns c4's connections into IPv6 from prefix::c4 to the
    /// mapping's IPv6 side, which the gateway owns. The multiplexer listens
    /// there for the http-host entry; the tcp entry is a DNAT in the kernel,
    /// with no socket of sixgate's on its port. Both backends see prefix::c4.
    @Test func aMappedAddressSendsItsTcpEntryThroughTheKernel() throws {
        let demo = try DemoGateway(bin: binDir) {
            $0.replacingOccurrences(of: "[dns64]\n", with: """
                [[nat64.eam]]
                ipv4 = "203.0.113.20"
                ipv6 = "2001:db8:ff::20"
                [[mux]]
                listen = "203.0.113.20:80"
                kind = "http-host"
                [[mux.route]]
                name = "www.example.com"
                backend = "[2001:db8:2::10]:8000"
                [[mux]]
                listen = "203.0.113.20:5222"
                kind = "tcp"
                default = "[2001:db8:2::10]:8001"
                [dns64]

                """)
        }
        let rig = demo.rig
        defer { rig.teardown() }
        let servers = [try backend(rig, "2001:db8:2::10", 8000, name: "web", tls: false), try backend(rig, "2001:db8:2::10", 8001, name: "xmpp", tls: false)]
        defer { servers.forEach(rig.stop) }

        let web = try rig.run("c4", ["curl", "-sS", "--max-time", "5", "-H", "Host: www.example.com", "http://203.0.113.20/"])
        #expect(web.stdout == "web \(DemoGateway.c4in6)\n", "through the translator to the multiplexer: \(web)")
        let xmpp = try rig.run("c4", ["curl", "-sS", "--max-time", "5", "http://203.0.113.20:5222/"])
        #expect(xmpp.stdout == "xmpp \(DemoGateway.c4in6)\n", "through the kernel: \(xmpp)")
        let counter = try rig.checked("gw", ["nft", "list", "counter", "inet", "sixgate", "mux_kernel_connections"]).stdout
        #expect(counter.contains("packets 1 "), "one connection, one DNAT: \(counter)")
        let sockets = try rig.checked("gw", ["ss", "-Htln"]).stdout
        #expect(sockets.contains("[2001:db8:ff::20]:80") && !sockets.contains(":5222"), "no process in the tcp entry's path: \(sockets)")
        let mux = try demo.counters("mux")
        #expect(mux["203.0.113.20:80 www.example.com connections"] == 1 && !mux.keys.contains { $0.hasPrefix("203.0.113.20:5222") }, "\(mux)")
        // The gateway answers a ping to the shared address: it owns the IPv6 side.
        #expect(try rig.run("c4", ["ping", "-n", "-c", "1", "-W", "2", "203.0.113.20"]).succeeded)

        let verify = try runProduct("sixgatectl", ["verify", demo.config, "--netns", rig.ns("gw"), "--json"])
        let checks = ((try JSONSerialization.jsonObject(with: Data(verify.stdout.utf8)) as? [String: Any])?["checks"] as? [[String: Any]] ?? [])
            .filter { ($0["name"] as? String ?? "").hasPrefix("mux 203.0.113.20") }
        #expect(checks.count == 2 && checks.allSatisfy { $0["ok"] as? Bool == true }, "\(verify)")
    }

    /// `publish` of examples/full.toml loads into NSD (nsd-checkzone) as
    /// the example.com zone, whose server then answers with the records.
    @Test func publishedRecordsLoadIntoNSD() throws {
        let rig = try NetnsRig.standard()
        defer { rig.teardown() }
        let published = try runProduct("sixgatectl", ["publish", repoRoot + "/examples/full.toml", "--zone", "example.com"])
        try #require(published.succeeded, "\(published)")
        #expect(!published.stdout.contains("mail.example.org"), "only the zone's records: \(published.stdout)")
        let zone = "$TTL 300\n@ IN SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 300\n@ IN NS ns.example.com.\nns IN AAAA 2001:db8:2::2\n"
            + published.stdout
        let file = rig.scratch + "/example.com.zone"
        try zone.write(toFile: file, atomically: true, encoding: .utf8)
        let checked = try rig.run("s6", ["nsd-checkzone", "example.com", file])
        #expect(checked.succeeded, "\(checked)\n\(zone)")
        let nsd = try rig.nsd("s6", "2001:db8:2::2", zones: [("example.com", zone)])
        defer { rig.stop(nsd) }
        func dig(_ name: String, _ type: String) throws -> String {
            try rig.run("c6", ["dig", "+short", "+time=2", "+tries=2", "@2001:db8:2::2", name, type]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(try dig("www.example.com", "A") == "198.51.100.20")
        #expect(try dig("shop.example.com", "A") == "198.51.100.20", "the wildcard route")
        #expect(try dig("_xmpp-client._tcp.example.com", "SRV") == "0 0 5222 xmpp.example.com.")
        #expect(try dig("6bed4.example.com", "AAAA") == "2001:db8:6b:bed::")
    }
}
