import Common
import ControlProtocol
import Configuration
import Reconcile
import Foundation
import Logging
import Packet
import ServiceLifecycle
import Synchronization
import Translator
import Tun

/// What `status` reports, filled in by the parts as they start, serve, fail
/// and restart. When every part serves the first time, it tells systemd
/// READY=1.
final class Registry: Sendable {
    struct Entry: Sendable {
        var state = PartState.starting
        var detail: [String] = []
        var counters: (@Sendable () -> [String: Int])?
        var restarts = 0
        /// Its process, while one runs (`sixgated run`).
        var process: PartProcess?
    }

    private struct State {
        var parts: [(Part, Entry)]
        var ready = false

        mutating func update(_ part: Part, _ change: (inout Entry) -> Void) {
            if let i = parts.firstIndex(where: { $0.0 == part }) { change(&parts[i].1) }
        }
    }

    private let state: Mutex<State>
    let config: Config
    /// The config file's text that `config` is: what part processes run.
    let text: String
    /// The supervisor of this part process.
    let uplink: PartChannel?
    /// Older prefixes and pools of a renumbering under way (`PrefixHistory`),
    /// as the apply before this start left them: every part serves them too.
    let history: PrefixHistory?
    let path: String
    private let started = ContinuousClock.now

    init(_ parts: [Part], config: Config, text: String, path: String, uplink: PartChannel? = nil) {
        state = Mutex(State(parts: parts.map { ($0, Entry()) }))
        self.config = config
        self.text = text
        self.uplink = uplink
        self.path = path
        history = PrefixHistory.running(config)
    }

    /// What the daemon's own audit last found (`AuditService`).
    let audit = AuditRecord()

    /// The earliest deadline of the renumbering this daemon runs with, also
    /// once passed: until the daemon ends it (applying the config without
    /// the old prefix or pool, then restarting without them), it stays, so
    /// that a renumbering stuck past its deadline can be seen. Nil when none.
    var renumberingDeadline: UInt64? { history.flatMap { ($0.retiring + $0.retiringPools).map(\.until).min() } }

    /// The retiring prefixes and pools a part starting now serves.
    var retiring: [RetiringPrefix] { history?.active(at: UInt64(time(nil))) ?? [] }
    var retiringPools: [Retiring<IPv4Prefix>] { history?.activePools(at: UInt64(time(nil))) ?? [] }

    /// Whether the config file still holds the config that runs: a restart
    /// reads it again, and must not put an edit nobody applied into force.
    var configFileUnchanged: Bool { (try? loadScoped(path)) == config }

    /// Records, for `status`, what the last apply (or the daemon itself) did.
    func note(_ what: String) {
        lastApply.withLock { $0 = "\(Date().formatted(.iso8601)) \(what)" }
    }

    func serving(_ part: Part, detail: [String], counters: @escaping @Sendable () -> [String: Int]) {
        uplink?.send(.serving(detail: detail))
        let names = state.withLock { s -> String? in
            s.update(part) {
                $0.state = .serving
                $0.detail = detail
                $0.counters = counters
            }
            guard !s.ready, s.parts.allSatisfy({ $0.1.state == .serving }) else { return nil }
            s.ready = true
            return s.parts.map(\.0.rawValue).joined(separator: ", ")
        }
        guard let names else { return }
        // Every part has taken what a reload handed over; the rest is stale.
        Handover.closeUnclaimed()
        // A part process's supervisor says when the whole daemon is ready.
        guard uplink == nil else { return }
        Logger(label: "sixgated").info("ready: \(names)")
        Systemd.notify("READY=1\nSTATUS=serving: \(names)")
    }

    func runs(_ part: Part) -> Bool { state.withLock { s in s.parts.contains { $0.0 == part } } }

    func isServing(_ part: Part) -> Bool { state.withLock { s in s.parts.first { $0.0 == part }?.1.state == .serving } }

    func failed(_ part: Part, _ reason: String) {
        state.withLock { $0.update(part) { $0.state = .failed(reason) } }
    }

    func restarted(_ part: Part) {
        state.withLock { $0.update(part) { $0.restarts += 1 } }
    }

    /// The config file to restart with, once a reload asked for it.
    private let reexec = Mutex<String?>(nil)
    /// The last apply that reached the daemon; handed over a restart in the environment.
    let lastApply = Mutex<String?>(ProcessInfo.processInfo.environment[Registry.lastApplyVariable])
    static let lastApplyVariable = "SIXGATE_LAST_APPLY"
    /// Shuts the group down gracefully; set once the group exists.
    let shutdown = Mutex<(@Sendable () -> Void)?>(nil)

