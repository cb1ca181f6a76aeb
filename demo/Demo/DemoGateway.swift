import Foundation
import Glibc
import NetnsRig

/// The gateway of `make demo`, and of the test that asserts what the demo
/// shows: the test topology's hosts, two 6bed4 peers, and `sixgated run` in gw.
///
///     c6 (2001:db8:1::2) ───────┐                 ┌── s6 (2001:db8:2::10, NSD on ::53)
///     c4 (198.51.100.2, peer) ──┼── gw (sixgated) ┼── s4 (203.0.113.2)
///     p2 (192.0.2.18, peer) ── nat (198.51.100.130)
///
/// c6 is IPv6-only and reaches the IPv4-only s4 through DNS64 and the
/// translator; c4 is IPv4-only and reaches the IPv6-only s6 through an EAM
/// (203.0.113.10); c4 and p2 get IPv6 from the 6bed4 router, p2 behind NAT.
public final class DemoGateway {
    public let rig: NetnsRig
    public let config: String
    public private(set) var daemon: NetnsRig.Process?
    /// The daemon's $NOTIFY_SOCKET: it reports READY=1 there, as to systemd.
    public private(set) var notify: NotifySocket?
    /// What the last `sixgatectl apply` said it changed.
    public private(set) var applyReport = ""
    let bin: String
    /// What the daemon runs under (`env`, `setpriv`): words before sixgated.
    let daemonWrapper: [String]
    var servers: [String: NetnsRig.Process] = [:]
    var peers: [String: NetnsRig.Process] = [:]

    public static let s4in6 = "2001:db8:64::cb00:7102"
    public static let c4in6 = "2001:db8:64::c633:6402"

