import Foundation
import Glibc
import NetnsRig
import Testing

/// A gateway namespace with the interfaces the example configs name (eth0, eth1).
func gatewayRig() throws -> NetnsRig {
    let rig = try NetnsRig(links: [])
    try rig.checked("gw", ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1"])
    try rig.checked("gw", ["ip", "link", "set", "eth0", "up"])
    try rig.checked("gw", ["ip", "link", "set", "eth1", "up"])
    return rig
}

/// sixgatectl against the rig's gw namespace, with the config's state
/// directory in the rig's scratch space (apply keeps the prefix history
/// there): tests never share it, nor write the host's /var/lib/sixgate.
func ctl(_ rig: NetnsRig, _ command: String, _ config: String, _ extra: [String] = []) throws -> CommandResult {
    try runProduct("sixgatectl", [command, try isolated(config, in: rig), "--netns", rig.ns("gw")] + extra)
}

/// A copy of `config` (same file name; the lines before [controller] keep
/// their numbers) whose
/// controller.state_dir and bpf_dir are in the rig's scratch space; a
/// missing file as it is.
func isolated(_ config: String, in rig: NetnsRig) throws -> String {
    guard let text = try? String(contentsOfFile: config, encoding: .utf8) else { return config }
    let stateDir = "state_dir = \"\(rig.scratch)/state\"\nbpf_dir = \"\(rig.scratch)/bpf\""
    var lines = text.components(separatedBy: "\n").map { $0.hasPrefix("bpf_dir") ? "" : $0 }
    if let i = lines.firstIndex(where: { $0.hasPrefix("state_dir") }) {
        lines[i] = stateDir
    } else if let i = lines.firstIndex(of: "[controller]") {
        lines.insert(stateDir, at: i + 1)
    } else {
        lines += ["[controller]", stateDir]
    }
    let dir = rig.scratch + "/isolated"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let copy = dir + "/" + (config as NSString).lastPathComponent
    try lines.joined(separator: "\n").write(toFile: copy, atomically: true, encoding: .utf8)
    return copy
}

/// Everything that apply could touch, as text: the whole ruleset, all routes
/// of both families, all links and addresses, and the forwarding sysctls.
func snapshot(_ rig: NetnsRig) throws -> String {
    var out = ""
    for cmd in [["nft", "list", "ruleset"], ["ip", "-4", "route", "show", "table", "all"], ["ip", "-6", "route", "show", "table", "all"],
                ["ip", "-o", "link", "show"], ["ip", "-o", "addr", "show"],
                ["sysctl", "net.ipv6.conf.all.forwarding", "net.ipv4.conf.eth0.forwarding"]] {
        out += try rig.checked("gw", cmd).stdout
    }
    return out
}

func tableJSON(_ rig: NetnsRig) throws -> String? {
    let r = try rig.run("gw", ["nft", "-j", "list", "table", "inet", "sixgate"])
    return r.succeeded ? try canonicalNftJSON(r.stdout) : nil
}

@Suite(.serialized) struct ReconcileTests {
    static let examples = exampleNames

    /// The acceptance cross-check: our netlink apply in A, `nft -f` of the golden
    /// file in B, and nft lists both the same, apart from handles.
    @Test(arguments: examples)
    func applyMatchesNftLoadingTheGoldenFile(example: String) throws {
        let a = try gatewayRig(), b = try gatewayRig()
        defer { a.teardown(); b.teardown() }
        let r = try ctl(a, "apply", repoRoot + "/examples/\(example).toml")
        #expect(r.status == 0, "\(r)")
        try b.checked("gw", ["nft", "-f", repoRoot + "/nft/\(example).nft"])
        let ours = try #require(try tableJSON(a)), theirs = try #require(try tableJSON(b))
        #expect(ours == theirs)
    }

    @Test(arguments: examples)
    func goldenFilesAreCurrent(example: String) throws {
        let rendered = try runProduct("sixgatectl", ["render", "examples/\(example).toml"])
        let golden = try String(contentsOfFile: repoRoot + "/nft/\(example).nft", encoding: .utf8)
        let body = golden.split(separator: "\n", omittingEmptySubsequences: false).drop { $0.hasPrefix("#") }.joined(separator: "\n")
        #expect(rendered.status == 0)
        #expect(body == rendered.stdout, "nft/\(example).nft is stale: run `make golden`")
    }

    /// A second apply changes nothing and sends no nftables batch: `nft monitor`
    /// sees no event.
    @Test func secondApplyChangesNothing() throws {
        let rig = try gatewayRig()
        defer { rig.teardown() }
        let config = repoRoot + "/examples/full.toml"
        #expect(try ctl(rig, "apply", config).status == 0)
        let before = try snapshot(rig)
        let monitor = try rig.start("gw", ["nft", "monitor"], name: "monitor")
        // Changes of our own before and after: the monitor listened throughout.
        var probes = 0
        try waitUntil("nft monitor to report a change\n\(monitor.errors)", deadline: .seconds(10), poll: .milliseconds(50)) {
            probes += 1
            try rig.checked("gw", ["nft", "add", "table", "inet", "monitorready\(probes)"])
            try rig.checked("gw", ["nft", "delete", "table", "inet", "monitorready\(probes)"])
            return monitor.output.contains("monitorready")
        }
        let second = try ctl(rig, "apply", config, ["--json"])
        try rig.checked("gw", ["nft", "add", "table", "inet", "monitorprobe"])
        try waitUntil("nft monitor to report the probe\n\(monitor.output)", deadline: .seconds(10)) { monitor.output.contains("monitorprobe") }
        rig.stop(monitor)
        #expect(second.status == 0)
        #expect(second.stdout.contains("\"nftTransaction\" : false"), "\(second)")
        #expect(monitor.output.contains("monitorprobe"), "nft monitor did not run: \(monitor.errors)")
        #expect(!monitor.output.contains("sixgate"), "nft monitor saw: \(monitor.output)")
        try rig.checked("gw", ["nft", "delete", "table", "inet", "monitorprobe"])
        #expect(try ctl(rig, "apply", config).stdout == "no changes\n")
        #expect(try snapshot(rig) == before)
    }

    /// The TUN devices sixgate creates get a transmit queue of
    /// DesiredState.tunQueueLength; a length the operator sets later stays.
    @Test func tunQueueLengthIsSetOnCreationOnly() throws {
        let rig = try gatewayRig()
        defer { rig.teardown() }
        let config = repoRoot + "/examples/full.toml"
        #expect(try ctl(rig, "apply", config).status == 0)
        #expect(try rig.checked("gw", ["ip", "link", "show", "sg-nat64"]).stdout.contains("qlen 2000"))
        try rig.checked("gw", ["ip", "link", "set", "sg-nat64", "txqueuelen", "3000"])
        #expect(try ctl(rig, "apply", config).stdout == "no changes\n")
        #expect(try rig.checked("gw", ["ip", "link", "show", "sg-nat64"]).stdout.contains("qlen 3000"))
    }

    /// Each kind of drift is reported with exit 2 and a readable line, and apply
    /// repairs it.
    @Test func driftIsReportedAndRepaired() throws {
        let rig = try gatewayRig()
        defer { rig.teardown() }
        let config = repoRoot + "/examples/full.toml"
        #expect(try ctl(rig, "apply", config).status == 0)
        #expect(try ctl(rig, "audit", config).status == 0)

        let listing = try rig.checked("gw", ["nft", "-a", "list", "chain", "inet", "sixgate", "forward"]).stdout
        let line = try #require(listing.split(separator: "\n").first { $0.contains("nat64_refused") })
        let handle = try #require(line.split(separator: " ").last.map(String.init))
        let cases: [(String, [String], String)] = [
            ("rule deleted", ["nft", "delete", "rule", "inet", "sixgate", "forward", "handle", handle], "+ nft rule in chain forward: oifname \"sg-nat64\" ip6 daddr 2001:db8:64::/96 counter name \"nat64_refused\" drop"),
            ("rule added", ["nft", "add", "rule", "inet", "sixgate", "input", "tcp", "dport", "22", "accept"], "- nft rule in chain input"),
            ("route deleted", ["ip", "route", "del", "203.0.113.32/28", "dev", "sg-nat64", "proto", "164"], "+ route 203.0.113.32/28 dev sg-nat64"),
            ("link down", ["ip", "link", "set", "sg-nat64", "down"], "~ link sg-nat64: down, wants up"),
            ("set element added", ["nft", "add", "element", "inet", "sixgate", "clients6", "{ 2001:db8:99::/64 }"], "~ nft set clients6: elements -2001:db8:99::/64"),
            ("forwarding off", ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"], "~ sysctl net.ipv6.conf.all.forwarding: 0, wants 1"),
            ("counter added", ["nft", "add", "counter", "inet", "sixgate", "handmade"], "- nft counter handmade"),
        ]
        for (what, command, expected) in cases {
            try rig.checked("gw", command)
            let audit = try ctl(rig, "audit", config)
            #expect(audit.status == 2, "\(what): \(audit)")
            #expect(audit.stdout.contains(expected), "\(what): expected \(expected) in\n\(audit.stdout)")
            let json = try ctl(rig, "audit", config, ["--json"])
            #expect(json.status == 2 && json.stdout.contains("\"clean\" : false"))
            #expect(try ctl(rig, "apply", config).status == 0)
            let after = try ctl(rig, "audit", config)
            #expect(after.status == 0, "\(what) not repaired: \(after)")
        }
    }

    /// Config changes converge in one apply each: 6bed4 switched off (its link,
    /// address and route go), a new routing protocol number (the old routes go),
    /// a hand-added route of ours with a gateway, a dormant table.
    @Test func changesConvergeInOneApply() throws {
        let rig = try gatewayRig()
        defer { rig.teardown() }
        let full = repoRoot + "/examples/full.toml"
        let text = try String(contentsOfFile: full, encoding: .utf8)
        #expect(try ctl(rig, "apply", full).status == 0)

        let no6bed4 = rig.scratch + "/no6bed4.toml"
        try text.replacingOccurrences(of: "[sixbedfour]\nenabled = true", with: "[sixbedfour]\nenabled = false")
            .write(toFile: no6bed4, atomically: true, encoding: .utf8)
        let off = try ctl(rig, "apply", no6bed4)
        #expect(off.status == 0 && off.stdout.contains("- link sg-6bed4"), "\(off)")
        #expect(try ctl(rig, "audit", no6bed4).status == 0)
        #expect(try !rig.checked("gw", ["ip", "link"]).stdout.contains("sg-6bed4"))

        let proto170 = rig.scratch + "/proto170.toml"
        try text.replacingOccurrences(of: "route_protocol = 164", with: "route_protocol = 170").write(toFile: proto170, atomically: true, encoding: .utf8)
        let moved = try ctl(rig, "apply", proto170)
        #expect(moved.status == 0, "\(moved)")
        #expect(try ctl(rig, "audit", proto170).status == 0)
        #expect(try rig.checked("gw", ["ip", "-6", "route", "show", "proto", "164"]).stdout.isEmpty, "routes of the old number are gone")
        #expect(try rig.checked("gw", ["ip", "-6", "route", "show", "proto", "170"]).stdout.contains("2001:db8:64::/96"))

        try rig.checked("gw", ["ip", "addr", "add", "198.51.100.9/24", "dev", "eth0"])
        try rig.checked("gw", ["ip", "route", "add", "203.0.113.200/32", "via", "198.51.100.1", "proto", "170"])
        #expect(try ctl(rig, "audit", proto170).stdout.contains("- route 203.0.113.200/32"))
        #expect(try ctl(rig, "apply", proto170).status == 0)
        #expect(try !rig.checked("gw", ["ip", "route"]).stdout.contains("203.0.113.200"))

        try rig.checked("gw", ["nft", "add", "table", "inet", "sixgate", "{ flags dormant; }"])
        let dormant = try ctl(rig, "audit", proto170)
        #expect(dormant.status == 2 && dormant.stdout.contains("dormant"), "\(dormant)")
        #expect(try ctl(rig, "apply", proto170).status == 0)
        #expect(try ctl(rig, "audit", proto170).status == 0)
    }

    /// A foreign table and a foreign route survive apply, audit and remove.
    @Test func foreignStateIsUntouched() throws {
        let rig = try gatewayRig()
        defer { rig.teardown() }
        try rig.checked("gw", ["nft", "add table inet foreign; add chain inet foreign c { type filter hook forward priority 10; }; add rule inet foreign c ip6 saddr 2001:db8:99::/48 drop"])
        try rig.checked("gw", ["ip", "route", "add", "198.51.100.0/24", "dev", "eth1", "proto", "static"])
        try rig.checked("gw", ["ip", "route", "add", "2001:db8:64::/96", "dev", "eth1", "proto", "static", "metric", "500"])
        let foreign = { try rig.checked("gw", ["nft", "list", "table", "inet", "foreign"]).stdout + rig.checked("gw", ["ip", "route", "show", "proto", "static"]).stdout + rig.checked("gw", ["ip", "-6", "route", "show", "proto", "static"]).stdout }
        let before = try foreign()
        #expect(before.contains("198.51.100.0/24") && before.contains("2001:db8:64::/96"))
        let config = repoRoot + "/examples/full.toml"
        #expect(try ctl(rig, "apply", config).status == 0)
        #expect(try foreign() == before)
        // The rt_protos.d entry that apply installs names our routes for `ip route`.
        #expect(try rig.checked("gw", ["ip", "-6", "route", "show", "2001:db8:64::/96"]).stdout.contains("proto sixgate"))
        #expect(try ctl(rig, "audit", config).status == 0, "foreign state is not drift")
        let removed = try ctl(rig, "remove", config)
        #expect(removed.status == 0 && removed.stdout.contains("- nft table inet sixgate"))
        #expect(try foreign() == before)
        #expect(try tableJSON(rig) == nil)
        #expect(try rig.checked("gw", ["ip", "route", "show", "proto", "164"]).stdout.isEmpty)
        #expect(try !rig.checked("gw", ["ip", "link"]).stdout.contains("sg-"))
        #expect(try ctl(rig, "remove", config).stdout == "nothing to remove\n")
    }

    /// After a simulated reboot (table, routes and links gone) apply restores all.
    @Test func applyRestoresAfterReboot() throws {
        let rig = try gatewayRig()
        defer { rig.teardown() }
        let config = repoRoot + "/examples/full.toml"
        #expect(try ctl(rig, "apply", config).status == 0)
        let before = try snapshot(rig)
        try rig.checked("gw", ["nft", "delete", "table", "inet", "sixgate"])
        try rig.checked("gw", ["ip", "link", "del", "sg-nat64"])
        try rig.checked("gw", ["ip", "link", "del", "sg-6bed4"])
        try rig.checked("gw", ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=0", "net.ipv4.conf.eth0.forwarding=0"])
        #expect(try rig.checked("gw", ["ip", "route", "show", "proto", "164"]).stdout.isEmpty)
        #expect(try ctl(rig, "audit", config).status == 2)
        #expect(try ctl(rig, "apply", config).status == 0)
        #expect(try ctl(rig, "audit", config).status == 0)
        // The same state, but for the link indices that re-created links renew.
        func normalized(_ s: String) -> String {
            s.split(separator: "\n").map { line -> String in
                var l = Substring(line)
                if let colon = l.firstIndex(of: ":"), Int(l[..<colon]) != nil { l = l[l.index(after: colon)...] }
                return l.split(separator: " ").map { $0.split(separator: "@").first.map(String.init) ?? "" }.joined(separator: " ")
            }.sorted().joined(separator: "\n")
        }
        #expect(normalized(try snapshot(rig)) == normalized(before))
    }

    /// kill -9 at random moments: the table is always all of the old or all of the new.
    @Test func applyIsAtomicUnderKill() throws {
        let rig = try gatewayRig()
        defer { rig.teardown() }
        let x = repoRoot + "/examples/full.toml", y = rig.scratch + "/other.toml"
        var other = try String(contentsOfFile: x, encoding: .utf8)
        // Not the pool or the prefix: changing those keeps the old ones for a while (renumbering).
        other = other.replacingOccurrences(of: "\"2001:db8:3::/64\",", with: "\"2001:db8:3::/64\", \"2001:db8:4::/64\", \"2001:db8:5::/64\",")
            .replacingOccurrences(of: "[sixbedfour]\nenabled = true", with: "[sixbedfour]\nenabled = false")
        try other.write(toFile: y, atomically: true, encoding: .utf8)
        #expect(try ctl(rig, "apply", y).status == 0)
        let jsonY = try #require(try tableJSON(rig))
        #expect(try ctl(rig, "apply", x).status == 0)
        let jsonX = try #require(try tableJSON(rig))
        #expect(jsonX != jsonY)

        let binary = binDir + "/sixgatectl"
        let targets = [try isolated(y, in: rig), try isolated(x, in: rig)]
        // Kills land anywhere from the start to a little after a whole apply,
        // measured now: a loaded machine (the other tests) makes it slower.
        let started = ContinuousClock.now
        #expect(try Spawn.run([binary, "apply", targets[0], "--netns", rig.ns("gw")], timeout: .seconds(30), scratch: rig.scratch).succeeded)
        let whole = (ContinuousClock.now - started).components
        let window = UInt32(clamping: whole.seconds * 1_500_000 + whole.attoseconds / 666_666_666_666)
        var seen: Set<String> = []
        for i in 0..<60 {
            let pid = try Spawn.start([binary, "apply", targets[(i + 1) % 2], "--netns", rig.ns("gw")], stdout: "/dev/null", stderr: "/dev/null")
            // A random moment is what is tested: no condition to wait for.
            usleep(UInt32.random(in: 0...max(40_000, window)))
            kill(pid, SIGKILL)
            _ = Spawn.wait(pid, timeout: .seconds(10))
            let now = try #require(try tableJSON(rig), "the table vanished after kill \(i)")
            #expect(now == jsonX || now == jsonY, "partial table after kill \(i)")
            seen.insert(now == jsonX ? "x" : "y")
        }
        #expect(seen.count == 2, "some kills came after the transaction, some before")
    }

    /// Bad input changes nothing: an invalid config, a missing interface, and an
    /// apply without CAP_NET_ADMIN.
    @Test func badInputChangesNothing() throws {
        let rig = try gatewayRig()
        defer { rig.teardown() }
        let before = try snapshot(rig)

        let invalid = try ctl(rig, "apply", repoRoot + "/Tests/IntegrationTests/Fixtures/mistakes.toml")
        #expect(invalid.status == 1 && invalid.stderr.contains("nothing was changed"))
        #expect(try snapshot(rig) == before)

        let missing = rig.scratch + "/missing.toml"
        try String(contentsOfFile: repoRoot + "/examples/full.toml", encoding: .utf8)
            .replacingOccurrences(of: "uplink4 = \"eth0\"", with: "uplink4 = \"eth9\"").write(toFile: missing, atomically: true, encoding: .utf8)
        let r = try ctl(rig, "apply", missing)
        // Where in the file, and in which namespace; a plan, which changes nothing anyway, does not say so.
        #expect(r.status == 1 && r.stderr.contains("missing.toml:12: gateway.uplink4: interface \"eth9\" does not exist in network namespace \(rig.ns("gw")). "
            + "Name an existing interface (see `ip -n \(rig.ns("gw")) link`)") && r.stderr.hasSuffix("nothing was changed\n"), "\(r)")
        let planned = try ctl(rig, "plan", missing)
        #expect(planned.status == 1 && planned.stderr.contains("does not exist in network namespace") && !planned.stderr.contains("nothing was changed"), "\(planned)")
        #expect(try snapshot(rig) == before)

        // A TUN device of another program with sixgate's device name is not taken over.
        try rig.checked("gw", ["ip", "tuntap", "add", "dev", "sg-nat64", "mode", "tun"])
        let withForeignTun = try snapshot(rig)
        let taken = try ctl(rig, "apply", repoRoot + "/examples/full.toml")
        #expect(taken.status == 1 && taken.stderr.contains("nat64.device: \"sg-nat64\" already exists"), "\(taken)")
        #expect(try snapshot(rig) == withForeignTun)
        try rig.checked("gw", ["ip", "tuntap", "del", "dev", "sg-nat64", "mode", "tun"])

        let noCap = try Spawn.run(["setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin", binDir + "/sixgatectl",
                                   "apply", repoRoot + "/examples/full.toml", "--netns", rig.ns("gw")],
                                  timeout: .seconds(30), scratch: rig.scratch)
        #expect(noCap.status == 1 && noCap.stderr.contains("CAP_NET_ADMIN"), "\(noCap)")
        #expect(try snapshot(rig) == before)
    }
}
