import Dispatch
import Foundation
import Glibc
import Synchronization

/// A network of namespaces for one integration test, in the test topology:
///
///     c6 (2001:db8:1::2) ──┐                  ┌── s6 (2001:db8:2::2)
///                          ├── gw (routes) ───┤
///     c4 (198.51.100.2) ───┘                  └── s4 (203.0.113.2)
///
/// Namespaces are named `sgt-<pid>-<random>-<host>`, so parallel runs never
/// collide and a later run can tell the leftovers of a dead one. Everything lives
/// inside these namespaces: veth pairs are created in gw with the peer moved
/// straight into its host, so the root namespace is never touched.
///
/// `teardown()` stops every process started here and deletes the namespaces. It
/// runs on every exit path the process survives: the test's `defer`, SIGINT,
/// SIGTERM and SIGHUP. A SIGKILLed runner leaves namespaces behind; the next rig
/// (or `make test`) removes those of dead runners.
public final class NetnsRig: Sendable {
    public struct Link: Sendable {
        public let host: String
        /// Interface name on the gateway side; the host side is always `eth0`.
        public let gatewayInterface: String
        public let hostAddresses: [String]
        public let gatewayAddresses: [String]
        /// The host's gateway: gw, or another host (a NAT box, say), which
        /// then needs forwarding switched on by the test.
        public let via: String

        public init(host: String, gatewayInterface: String, hostAddresses: [String], gatewayAddresses: [String], via: String = "gw") {
            self.host = host
            self.gatewayInterface = gatewayInterface
            self.hostAddresses = hostAddresses
            self.gatewayAddresses = gatewayAddresses
            self.via = via
        }
    }

    public static let namePrefix = "sgt-"

    public let id: String
    public let hosts: [String]
    public let links: [Link]
    /// Where logs of background processes go; removed by teardown.
    public let scratch: String
    /// Where the configs pin BPF programs and maps: the controller mounts a
    /// bpffs there, in the runner's private mount namespace; teardown
    /// unmounts it.
    public var bpfDir: String { scratch + "/bpf" }

    private struct State {
        var namespaces: [String] = []
        var processes: [pid_t] = []
        var tornDown = false
    }

    private let state = Mutex(State())

    /// The test topology above.
    public static func standard() throws -> NetnsRig {
        try NetnsRig(links: [
            Link(host: "c6", gatewayInterface: "c6", hostAddresses: ["2001:db8:1::2/64"], gatewayAddresses: ["2001:db8:1::1/64"]),
            Link(host: "c4", gatewayInterface: "c4", hostAddresses: ["198.51.100.2/24"], gatewayAddresses: ["198.51.100.1/24"]),
            Link(host: "s6", gatewayInterface: "s6", hostAddresses: ["2001:db8:2::2/64"], gatewayAddresses: ["2001:db8:2::1/64"]),
            Link(host: "s4", gatewayInterface: "s4", hostAddresses: ["203.0.113.2/24"], gatewayAddresses: ["203.0.113.1/24"]),
        ])
    }

    /// Builds gw plus one host per link. Hosts route everything through gw; only
    /// gw forwards.
    public init(links: [Link]) throws {
        try Self.requireRootAndTools()
        try Self.requirePrivateMounts()
        Self.reapStale()
        self.id = "\(getpid())-\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
        self.links = links
        self.hosts = ["gw"] + links.map(\.host)
        self.scratch = NSTemporaryDirectory() + "sixgate-rig-\(id)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        RigRegistry.shared.add(self)
        do {
            try build()
        } catch {
            teardown()
            throw error
        }
    }

    deinit { teardown() }

    /// The real namespace name of `host`, for tools that take one.
    public func ns(_ host: String) -> String { "\(Self.namePrefix)\(id)-\(host)" }