    /// Stops every part cleanly, after which the daemon executes itself
    /// again with `path` (`restartPath`).
    func restart(with path: String) {
        reexec.withLock { $0 = path }
        // The parts keep their TUN queues and sockets open for the new
        // program instead of closing them: what arrives meanwhile waits.
        Handover.arm()
        Systemd.notify("RELOADING=1\nSTATUS=reloading \(path)")
        shutdown.withLock { $0 }?()
    }

    var restartPath: String? { reexec.withLock { $0 } }

    func started(_ part: Part, _ process: PartProcess?) {
        state.withLock { $0.update(part) { $0.process = process } }
    }

    func process(of part: Part) -> PartProcess? { state.withLock { s in s.parts.first { $0.0 == part }?.1.process } }

    /// Fails `part` as a crash would (its process killed); false when no such part runs.
    func inject(_ part: Part, _ reason: String) -> Bool {
        guard let process = process(of: part) else { return false }
        process.signal(SIGKILL, reason: reason)
        return true
    }

    /// A part process's reload: its part stops, keeping its queues and
    /// sockets for `sixgated run` to pass on.
    func handOver() {
        Handover.arm()
        shutdown.withLock { $0 }?()
    }

    var status: DaemonStatus {
        let parts = state.withLock { $0.parts }.map { part, entry in
            var counters = entry.counters?() ?? [:]
            counters["restarts"] = entry.restarts
            return PartStatus(name: part.rawValue, state: entry.state, detail: entry.detail, counters: counters, pid: entry.process?.pid)
        }
        let now = UInt64(time(nil))
        return DaemonStatus(version: SixgateVersion.string, config: path, prefix: config.prefix.description,
                            uptime: Int((ContinuousClock.now - started).components.seconds), parts: parts,
                            lastApply: lastApply.withLock { $0 },
                            retiring: history?.retiring.filter { $0.isActive(at: now) } ?? [],
                            retiringPools: history?.retiringPools.filter { $0.isActive(at: now) } ?? [])
    }
}

/// The control socket: `status`, `reload` (a config apply hands over),
/// `restart` (a clean reload with the same config) and `inject-fault`, as JSON.
struct ControlService: Service {
    let path: String
    let registry: Registry

    func run() async throws {
        let server = try ControlServer(path: path)
        let registry = registry
        server.start { request in
            func reply(_ value: some Encodable) -> Data {
                let encoder = JSONEncoder()
                encoder.outputFormatting = .sortedKeys
                return (try? encoder.encode(value)) ?? Data()
            }
            switch request.command {
            case .status:
                return reply(registry.status)
            case .takeConfig:
                // sixgatectl apply hands over the config it has just applied to the kernel.
                guard let path = request.config else { return reply(ReloadAnswer(parts: [:], restarting: false, error: "take-config needs a config")) }
                let new: Config
                do {
                    new = try loadScoped(path)
                } catch {
                    registry.note("\(path): refused, the config is not valid")
                    return reply(ReloadAnswer(parts: [:], restarting: false, error: "\(error)"))
                }
                let answer = ReloadAnswer(parts: ReloadAnswer.changes(from: registry.config, to: new), restarting: new != registry.config)
                registry.note("\(path): \(answer.summary)\(answer.restarting ? "; restarted with it" : "")")
                defer { if answer.restarting { registry.restart(with: path) } }
                return reply(answer)
            case .restartParts:
                // sixgatectl reload: every part stopped cleanly and started again
                // with the config the daemon runs, as long as its file still says so.
                guard registry.configFileUnchanged else {
                    return reply(["error": "\(registry.path) is no longer the config sixgated runs (changed or not valid): "
                                      + "`sixgatectl apply` it, which reloads the daemon too"])
                }
                registry.note("clean reload asked for; restarted")
                defer { registry.restart(with: registry.path) }
                return reply(["restarting": registry.path])
            case .injectFault:
                // For tests of supervision: the part fails as if it had crashed.
                guard let part = request.part.flatMap(Part.init(rawValue:)), registry.inject(part, "fault injected over the control socket") else {
                    return reply(["error": "no such part runs here, or it cannot be failed"])
                }
                return reply(["injected": part.rawValue])
            }
        }
        defer { server.remove() }
        try? await gracefulShutdown()
    }
}