    public struct Step: Sendable {
        public let title: String
        public let command: String
        public let output: String
        public let ok: Bool
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Builds the topology, applies the config and starts the daemon, the
    /// servers and the peers. `bin`: where sixgated, sixgatectl and 6bed4peer
    /// are; `daemonWrapper` the words sixgated runs under; `tune` may change
    /// the config text before it is written.
    public init(bin: String, daemonWrapper: [String] = [], tune: (String) -> String = { $0 }) throws {
        self.bin = bin
        self.daemonWrapper = daemonWrapper
        rig = try NetnsRig(links: [
            .init(host: "c6", gatewayInterface: "c6", hostAddresses: ["2001:db8:1::2/64"], gatewayAddresses: ["2001:db8:1::1/64"]),
            .init(host: "s6", gatewayInterface: "s6", hostAddresses: ["2001:db8:2::10/64", "2001:db8:2::53/64"], gatewayAddresses: ["2001:db8:2::1/64"]),
            .init(host: "c4", gatewayInterface: "c4", hostAddresses: ["198.51.100.2/25"], gatewayAddresses: ["198.51.100.1/25"]),
            .init(host: "s4", gatewayInterface: "s4", hostAddresses: ["203.0.113.2/24"], gatewayAddresses: ["203.0.113.1/24"]),
            .init(host: "nat", gatewayInterface: "nat", hostAddresses: ["198.51.100.130/25"], gatewayAddresses: ["198.51.100.129/25"]),
            .init(host: "p2", gatewayInterface: "lan", hostAddresses: ["192.0.2.18/28"], gatewayAddresses: ["192.0.2.17/28"], via: "nat"),
        ])
        config = rig.scratch + "/sixgate.toml"
        do {
            try rig.checked("nat", ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            try rig.checked("nat", ["nft", "add table ip nat; add chain ip nat post { type nat hook postrouting priority srcnat; };"
                                    + " add rule ip nat post oifname eth0 masquerade"])
            try tune("""
                # The demo's gateway: one NAT64 prefix for the translator, DNS64 and the 6bed4 router.
                prefix = "2001:db8:64::/96"
                [gateway]
                uplink4 = "s4"
                inside6 = "c6"
                clients = ["2001:db8:1::/64"]
                [nat64]
                address4 = "192.0.2.1"
                pool4 = "192.0.2.128/25"
                [[nat64.eam]]
                ipv4 = "203.0.113.10/32"
                ipv6 = "2001:db8:2::10/128"
                [dns64]
                listen = ["[2001:db8:1::1]:53"]
                upstreams = ["[2001:db8:2::53]:53"]
                [sixbedfour]
                enabled = true
                address4 = "198.51.100.1"
                prefix = "2001:db8:6b::/48"
                routes = ["2001:db8:2::/64"]
                [controller]
                state_dir = "\(rig.scratch)/state"
                bpf_dir = "\(rig.scratch)/bpf"
                control_socket = "\(rig.scratch)/control.sock"

                """).write(toFile: config, atomically: true, encoding: .utf8)
            try startServers()
            _ = try startDaemon()
            for host in ["c4", "p2"] {
                let peer = try rig.start(host, [bin + "/6bed4peer", "--server", "198.51.100.1", "--default-route", "--keepalive", "5"], name: "peer-\(host)")
                peers[host] = peer
                try peer.waitForLog(": address ", deadline: .seconds(15))
            }
        } catch {
            rig.teardown()
            throw error
        }
    }

    /// NSD on s6 with a zone whose www is IPv4-only (s4), web servers on s4 and s6.
    func startServers() throws {
        servers["nsd"] = try rig.nsd("s6", "2001:db8:2::53", zones: [("example.org", """
            $TTL 300
            @    IN SOA ns.example.org. hostmaster.example.org. 1 7200 3600 1209600 300
                 IN NS  ns.example.org.
            ns   IN AAAA 2001:db8:2::53
            www  IN A    203.0.113.2

            """)])
        for (host, address) in [("s4", "203.0.113.2"), ("s6", "2001:db8:2::10")] {
            let www = rig.scratch + "/www-" + host
            try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
            try "hello from \(host), the \(host == "s4" ? "IPv4-only" : "IPv6-only") server\n".write(toFile: www + "/index.html", atomically: true, encoding: .utf8)
            servers[host] = try rig.httpServer(host, address, dir: www)
        }
    }

    /// The boot path of sixgate.service again: `sixgatectl apply` (ExecStartPre),
    /// then `sixgated run` until it is ready: READY=1 on its notify socket,
    /// as systemd (Type=notify) hears it.
    public func startDaemon() throws -> NetnsRig.Process {
        let applied = try Spawn.run([bin + "/sixgatectl", "apply", config, "--netns", rig.ns("gw")], timeout: .seconds(30), scratch: rig.scratch)
        guard applied.succeeded else { throw Failure(description: "sixgatectl apply failed:\n\(applied)") }
        applyReport = applied.stdout
        let (daemon, notify) = try rig.startNotifying("gw", daemonWrapper + [bin + "/sixgated", "run", "--config", config],
                                                      name: "sixgated-\(UUID().uuidString.prefix(4))")
        self.daemon = daemon
        self.notify = notify
        return daemon
    }

    /// The peer's 6bed4 address, from its log.
    public func peerAddress(_ host: String) -> String? {
        guard let line = peers[host]?.errors.split(separator: "\n").last(where: { $0.contains(": address ") }),
              let i = line.split(separator: " ").firstIndex(of: "address") else { return nil }
        return line.split(separator: " ")[i + 1].split(separator: "/").first.map(String.init)
    }

    func step(_ title: String, _ host: String?, _ argv: [String], _ check: (String) -> Bool) throws -> Step {
        let r = host.map { try? rig.run($0, argv, timeout: .seconds(60)) } ?? (try? Spawn.run(argv, timeout: .seconds(60), scratch: rig.scratch))
        let output = ((r?.stdout ?? "") + (r?.stderr ?? "")).trimmingCharacters(in: .whitespacesAndNewlines)
        let shown = argv.map { $0.hasPrefix(bin) ? String($0.dropFirst(bin.count + 1)) : $0 }.joined(separator: " ")
        return Step(title: title, command: (host.map { "[\($0)] " } ?? "[host] ") + shown, output: output, ok: (r?.succeeded ?? false) && check(output))
    }

    /// The counters of `part` ("translator", "dns64", "6bed4"), from
    /// `sixgatectl status --json`; empty when the daemon does not answer.
    public func counters(_ part: String) throws -> [String: Int] {
        let r = try Spawn.run([bin + "/sixgatectl", "status", config, "--json"], timeout: .seconds(10), scratch: rig.scratch)
        let parts = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["parts"] as? [[String: Any]]
        return parts?.first { $0["name"] as? String == part }?["counters"] as? [String: Int] ?? [:]
    }

    func routerCounter(_ name: String) throws -> Int { try counters("6bed4")[name] ?? -1 }

    /// How often the running daemon has reported READY=1: once per start,
    /// and once per restart (a reload re-executes the same process).
    public var readies: Int { notify?.readies ?? 0 }

    /// Waits until the daemon has become ready `count` times (or `seconds`
    /// have passed) and says how often it has.
    @discardableResult
    public func waitForReady(_ count: Int, seconds: Int) -> Int {
        notify?.wait(for: "READY=1", count: count, deadline: .seconds(seconds), process: daemon) ?? 0
    }

    /// c6 fetching s4's page through the translator.
    public static let fetchS4 = ["curl", "-sS", "--max-time", "10", "-g", "http://[\(s4in6)]:8080/index.html"]

    /// The three scenarios (DNS64 and the pool, a mapping, 6bed4), then status and verify.
    public func scenarios() throws -> [Step] {
        var steps: [Step] = []
        steps.append(try step("c6 (IPv6-only) resolves the IPv4-only www.example.org through DNS64", "c6",
                              ["dig", "+short", "@2001:db8:1::1", "www.example.org", "AAAA"]) { $0 == Self.s4in6 })
        steps.append(try step("c6 fetches the page of s4 through the translator (dynamic pool, masquerade)", "c6",
                              Self.fetchS4) { $0.contains("hello from s4") })
        steps.append(try step("c4 (IPv4-only) fetches the page of the IPv6-only s6 through its EAM 203.0.113.10", "c4",
                              ["curl", "-sS", "--max-time", "10", "http://203.0.113.10:8080/index.html"]) { $0.contains("hello from s6") })
        let seen = servers["s6"]?.errors.contains(Self.c4in6) ?? false
        steps.append(Step(title: "s6 saw c4 as \(Self.c4in6) (prefix + c4's IPv4 address)", command: "[s6] the web server's log",
                          output: servers["s6"]?.errors.split(separator: "\n").last.map(String.init) ?? "", ok: seen))
        guard let c4 = peerAddress("c4"), let p2 = peerAddress("p2") else {
            throw Failure(description: "the 6bed4 peers have no address:\n\(peers.values.map(\.errors).joined(separator: "\n"))")
        }
        steps.append(Step(title: "6bed4 peers got addresses from the router (p2 behind NAT)", command: "6bed4peer logs",
                          output: "c4 \(c4), p2 \(p2)", ok: c4 != p2 && [c4, p2].allSatisfy { $0.hasPrefix("2001:db8:6b:bed:") }))
        // The first exchange goes through the router; the peers' probes then find the direct path.
        _ = try rig.run("c4", ["ping", "-6", "-c", "10", "-i", "0.2", "-W", "2", p2])
        let relayedBefore = try routerCounter("relayed")
        steps.append(try step("c4 and p2 (behind NAT) ping each other", "c4", ["ping", "-6", "-n", "-c", "5", "-i", "0.2", "-W", "2", p2]) { $0.contains(" 0% packet loss") })
        let relayedAfter = try routerCounter("relayed")
        steps.append(Step(title: "…directly: the router relayed the first exchange, none of those pings", command: "sixgatectl status (6bed4 relayed)",
                          output: "relayed before \(relayedBefore), after \(relayedAfter)", ok: relayedBefore > 0 && relayedAfter == relayedBefore))
        let peers = try routerCounter("peers")
        steps.append(Step(title: "the router has heard from both peers", command: "sixgatectl status (6bed4 peers)", output: "peers \(peers)", ok: peers == 2))
        steps.append(try step("p2 reaches the IPv6-only s6 over 6bed4", "p2", ["ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "2", "2001:db8:2::10"]) { $0.contains(" 0% packet loss") })
        steps.append(try step("sixgatectl status", nil, [bin + "/sixgatectl", "status", config]) { $0.contains("translator: serving") && $0.contains("dns64: serving") && $0.contains("6bed4: serving") })
        steps.append(try step("sixgatectl verify", nil, [bin + "/sixgatectl", "verify", config, "--netns", rig.ns("gw")]) { !$0.contains("FAIL") })
        return steps
    }
}