    private func build() throws {
        for host in hosts {
            try ip(["netns", "add", ns(host)])
            state.withLock { $0.namespaces.append(ns(host)) }
            // No DAD: addresses are usable at once, and the namespaces are ours alone.
            let forward = host == "gw" ? "1" : "0"
            try checked(host, ["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                               "net.ipv4.ip_forward=\(forward)", "net.ipv6.conf.all.forwarding=\(forward)"])
            try ip(["-n", ns(host), "link", "set", "lo", "up"])
        }
        for link in links {
            let gw = ns(link.via)
            try ip(["-n", gw, "link", "add", link.gatewayInterface, "type", "veth", "peer", "name", "eth0", "netns", ns(link.host)])
            for a in link.gatewayAddresses { try ip(["-n", gw, "addr", "add", a, "dev", link.gatewayInterface] + (a.contains(":") ? ["nodad"] : [])) }
            for a in link.hostAddresses { try ip(["-n", ns(link.host), "addr", "add", a, "dev", "eth0"] + (a.contains(":") ? ["nodad"] : [])) }
            try ip(["-n", gw, "link", "set", link.gatewayInterface, "up"])
            try ip(["-n", ns(link.host), "link", "set", "eth0", "up"])
            for a in link.gatewayAddresses {
                let gateway = String(a.split(separator: "/")[0])
                try ip(["-n", ns(link.host)] + (a.contains(":") ? ["-6"] : ["-4"]) + ["route", "add", "default", "via", gateway])
            }
        }
    }

    /// NSD in `host` on `address` port 53, authoritative for `zones` (name,
    /// zone file text), once it answers for the first of them.
    public func nsd(_ host: String, _ address: String, zones: [(name: String, text: String)]) throws -> Process {
        let dir = scratch + "/nsd-" + host
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var conf = """
            server:
                ip-address: \(address)
                port: 53
                zonesdir: "\(dir)"
                pidfile: "\(dir)/nsd.pid"
                xfrdfile: "\(dir)/xfrd.state"
                zonelistfile: "\(dir)/zone.list"
                database: ""
                username: ""
                chroot: ""
                verbosity: 1
            remote-control:
                control-enable: no

            """
        for zone in zones {
            try zone.text.write(toFile: "\(dir)/\(zone.name).zone", atomically: true, encoding: .utf8)
            conf += "zone:\n    name: \(zone.name)\n    zonefile: \(zone.name).zone\n"
        }
        try conf.write(toFile: dir + "/nsd.conf", atomically: true, encoding: .utf8)
        let p = try start(host, ["nsd", "-d", "-c", dir + "/nsd.conf"], name: "nsd-\(host)")
        try waitUntil("NSD in \(host) to answer for \(zones.first?.name ?? ".")\n\(p.errors)", deadline: .seconds(20), poll: .milliseconds(50)) {
            try run(host, ["dig", "+time=1", "+tries=1", "@\(address)", zones.first?.name ?? ".", "SOA"]).stdout.contains("status: NOERROR")
        }
        return p
    }

    /// A validating Unbound in `host` on `address` port 53, once it answers:
    /// it resolves the `stubs` (zone, authoritative server address) only,
    /// validating under the DNSKEYs of `trustAnchors` (files in zone-file
    /// format) and telling why a validation failed (Extended DNS Errors,
    /// RFC 8914). `extra` holds further lines of its `server:` clause.
    public func unbound(_ host: String, _ address: String, stubs: [(zone: String, server: String)], trustAnchors: [String], extra: [String] = []) throws -> Process {
        let dir = scratch + "/unbound-" + host
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let server = ["interface: \(address)", "port: 53", "access-control: ::/0 allow", "access-control: 0.0.0.0/0 allow",
                      "username: \"\"", "chroot: \"\"", "directory: \"\(dir)\"", "pidfile: \"\(dir)/unbound.pid\"",
                      "use-syslog: no", "do-daemonize: no", "verbosity: 1", "module-config: \"validator iterator\"",
                      "ede: yes", "val-log-level: 2"] + trustAnchors.map { "trust-anchor-file: \"\($0)\"" } + extra
        var conf = "server:\n" + server.map { "    \($0)\n" }.joined()
        for stub in stubs { conf += "stub-zone:\n    name: \"\(stub.zone)\"\n    stub-addr: \(stub.server)\n" }
        conf += "remote-control:\n    control-enable: no\n"
        try conf.write(toFile: dir + "/unbound.conf", atomically: true, encoding: .utf8)
        try checked(host, ["unbound-checkconf", dir + "/unbound.conf"])
        let p = try start(host, ["unbound", "-d", "-c", dir + "/unbound.conf"], name: "unbound-\(host)")
        try waitUntil("Unbound in \(host) to answer for \(stubs.first?.zone ?? ".")\n\(p.errors)", deadline: .seconds(20), poll: .milliseconds(50)) {
            try run(host, ["dig", "+time=1", "+tries=1", "@\(address)", stubs.first?.zone ?? ".", "SOA"]).stdout.contains("status: NOERROR")
        }
        return p
    }

    /// Serves `dir` over HTTP on `address` port 8080 in `host`, once it listens.
    public func httpServer(_ host: String, _ address: String, dir: String) throws -> Process {
        let p = try start(host, ["python3", "-m", "http.server", "8080", "--bind", address, "--directory", dir], name: "http-\(host)")
        try waitForListener(host, port: 8080, of: p)
        return p
    }

    /// Waits until a socket in `host` listens on TCP `port` (with `udp`: is
    /// bound to UDP `port`), as `ss` lists them; `of` is the process that
    /// is to open it, whose log the failure shows.
    public func waitForListener(_ host: String, port: Int, udp: Bool = false, of p: Process? = nil, deadline: Duration = .seconds(10)) throws {
        try waitUntil("a \(udp ? "UDP" : "TCP") socket on port \(port) in \(host)\n\(p?.errors ?? "")", deadline: deadline) {
            try run(host, ["ss", "-Hn", udp ? "-ua" : "-tl", "sport = :\(port)"]).stdout.contains(":\(port) ")
        }
    }

    /// Runs `argv` inside `host` and returns its output, whatever its exit status.
    @discardableResult
    public func run(_ host: String, _ argv: [String], timeout: Duration = .seconds(30)) throws -> CommandResult {
        try Spawn.run(["ip", "netns", "exec", ns(host)] + argv, timeout: timeout, scratch: scratch)
    }

    /// Runs `argv` inside `host` and throws unless it exits 0.
    @discardableResult
    public func checked(_ host: String, _ argv: [String], timeout: Duration = .seconds(30)) throws -> CommandResult {
        let r = try run(host, argv, timeout: timeout)
        guard r.succeeded else { throw RigError.commandFailed(r) }
        return r
    }

    /// A long-running process inside a namespace.
    public struct Process: Sendable {
        public let pid: pid_t
        public let stdoutPath: String
        public let stderrPath: String
        public var output: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
        public var errors: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
    }

    /// Starts `argv` in `host` and returns at once. `ip netns exec` execs the
    /// command, so the PID is the command's own. `environment` is added to
    /// the runner's.
    public func start(_ host: String, _ argv: [String], name: String, environment: [String: String] = [:]) throws -> Process {
        let out = "\(scratch)/\(name).out", err = "\(scratch)/\(name).err"
        let pid = try Spawn.start(["ip", "netns", "exec", ns(host)] + argv, stdout: out, stderr: err, environment: environment)
        state.withLock { $0.processes.append(pid) }
        return Process(pid: pid, stdoutPath: out, stderrPath: err)
    }

    /// Stops a process started with `start`: SIGTERM, then SIGKILL after a grace period.
    public func stop(_ p: Process) {
        Spawn.stop(p.pid)
        state.withLock { $0.processes.removeAll { $0 == p.pid } }
    }

    /// Stops every process, deletes every namespace (and with them their links).
    /// Safe to call more than once and from a signal handler's queue.
    public func teardown() {
        let (processes, namespaces) = state.withLock { s -> ([pid_t], [String]) in
            if s.tornDown { return ([], []) }
            s.tornDown = true
            return (s.processes, s.namespaces)
        }
        for pid in processes { Spawn.stop(pid, grace: .milliseconds(500)) }
        for name in namespaces.reversed() { Self.deleteNamespace(name) }
        umount2(bpfDir, Int32(MNT_DETACH))
        try? FileManager.default.removeItem(atPath: scratch)
        RigRegistry.shared.remove(self)
    }

    /// Namespaces this rig created that still exist.
    public func remainingNamespaces() -> [String] {
        Self.listNamespaces().filter { $0.hasPrefix(Self.namePrefix + id + "-") }
    }

    private func ip(_ args: [String]) throws {
        let r = try Spawn.run(["ip"] + args, timeout: .seconds(10), scratch: scratch)
        guard r.succeeded else { throw RigError.commandFailed(r) }
    }

    // MARK: - Host-wide helpers

    static func requireRootAndTools() throws {
        guard geteuid() == 0 else { throw RigError.notRoot }
        for tool in ["ip", "ping", "sysctl"] {
            let found = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(separator: ":")
                .contains { access("\($0)/\(tool)", X_OK) == 0 }
            guard found else { throw RigError.missingTool(tool) }
        }
    }

    /// The runner's mounts are its own: a mount namespace other than that of
    /// a process it descends from (`make`, a shell; PID 1 may be closed to
    /// it), whose root propagates nothing to another.
    static func requirePrivateMounts() throws {
        func ns(_ pid: String) -> String? { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/mnt") }
        func parent(_ pid: String) -> String? {
            // The field after the command's closing parenthesis, then the state.
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return nil }
            return stat[stat.index(after: close)...].split(separator: " ").dropFirst().first.map(String.init)
        }
        var ancestors: [String] = []
        var pid = "self"
        while let p = parent(pid), p != "0" {
            ancestors.append(p)
            pid = p
        }
        guard let mine = ns("self"), ancestors.contains(where: { ns($0).map { $0 != mine } ?? false }),
              let info = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8),
              let root = info.split(separator: "\n").first(where: { $0.split(separator: " ").dropFirst(4).first == "/" }),
              !root.contains(" shared:")
        else { throw RigError.sharedMounts }
    }

    public static func listNamespaces() -> [String] {
        guard let r = try? Spawn.run(["ip", "netns", "list"], timeout: .seconds(10), scratch: NSTemporaryDirectory()) else { return [] }
        return r.stdout.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
    }

    /// Kills what runs inside, then deletes: a namespace with live processes would
    /// otherwise outlive its name.
    static func deleteNamespace(_ name: String) {
        let tmp = NSTemporaryDirectory()
        if let pids = try? Spawn.run(["ip", "netns", "pids", name], timeout: .seconds(10), scratch: tmp) {
            for p in pids.stdout.split(separator: "\n").compactMap({ pid_t($0) }) { kill(p, SIGKILL) }
        }
        _ = try? Spawn.run(["ip", "netns", "del", name], timeout: .seconds(10), scratch: tmp)
    }

    /// Removes namespaces left by runners that no longer exist (e.g. SIGKILLed).
    /// Only names of our own pattern whose runner PID is gone are touched.
    public static func reapStale() {
        for name in listNamespaces() where name.hasPrefix(namePrefix) {
            let parts = name.dropFirst(namePrefix.count).split(separator: "-")
            guard let pid = parts.first.flatMap({ pid_t($0) }) else { continue }
            if kill(pid, 0) != 0, errno == ESRCH { deleteNamespace(name) }
        }
    }
}

/// Live rigs, so that a signal can tear them all down before the runner dies.
final class RigRegistry: Sendable {
    static let shared = RigRegistry()

    private let rigs = Mutex<[ObjectIdentifier: NetnsRig]>([:])
    /// Written once in init; kept only so that the sources stay alive.
    private nonisolated(unsafe) let sources: [any DispatchSourceSignal]
    private let queue = DispatchQueue(label: "sixgate.netns-rig.signals")

    private init() {
        var installed: [any DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler {
                RigRegistry.shared.tearDownAll()
                // Dispatch threads block signals, so re-raising would not end the
                // process; exit with the status a shell reports for the signal.
                _exit(128 + sig)
            }
            source.resume()
            installed.append(source)
        }
        sources = installed
    }

    func add(_ rig: NetnsRig) { rigs.withLock { $0[ObjectIdentifier(rig)] = rig } }
    func remove(_ rig: NetnsRig) { _ = rigs.withLock { $0.removeValue(forKey: ObjectIdentifier(rig)) } }

    func tearDownAll() {
        let all = rigs.withLock { Array($0.values) }
        for rig in all { rig.teardown() }
    }
}
