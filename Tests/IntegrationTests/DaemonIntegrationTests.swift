import Foundation
import Glibc
import NetnsRig
import Testing

@Suite(.serialized) struct DaemonIntegrationTests {
    /// Where BPF is denied (here: sixgatectl and sixgated without CAP_BPF,
    /// CAP_SYS_ADMIN and CAP_PERFMON), with `auto` apply says why it leaves
    /// the program out, the daemon runs the TUN datapath and status says
    /// why; with `kernel` apply refuses before it changes anything, and the
    /// daemon refuses to run, each saying why.
    @Test func autoFallsBackWhereBPFIsDenied() throws {
        let rig = try NetnsRig.standard()
        defer { rig.teardown() }
        let config = rig.scratch + "/sixgate.toml"
        try TranslatorGateway.configText(scratch: rig.scratch)
            .replacingOccurrences(of: "[controller]\n", with: "[controller]\ncontrol_socket = \"\(rig.scratch)/control.sock\"\n")
            .write(toFile: config, atomically: true, encoding: .utf8)
        // (In the namespace already: setns needs CAP_SYS_ADMIN.)
        let denied = ["setpriv", "--bounding-set", "-bpf,-sys_admin,-perfmon"]
        let applied = try rig.run("gw", denied + [binDir + "/sixgatectl", "apply", config])
        #expect(applied.succeeded && applied.stderr.contains("warning: nat64.datapath = auto, and the tc-BPF program cannot run here (")
                && applied.stderr.contains("Operation not permitted") && !applied.stdout.contains("bpf"), "\(applied)")
        let (daemon, _) = try rig.startNotifying("gw", denied + [binDir + "/sixgated", "run", "--config", config], name: "sixgated")
        let status = try runProduct("sixgatectl", ["status", config, "--json"])
        let parts = (try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])?["parts"] as? [[String: Any]]
        let detail = (parts?.first?["detail"] as? [String])?.first ?? "none: \(status) \(daemon.errors)"
        #expect(detail.hasPrefix("datapath tun (userspace), 2 queue(s) on sg-nat64: nat64.datapath = auto, and the kernel datapath cannot run: no tc-BPF program is pinned in "),
                "\(detail)")
        let ping = try rig.run("c6", ["ping", "-c", "2", "-W", "2", TranslatorGateway.s4in6])
        #expect(ping.succeeded, "the TUN datapath translates: \(ping)")
        rig.stop(daemon)

        try TranslatorGateway.configText(scratch: rig.scratch, datapath: "kernel").write(toFile: config, atomically: true, encoding: .utf8)
        let refused = try rig.run("gw", denied + [binDir + "/sixgatectl", "apply", config])
        #expect(refused.status == 1 && refused.stderr.contains("nat64.datapath = kernel, but the tc-BPF program cannot run here: ")
                && refused.stderr.contains("Operation not permitted\nnothing was changed"), "\(refused)")
        let kernel = try rig.start("gw", denied + [binDir + "/sixgated", "translate", "--config", config], name: "translate-kernel")
        #expect(Spawn.wait(kernel.pid, timeout: .seconds(10)) == 1, "\(kernel.errors)")
        #expect(kernel.errors.contains("nat64.datapath = kernel, and the kernel datapath cannot run: no tc-BPF program is pinned in "), "\(kernel.errors)")
    }

    /// `sixgated run` runs the translator, DNS64 and the 6bed4 router of one
    /// config, each in its own process with only the capabilities it needs:
    /// c6 resolves an IPv4-only name through DNS64 and reaches it through
    /// the translator; `verify` finds them agreeing. A crash of DNS64's
    /// process interrupts neither the translator nor the router, and DNS64
    /// is back within two seconds. It tells systemd when it is ready, feeds
    /// its watchdog, and stops cleanly on SIGTERM.
    @Test func oneDaemonRunsTheTranslatorAndDNS64() throws {
        let rig = try NetnsRig.standard()
        defer { rig.teardown() }
        _ = try DNS64Gateway.startNSD(rig)
        let config = rig.scratch + "/sixgate.toml"
        try (TranslatorGateway.configText(scratch: rig.scratch).replacingOccurrences(of: "[dns64]\nenabled = false\n", with: "") + """

            [dns64]
            listen = ["[2001:db8:1::1]:53"]
            upstreams = ["[2001:db8:2::2]:53"]
            [sixbedfour]
            enabled = true
            address4 = "203.0.113.1"
            prefix = "2001:db8:6bed:4::/64"

            """).replacingOccurrences(of: "[controller]\n", with: "[controller]\ncontrol_socket = \"\(rig.scratch)/control.sock\"\nmetrics = \"[2001:db8:1::1]:9164\"\n")
            .replacingOccurrences(of: "ipv6 = \"2001:db8:2::2/128\"\n", with: "ipv6 = \"2001:db8:2::2/128\"\nname = \"s6.example.org\"\n")
            .write(toFile: config, atomically: true, encoding: .utf8)
        let applied = try runProduct("sixgatectl", ["apply", config, "--netns", rig.ns("gw")])
        try #require(applied.succeeded, "\(applied)")
        let notify = try NotifySocket(path: rig.scratch + "/notify.sock")
        // With no more capabilities than the systemd unit grants.
        let unit = try String(contentsOfFile: repoRoot + "/dist/systemd/sixgate.service", encoding: .utf8)
        let granted = try #require(unit.split(separator: "\n").first { $0.hasPrefix("CapabilityBoundingSet=") }).dropFirst("CapabilityBoundingSet=".count)
            .split(separator: " ").map { "+" + $0.dropFirst("CAP_".count).lowercased() }
        let bounded = ["setpriv", "--bounding-set", (["-all"] + granted).joined(separator: ",")]
        let daemon = try rig.start("gw", bounded + ["env", "NOTIFY_SOCKET=\(notify.path)", "WATCHDOG_USEC=400000", binDir + "/sixgated", "run", "--config", config],
                                   name: "sixgated")

        let messages = notify.receive(until: "READY=1", timeout: .seconds(10))
        #expect(messages.contains { $0.contains("READY=1") && $0.contains("STATUS=serving: translator, dns64, 6bed4") }, "\(messages)\n\(daemon.errors)")
        // 1.2 s of pings every 200 ms (half of WATCHDOG_USEC): at least four.
        let watchdog = notify.receive(until: "nothing ends this", timeout: .milliseconds(1200))
        #expect(watchdog.filter { $0.contains("WATCHDOG=1") }.count >= 4, "pings at half of WATCHDOG_USEC: \(watchdog)")
        #expect(daemon.errors.contains("sixgated[translator]: translator ready") && daemon.errors.contains("sixgated[dns64]: dns64 ready"), "\(daemon.errors)")

        let answer = try rig.run("c6", ["dig", "+short", "+time=2", "+tries=2", "@2001:db8:1::1", "s4.example.org", "AAAA"]).stdout
        #expect(answer.trimmingCharacters(in: .whitespacesAndNewlines) == TranslatorGateway.s4in6, "\(answer)\n\(daemon.errors)")
        // A name the gateway publishes is answered here as the world sees it
        // (A) and, for AAAA, with the server's own IPv6 address.
        let published = try rig.run("c6", ["dig", "+short", "+time=2", "@2001:db8:1::1", "s6.example.org", "AAAA", "s6.example.org", "A"]).stdout
        #expect(published.split(separator: "\n") == ["2001:db8:2::2", "203.0.113.10"], "\(published)")
        let ping = try rig.run("c6", ["ping", "-c", "2", "-W", "2", TranslatorGateway.s4in6])
        #expect(ping.succeeded, "\(ping)\n\(daemon.errors)")

        // status over the control socket: both parts, what they do, their counters.
        let status = try runProduct("sixgatectl", ["status", config, "--json"])
        try #require(status.succeeded, "\(status)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        let parts = try #require(json["parts"] as? [[String: Any]])
        #expect(parts.map { $0["name"] as? String } == ["translator", "dns64", "6bed4"] && parts.allSatisfy { $0["state"] as? String == "serving" }, "\(parts)")
        #expect(json["prefix"] as? String == "2001:db8:64::/96")
        let translator = try #require(parts.first?["counters"] as? [String: Int])
        // The first ping's packet made the pool mapping in userspace; the kernel translated the rest.
        #expect((translator["6to4"] ?? 0) >= 1 && (translator["kernel_6to4"] ?? 0) >= 1 && translator["pool_mappings"] == 1
                && translator["pool_addresses"] == 128, "\(translator)")
        #expect((parts.first?["detail"] as? [String])?.first == "datapath kernel (tc-BPF on sg-nat64), its slow path tun (userspace), 2 queue(s) on sg-nat64: "
                + "nat64.datapath = auto, and the tc-BPF program is attached", "\(parts)")
        let dns64 = try #require(parts[1]["counters"] as? [String: Int])
        #expect(dns64["queries"] == 3 && dns64["synthesized"] == 1 && dns64["local"] == 2, "\(dns64)")
        #expect(dns64.filter { $0.key.hasPrefix("udp_socket_") }.values.reduce(0, +) == 3, "each UDP socket's count reaches status: \(dns64)")
        let mode = try FileManager.default.attributesOfItem(atPath: rig.scratch + "/control.sock")[.posixPermissions] as? Int
        #expect(mode == 0o600, "the control socket is root's only")
        let text = try runProduct("sixgatectl", ["status", config])
        #expect(text.succeeded && text.stdout.contains("translator: serving") && text.stdout.contains("dns64: serving"), "\(text)")

        // DNS64's rate over the last seconds: 300 queries in about a second.
        let burst = """
            import socket, time
            q = bytes.fromhex('123401000001000000000000') + b'\\x02s4\\x07example\\x03org\\x00\\x00\\x1c\\x00\\x01'
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.settimeout(2)
            for i in range(300):  # paced over about a second: the rate is what status is to show
                s.sendto(q, ('2001:db8:1::1', 53)); s.recv(4096); time.sleep(0.003)
            """
        try rig.checked("c6", ["python3", "-c", burst])
        // 300 queries over a window of at most ten seconds (less if the
        // daemon is younger), once DNS64's next sample (every second) has them.
        var rated = ""
        try waitUntil("status to show DNS64's qps of the burst: \(rated)", deadline: .seconds(5), poll: .milliseconds(100)) {
            rated = try runProduct("sixgatectl", ["status", config, "--json"]).stdout
            let qps = ((try JSONSerialization.jsonObject(with: Data(rated.utf8)) as? [String: Any])?["parts"] as? [[String: Any]])?[1]["counters"] as? [String: Int]
            return (20...300).contains(qps?["qps"] ?? 0)
        }

        // The same counters for Prometheus.
        let scrape = try rig.run("c6", ["curl", "-sS", "--max-time", "5", "http://[2001:db8:1::1]:9164/metrics"])
        #expect(scrape.succeeded && scrape.stdout.contains("# TYPE sixgate_dns64_queries_total counter"), "\(scrape)")
        let queries = scrape.stdout.split(separator: "\n").first { $0.hasPrefix("sixgate_dns64_queries_total ") }.flatMap { Int($0.split(separator: " ").last ?? "") }
        #expect((queries ?? 0) >= 301, "\(scrape.stdout)")
        #expect(scrape.stdout.contains(#"sixgate_part_up{part="sixbedfour"} 1"#) && scrape.stdout.contains("sixgate_translator_6to4_total ")
                && scrape.stdout.contains("sixgate_translator_kernel_6to4_total "), "\(scrape.stdout)")
        #expect(scrape.stdout.contains("# TYPE sixgate_dns64_qps gauge"), "\(scrape.stdout)")
        let missing = try rig.run("c6", ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "http://[2001:db8:1::1]:9164/"])
        #expect(missing.stdout == "404", "\(missing)")

        // verify exercises each part: all agree; then a rule deleted by hand is found.
        let verify = try runProduct("sixgatectl", ["verify", config, "--netns", rig.ns("gw"), "--json"])
        #expect(verify.succeeded, "\(verify)")
        let checks = try #require((try JSONSerialization.jsonObject(with: Data(verify.stdout.utf8)) as? [String: Any])?["checks"] as? [[String: Any]])
        var observed: [String: String] = [:]
        for c in checks { observed[c["name"] as? String ?? "?"] = c["observed"] as? String }
        #expect(observed["DNS64 ipv4only.arpa AAAA"] == "2001:db8:64::c000:aa, 2001:db8:64::c000:ab", "\(observed)")
        #expect(observed["6bed4 RA PREF64"] == "2001:db8:64::/96" && observed["translator prefix (daemon)"] == "2001:db8:64::/96", "\(observed)")
        #expect(observed["nftables"] == "no drift" && observed["routes, links, addresses"] == "no drift", "\(observed)")
        #expect(checks.allSatisfy { $0["ok"] as? Bool == true }, "\(checks)")
        let table = try runProduct("sixgatectl", ["verify", config, "--netns", rig.ns("gw")])
        #expect(table.succeeded && table.stdout.contains("6bed4 RA PREF64") && !table.stdout.contains("FAIL"), "\(table)")
        try rig.checked("gw", ["nft", "flush", "chain", "inet", "sixgate", "postrouting"])
        let broken = try runProduct("sixgatectl", ["verify", config, "--netns", rig.ns("gw"), "--json"])
        let brokenChecks = (try JSONSerialization.jsonObject(with: Data(broken.stdout.utf8)) as? [String: Any])?["checks"] as? [[String: Any]] ?? []
        let failed = brokenChecks.filter { $0["ok"] as? Bool == false }.compactMap { $0["name"] as? String }
        #expect(broken.status == 2 && failed == ["nftables"], "only the nftables check fails: \(broken)")
        #expect(try runProduct("sixgatectl", ["apply", config, "--netns", rig.ns("gw")]).succeeded)
        #expect(try runProduct("sixgatectl", ["verify", config, "--netns", rig.ns("gw")]).succeeded, "repaired by apply")

        // Each part runs in its own process with only the capabilities it
        // needs: the translator the network and BPF, DNS64 port 53, the
        // router the network (its port is above 1024).
        let pids = Dictionary(uniqueKeysWithValues: parts.compactMap { p in (p["pid"] as? Int).map { (p["name"] as? String ?? "?", Int32($0)) } })
        try #require(Set(pids.keys) == ["translator", "dns64", "6bed4"] && Set(pids.values).count == 3 && !pids.values.contains(daemon.pid), "\(parts)")
        func capabilities(_ pid: Int32) throws -> UInt64 {
            let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            let line = status.split(separator: "\n").first { $0.hasPrefix("CapEff:") } ?? ""
            return UInt64(line.split(separator: "\t").last ?? "", radix: 16) ?? .max
        }
        let netBindService: UInt64 = 1 << 10, netAdmin: UInt64 = 1 << 12, perfmon: UInt64 = 1 << 38, bpf: UInt64 = 1 << 39
        let kept = try pids.mapValues(capabilities)
        #expect(kept == ["translator": netAdmin | bpf | perfmon, "dns64": netBindService, "6bed4": netAdmin],
                "\(kept.mapValues { String($0, radix: 16) })\n\(daemon.errors)")

        // SIGUSR1 to the daemon: the router's process logs its counters.
        kill(daemon.pid, SIGUSR1)
        try daemon.waitForLog("sixgated[6bed4]: 6bed4 counters: ", deadline: .seconds(5))

        // DNS64's process crashes (SIGSEGV) while c6 pings s4 through the
        // translator and a 6bed4 peer out on the IPv4 side (in s4) pings s6
        // through the router: neither loses a packet, and DNS64 answers
        // again within two seconds.
        let peer = try rig.start("s4", [binDir + "/6bed4peer", "--server", "203.0.113.1", "--default-route"], name: "peer")
        try peer.waitForLog("address ")
        let pings = try rig.start("c6", ["ping", "-c", "40", "-i", "0.1", "-W", "1", TranslatorGateway.s4in6], name: "ping")
        let tunnelled = try rig.start("s4", ["ping", "-6", "-n", "-c", "40", "-i", "0.1", "-W", "1", "2001:db8:2::2"], name: "ping6bed4")
        // Both flows under way before the crash: a few replies each.
        try waitUntil("replies to both pings\n\(pings.output)\n\(tunnelled.output)", deadline: .seconds(10)) {
            [pings, tunnelled].allSatisfy { $0.output.components(separatedBy: "icmp_seq=").count > 3 }
        }
        kill(pids["dns64"]!, SIGSEGV)
        let crashed = ContinuousClock.now
        var answered: Duration?
        while answered == nil, ContinuousClock.now - crashed < .seconds(5) {
            let a = try rig.run("c6", ["dig", "+short", "+time=1", "+tries=1", "@2001:db8:1::1", "s4.example.org", "AAAA"]).stdout
            if a.trimmingCharacters(in: .whitespacesAndNewlines) == TranslatorGateway.s4in6 { answered = ContinuousClock.now - crashed }
        }
        #expect(answered.map { $0 <= .seconds(2) } == true, "DNS64 answered again after \(String(describing: answered))\n\(daemon.errors)")
        #expect(daemon.errors.contains("dns64 failed: killed by signal SIGSEGV"), "\(daemon.errors)")
        #expect(Spawn.wait(pings.pid, timeout: .seconds(15)) == 0, "\(pings.output)")
        #expect(pings.output.contains(" 0% packet loss"), "translation was not interrupted: \(pings.output)")
        #expect(Spawn.wait(tunnelled.pid, timeout: .seconds(15)) == 0, "\(tunnelled.output)")
        #expect(tunnelled.output.contains(" 0% packet loss"), "6bed4 routing was not interrupted: \(tunnelled.output)")
        let after = try runProduct("sixgatectl", ["status", config, "--json"]).stdout
        let afterParts = (try JSONSerialization.jsonObject(with: Data(after.utf8)) as? [String: Any])?["parts"] as? [[String: Any]] ?? []
        let restarts = Dictionary(uniqueKeysWithValues: afterParts.map { ($0["name"] as? String ?? "?", ($0["counters"] as? [String: Int])?["restarts"] ?? -1) })
        #expect(restarts == ["translator": 0, "dns64": 1, "6bed4": 0] && afterParts.allSatisfy { $0["state"] as? String == "serving" }, "\(after)")
        #expect(afterParts.first { $0["name"] as? String == "translator" }?["pid"] as? Int == Int(pids["translator"]!), "the translator's process went on")
        rig.stop(peer)

        // A fault injected over the control socket fails a part as a crash
        // would: the router comes back serving.
        #expect(try runProduct("sixgatectl", ["inject-fault", "6bed4", config]).succeeded)
        var during = ""
        try waitUntil("status to show the router failed: \(during)", deadline: .seconds(5), poll: .milliseconds(50)) {
            during = try runProduct("sixgatectl", ["status", config]).stdout
            return during.contains("6bed4: failed: ")
        }
        #expect(during.contains("6bed4: failed: fault injected over the control socket; restarting in 1s"), "\(during)")
        var router = ""
        try waitUntil("the router to serve again after its restart: \(router)", deadline: .seconds(10), poll: .milliseconds(100)) {
            router = try runProduct("sixgatectl", ["status", config, "--json"]).stdout
            let routerPart = ((try JSONSerialization.jsonObject(with: Data(router.utf8)) as? [String: Any])?["parts"] as? [[String: Any]])?.first { $0["name"] as? String == "6bed4" }
            return routerPart?["state"] as? String == "serving" && (routerPart?["counters"] as? [String: Int])?["restarts"] == 1
        }

        kill(daemon.pid, SIGTERM)
        #expect(Spawn.wait(daemon.pid, timeout: .seconds(5)) == 0, "\(daemon.errors)")
        #expect(daemon.errors.contains("translator stopping; counters: 6to4=") && daemon.errors.contains("dns64 stopping; counters: queries="), "\(daemon.errors)")
        // The socket goes with the daemon, and status says nobody answers.
        #expect(!FileManager.default.fileExists(atPath: rig.scratch + "/control.sock"))
        let none = try runProduct("sixgatectl", ["status", config])
        #expect(none.status == 1 && none.stderr.contains("cannot reach sixgated"), "\(none)")
    }

    /// A part that is not enabled in the config is refused by name.
    @Test func aDisabledPartIsRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sgt-daemon-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = dir + "/sixgate.toml"
        try TranslatorGateway.configText(scratch: dir).write(toFile: config, atomically: true, encoding: .utf8)
        let r = try runProduct("sixgated", ["dns64", "--config", config], timeout: .seconds(10))
        #expect(r.status == 1 && r.stderr.contains("dns64.enabled is false"), "\(r)")
    }
}
