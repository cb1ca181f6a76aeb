import ControlProtocol
import Configuration
import Common
import Netlink
import ArgumentParser
import Reconcile
import Foundation

/// Options shared by the commands that read or change kernel state.
struct StateOptions: ParsableArguments {
    @Argument(help: "The config file.") var config: String
    @Flag(help: "Print JSON, for monitoring and scripts.") var json = false
    @Option(help: "Work on this named network namespace (ip netns) instead of the current one.") var netns: String?
    @Flag(help: "Fail at once when another apply is changing this gateway, instead of waiting for it.") var noWait = false
    @Option(help: "How long to wait for another apply to finish, in seconds.") var wait = 120
    @Flag(help: "Show every element of a changed set, and all of a new table.") var verbose = false

    func reconciler() throws -> Reconciler { try Reconciler(namespace: netns) }

    /// The config as it applies in the namespace worked on (its state
    /// directory), and the gateway's lock: exclusive to change it, shared
    /// to read it.
    func target(_ config: Config, _ mode: StateLock.Mode) throws -> (Config, StateLock) {
        let scoped = try config.scoped(to: netns)
        return (scoped, try StateLock(stateDir: scoped.controller.stateDir, mode, wait: noWait ? .zero : .seconds(wait)))
    }
}

func printJSON(_ value: some Encodable) throws {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try e.encode(value), as: UTF8.self))
}

/// Each change on a line, then how many of each kind.
func printChanges(_ drift: [Drift], verbose: Bool) {
    guard !drift.isEmpty else { return }
    for d in drift { print(d.text(verbose: verbose)) }
    if drift.count > 1 { print(Drift.summary(drift)) }
}

/// A failure before apply changed anything (planning reads only).
struct NothingChanged: Error, CustomStringConvertible {
    let cause: any Error
    var description: String { "\(cause)\nnothing was changed" }
}

/// Runs `body`, turning any failure into a message and exit code 1.
func reporting(_ command: String, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ExitCode {
        throw e
    } catch {
        var stderr = StandardError()
        print("sixgatectl \(command): \(error)", to: &stderr)
        throw ExitCode(1)
    }
}

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what apply would change, in nft syntax and ip route terms. Changes nothing."
    )
    @OptionGroup var options: StateOptions

    struct Output: Encodable {
        let changes: [Drift]
        let renumbering: [String]
        let table: String
        /// Why `auto` leaves the kernel datapath out, when it does.
        let note: String?
    }

    func run() throws {
        let loaded = try loadOrExit(options.config)
        try reporting("plan") {
            let (config, lock) = try options.target(loaded, .shared)
            defer { withExtendedLifetime(lock) {} }
            let plan = try options.reconciler().plan(config)
            let keeping = plan.prefixes.keeping(at: UInt64(time(nil)))
            if options.json {
                return try printJSON(Output(changes: plan.drift, renumbering: keeping, table: plan.desired.table.nftText, note: plan.kernel.note))
            }
            if let note = plan.kernel.note { print("note: \(note)") }
            for k in keeping { print("renumbering: \(k)") }
            if plan.isEmpty { return print("no changes") }
            printChanges(plan.drift, verbose: options.verbose)
            if plan.drift.contains(where: { $0.isMissingTable }) {
                print("\nThe table to be created:\n")
                print(plan.desired.table.nftText(elementLimit: options.verbose ? nil : 8), terminator: "")
            }
        }
    }
}

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make the live system match the config with the smallest change, and say what changed."
    )
    @OptionGroup var options: StateOptions

    struct Output: Encodable {
        let changes: [Drift]
        let nftTransaction: Bool
        let renumbering: [String]
        let warnings: [String]
        /// What the running daemon made of the config; nil when none runs.
        let daemon: ReloadAnswer?
    }

    func run() throws {
        let loaded = try loadOrExit(options.config, changing: true)
        try reporting("apply") {
            let (config, lock) = try options.target(loaded, .exclusive)
            let r = try options.reconciler()
            let plan: Reconcile.Plan
            do {
                plan = try r.plan(config)
            } catch {
                throw NothingChanged(cause: error)
            }
            try r.apply(plan)
            // The daemon reads the state the apply saved: the handover is part of it.
            let daemon = try handOver(config)
            withExtendedLifetime(lock) {}
            let warnings = [ProtocolName.install(config.controller.routeProtocol), plan.kernel.note].compactMap { $0 } + plan.warnings
            let sentNft = plan.drift.contains { $0.area == .nft }
            let keeping = plan.prefixes.keeping(at: UInt64(time(nil)))
            if options.json {
                return try printJSON(Output(changes: plan.drift, nftTransaction: sentNft, renumbering: keeping, warnings: warnings, daemon: daemon))
            }
            var stderr = StandardError()
            for w in warnings { print("warning: \(w)", to: &stderr) }
            for k in keeping { print("renumbering: \(k)") }
            if plan.isEmpty { print("no changes") }
            printChanges(plan.drift, verbose: options.verbose)
            if let daemon { print("sixgated: \(daemon.summary)" + (daemon.restarting ? "; it restarts with the new config" : "")) }
        }
    }

    /// Hands the config to the running daemon, when one runs: what changes
    /// for each part. No socket, or one nobody listens on (left by a daemon
    /// that died; the boot path after a crash), means no daemon. A daemon that
    /// does not answer is an error: the kernel has the new state, it has not.
    func handOver(_ config: Config) throws -> ReloadAnswer? {
        let socket = config.controller.controlSocket
        guard FileManager.default.fileExists(atPath: socket) else { return nil }
        let path = URL(fileURLWithPath: options.config).standardizedFileURL.path
        let answer: ReloadAnswer
        do {
            answer = try ControlClient.ask(socket, ControlRequest(.takeConfig, config: path), as: ReloadAnswer.self, timeout: 5)
        } catch where error.code == ECONNREFUSED {
            return nil
        } catch {
            throw ControlError(path: socket, what: "the kernel state is applied, but sixgated does not take the config: \(error.what)")
        }
        if let error = answer.error { throw ControlError(path: socket, what: "sixgated refused the config: \(error)") }
        return answer
    }
}

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Report drift between the live system and the config.",
        discussion: "Exit status: 0 no drift, 2 drift, 1 error."
    )
    @OptionGroup var options: StateOptions

    struct Output: Encodable {
        let clean: Bool
        let drift: [Drift]
    }

    func run() throws {
        let loaded = try loadOrExit(options.config)
        var clean = true
        try reporting("audit") {
            let (config, lock) = try options.target(loaded, .shared)
            defer { withExtendedLifetime(lock) {} }
            let plan = try options.reconciler().plan(config)
            clean = plan.isEmpty
            if options.json { return try printJSON(Output(clean: clean, drift: plan.drift)) }
            if clean { return print("no drift") }
            printChanges(plan.drift, verbose: options.verbose)
        }
        if !clean { throw ExitCode(2) }
    }
}

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove everything sixgate owns (its table, routes, kernel datapath and links), and nothing else.",
        discussion: """
            With CONFIG, what that config makes, and the prefix history. With --all, no config is needed (it may be \
            broken or gone, as in an uninstall): what the last apply recorded in the state directory, and that \
            namespace's state with it.
            """
    )
    @Argument(help: "The config file (not needed with --all).") var config: String?
    @Flag(help: "Remove what the last apply recorded, without a config, and the state.") var all = false
    @Option(help: "With --all: controller.state_dir of the config that was applied.") var stateDir = "/var/lib/sixgate"
    @Flag(help: "Print JSON, for monitoring and scripts.") var json = false
    @Option(help: "Work on this named network namespace (ip netns) instead of the current one.") var netns: String?
    @Flag(help: "Fail at once when an apply is changing this gateway, instead of waiting for it.") var noWait = false
    @Option(help: "How long to wait for an apply to finish, in seconds.") var wait = 120

    struct Output: Encodable { let removed: [Drift] }

    func validate() throws {
        if !all, config == nil { throw ValidationError("Name the config to remove, or use --all to remove what the last apply recorded.") }
    }

    func run() throws {
        let loaded = try config.map { try loadOrExit($0, changing: true) }
        try reporting("remove") {
            let base = loaded?.controller.stateDir ?? stateDir
            let dir = try Config.stateDirectory(base, namespace: netns)
            let lock = try StateLock(stateDir: dir, .exclusive, wait: noWait ? .zero : .seconds(wait))
            defer { withExtendedLifetime(lock) {} }
            let record = AppliedRecord.load(stateDir: dir)
            var protocols = Set(record?.routeProtocols ?? [])
            var pins = record?.bpfPins
            if let c = loaded, !all {
                protocols.insert(UInt8(c.controller.routeProtocol))
                pins = try KernelProgramPlan.directory(bpfDir: c.controller.bpfDir, stateDir: dir, namespace: netns)
            } else if protocols.isEmpty {
                protocols = [UInt8(Config.Controller.defaultRouteProtocol)]
            }
            let removed = try Reconciler(namespace: netns).remove(protocols: protocols, pins: pins)
            if all {
                // This namespace's state; other namespaces' (in netns/) stay.
                for f in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
                    where f != "netns" && f != (StateLock.file(in: dir) as NSString).lastPathComponent {
                    try FileManager.default.removeItem(atPath: (dir as NSString).appendingPathComponent(f))
                }
            } else {
                // Nothing is owed to clients any more: the next apply starts afresh.
                for f in [PrefixHistory.file(in: dir), AppliedRecord.file(in: dir)] { try? FileManager.default.removeItem(atPath: f) }
            }
            if json { return try printJSON(Output(removed: removed)) }
            if removed.isEmpty { return print("nothing to remove") }
            for d in removed { print(d) }
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask the running sixgated what it runs and how it goes.",
        discussion: "It asks over controller.control_socket of the config. Exit status: 0 answered, 1 no daemon answers."
    )
    @Argument(help: "The config file, for the control socket's path.") var config = "/etc/sixgate/sixgate.toml"
    @Flag(help: "Print JSON, for monitoring and scripts.") var json = false

    func run() throws {
        let c = try loadOrExit(config)
        try reporting("status") {
            let status = try ControlClient.ask(c.controller.controlSocket, ControlRequest(.status), as: DaemonStatus.self)
            if json { return try printJSON(status) }
            let up = Duration.seconds(status.uptime)
            print("sixgated \(status.version), up \(up.humanReadable), config \(status.config), prefix \(status.prefix)")
            print("last apply: \(status.lastApply ?? "none since the daemon started")")
            let now = UInt64(time(nil))
            for r in status.retiring ?? [] { print("renumbering: \(r.description(now: now)), then only \(status.prefix)") }
            for r in status.retiringPools ?? [] { print("renumbering: pool \(r.description(now: now)): its hosts keep their addresses until then") }
            for part in status.parts {
                print("\n\(part.name): \(part.state)" + (part.pid.map { " (pid \($0))" } ?? ""))
                for line in part.detail { print("  \(line)") }
                if !part.counters.isEmpty {
                    print("  " + part.counters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
                }
            }
        }
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prove on the live system that DNS64, the translator, the 6bed4 router, the routes and nftables agree with the config.",
        discussion: """
            It exercises them: asks DNS64 for ipv4only.arpa AAAA, sends the 6bed4 router a router solicitation and \
            reads the PREF64 of its advertisement, asks the daemon which prefix its translator runs with, and audits \
            routes and nftables. Exit status: 0 all agree, 2 something disagrees or does not answer, 1 error.
            """
    )
    @OptionGroup var options: StateOptions

    struct Output: Encodable {
        let ok: Bool
        let checks: [VerifyCheck]
    }

    func run() throws {
        let loaded = try loadOrExit(options.config)
        var checks: [VerifyCheck] = []
        try reporting("verify") {
            let (config, lock) = try options.target(loaded, .shared)
            defer { withExtendedLifetime(lock) {} }
            let verifier = Verifier(config: config, retiring: PrefixHistory.running(config)?.active(at: UInt64(time(nil))).map(\.value) ?? [])
            let socket = config.controller.controlSocket
            let status = Result { () throws(ControlError) in try ControlClient.ask(socket, ControlRequest(.status), as: DaemonStatus.self) }
            checks += verifier.daemon(status)
            try NetworkNamespace.run(in: options.netns) {
                checks.append(verifier.dns64())
                checks.append(verifier.sixBedFour())
                checks += verifier.mux()
            }
            checks += verifier.audit(Result { try options.reconciler().plan(config).drift })
        }
        let ok = checks.allSatisfy(\.ok)
        if options.json {
            try printJSON(Output(ok: ok, checks: checks))
        } else {
            let rows = [("check", "expected", "observed", "")] + checks.map { ($0.name, $0.expected, $0.observed, $0.ok ? "ok" : "FAIL") }
            let w0 = rows.map(\.0.count).max() ?? 0, w1 = rows.map(\.1.count).max() ?? 0, w2 = rows.map(\.2.count).max() ?? 0
            func pad(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: max(0, w - s.count)) }
            for r in rows { print("\(pad(r.0, w0))  \(pad(r.1, w1))  \(pad(r.2, w2))  \(r.3)") }
        }
        if !ok { throw ExitCode(2) }
    }
}

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask the running sixgated to restart every part cleanly with the config it runs.",
        discussion: """
            The parts stop (the dynamic pool's state saved) and the daemon executes itself again, same PID, its TUN \
            queues and 6bed4 socket kept open across so that nothing in flight is lost. A changed config is not \
            reloaded this way: `apply` it, which reconciles the kernel and then reloads. Exit status: 0 restarting, \
            1 no daemon answers or its config file changed since it started.
            """
    )
    @Argument(help: "The config file, for the control socket's path.") var config = "/etc/sixgate/sixgate.toml"

    func run() throws {
        let c = try loadOrExit(config)
        try reporting("reload") {
            let reply = try ControlClient.ask(c.controller.controlSocket, ControlRequest(.restartParts), as: [String: String].self)
            print("sixgated restarts cleanly with \(reply["restarting"] ?? config)")
        }
    }
}

/// For tests of supervision: makes a part of the running daemon fail as if
/// it had crashed; the daemon restarts it.
struct InjectFault: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inject-fault",
        abstract: "Fail a part of the running sixgated, as a crash would (for tests).",
        shouldDisplay: false
    )
    @Argument(help: "The part: translator, dns64 or 6bed4.") var part: String
    @Argument(help: "The config file, for the control socket's path.") var config = "/etc/sixgate/sixgate.toml"

    func run() throws {
        let c = try loadOrExit(config)
        try reporting("inject-fault") {
            _ = try ControlClient.ask(c.controller.controlSocket, ControlRequest(.injectFault, part: part), as: [String: String].self)
            print("injected a fault into \(part)")
        }
    }
}

SixgateCtl.main()
