import ArgumentParser
import Controller
import DNS64
import Dispatch
import Foundation
import Glibc
import Logging
import NIOPosix
import Packet
import ServiceLifecycle
import SixBedFour
import Synchronization
import Translator

/// A part of the config that runs in the daemon.
enum Part: String, CaseIterable, Sendable {
    case translator
    case dns64
    case sixbedfour = "6bed4"
}

/// A part that cannot start, or stopped serving; the daemon exits 1 with it,
/// so that its supervisor (systemd) starts it again.
struct PartFailure: Error, CustomStringConvertible {
    let part: Part
    let reason: String
    var description: String { "\(part.rawValue): \(reason)" }
}

extension Error {
    /// What to log after the part's name.
    var reason: String { (self as? PartFailure)?.reason ?? "\(self)" }
}

/// Runs `parts` of `config` (read from `path`) as the services of one group
/// from that one config value, with the control socket beside them when
/// `control` (the whole daemon, not a part run alone for itself). SIGTERM
/// and SIGINT shut them down gracefully (the pool's state saved, counters
/// logged) and the process exits 0; a part that fails ends the group and the
/// process exits 1. When every part serves, systemd hears READY=1.
func serve(_ config: Config, path: String, parts: [Part], control: Bool) async throws {
    let registry = Registry(parts, config: config, path: path)
    var services: [ServiceGroupConfiguration.ServiceConfiguration] = parts.map { part in
        let logger = Logger(label: part.rawValue)
        let service: any Service = switch part {
        case .translator: TranslatorService(config: config, logger: logger, registry: registry, supervise: control)
        case .dns64: DNS64Service(config: config, logger: logger, registry: registry, supervise: control)
        case .sixbedfour: SixBedFourService(config: config, logger: logger, registry: registry, supervise: control)
        }
        return .init(service: service, successTerminationBehavior: .gracefullyShutdownGroup,
                     failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: part.rawValue)
    }
    if control {
        services.append(.init(service: ControlService(path: config.controller.controlSocket, registry: registry), serviceName: "control"))
        if let metrics = config.controller.metrics {
            services.append(.init(service: MetricsService(endpoint: metrics, registry: registry), serviceName: "metrics"))
        }
    }
    if let watchdog = Systemd.watchdogInterval {
        services.append(.init(service: WatchdogService(interval: watchdog), serviceName: "watchdog"))
    }
    var logger = Logger(label: "sixgated")
    logger.logLevel = .notice
    let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    registry.shutdown.withLock { $0 = { Task { await group.triggerGracefulShutdown() } } }
    do {
        try await group.run()
        if let path = registry.restartPath { reexecute(config: path, registry: registry) }
    } catch {
        let reason = "\(error)"
        Logger(label: "sixgated").error("stopping: \(reason)")
        Systemd.notify("STATUS=failed: \(reason)")
        throw ExitCode(1)
    }
}

/// Replaces this process with `sixgated run --config path` (same PID, so
/// systemd keeps following it). Every descriptor is close-on-exec; the parts
/// have stopped and saved their state.
func reexecute(config path: String, registry: Registry) -> Never {
    Logger(label: "sixgated").info("restarting with \(path)")
    if let last = registry.lastApply.withLock({ $0 }) { setenv(Registry.lastApplyVariable, last, 1) }
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    let words: [String] = [exe, "run", "--config", path]
    let argv = words.map { (w: String) -> UnsafeMutablePointer<CChar>? in strdup(w) } + [nil]
    execv(exe, argv)
    Logger(label: "sixgated").error("cannot execute \(exe) again: \(String(cString: strerror(errno)))")
    exit(1)
}

/// What `status` reports, filled in by the parts as they start, serve, fail
/// and restart. When every part serves the first time, it tells systemd
/// READY=1.
final class Registry: Sendable {
    struct Entry: Sendable {
        var state = "starting"
        var detail: [String] = []
        var counters: (@Sendable () -> [String: Int])?
        var restarts = 0
        /// Where a fault injected for this part goes (`inject`).
        var fault: AsyncStream<String>.Continuation?
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
    private let path: String
    private let started = ContinuousClock.now

    init(_ parts: [Part], config: Config, path: String) {
        state = Mutex(State(parts: parts.map { ($0, Entry()) }))
        self.config = config
        self.path = path
    }

    func serving(_ part: Part, detail: [String], counters: @escaping @Sendable () -> [String: Int]) {
        let names = state.withLock { s -> String? in
            s.update(part) {
                $0.state = "serving"
                $0.detail = detail
                $0.counters = counters
            }
            guard !s.ready, s.parts.allSatisfy({ $0.1.state == "serving" }) else { return nil }
            s.ready = true
            return s.parts.map(\.0.rawValue).joined(separator: ", ")
        }
        guard let names else { return }
        Logger(label: "sixgated").info("ready: \(names)")
        Systemd.notify("READY=1\nSTATUS=serving: \(names)")
    }

    func failed(_ part: Part, _ reason: String) {
        state.withLock { $0.update(part) { $0.state = "failed: \(reason)" } }
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
        Systemd.notify("RELOADING=1\nSTATUS=reloading \(path)")
        shutdown.withLock { $0 }?()
    }

    var restartPath: String? { reexec.withLock { $0 } }

    /// A new stream of the faults injected for `part`, for its current run.
    func faults(for part: Part) -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream.makeStream(of: String.self)
        state.withLock { $0.update(part) { $0.fault = continuation } }
        return stream
    }

    /// Fails `part` as a crash would; false when no such part runs.
    func inject(_ part: Part, _ reason: String) -> Bool {
        guard let c = state.withLock({ s in s.parts.first { $0.0 == part }?.1.fault }) else { return false }
        c.yield(reason)
        return true
    }

    var status: DaemonStatus {
        let parts = state.withLock { $0.parts }.map { part, entry in
            var counters = entry.counters?() ?? [:]
            counters["restarts"] = entry.restarts
            return PartStatus(name: part.rawValue, state: entry.state, detail: entry.detail, counters: counters)
        }
        return DaemonStatus(version: SixgateVersion.string, config: path, prefix: config.prefix.description,
                            uptime: Int((ContinuousClock.now - started).components.seconds), parts: parts,
                            lastApply: lastApply.withLock { $0 })
    }
}

/// The control socket: `status` for sixgatectl, as JSON.
struct ControlService: Service {
    let path: String
    let registry: Registry

    func run() async throws {
        let server = try ControlServer(path: path)
        let registry = registry
        server.start { request in
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            switch request.command {
            case "status":
                return (try? encoder.encode(registry.status)) ?? Data()
            case "reload":
                // sixgatectl apply hands over the config it has just applied to the kernel.
                guard let path = request.config else {
                    return (try? encoder.encode(ReloadAnswer(parts: [:], restarting: false, error: "reload needs a config"))) ?? Data()
                }
                let when = Date().formatted(.iso8601)
                let new: Config
                do {
                    new = try ConfigLoader.load(path: path)
                } catch {
                    registry.lastApply.withLock { $0 = "\(when) \(path): refused, the config is not valid" }
                    return (try? encoder.encode(ReloadAnswer(parts: [:], restarting: false, error: "\(error)"))) ?? Data()
                }
                let parts = ReloadAnswer.changes(from: registry.config, to: new)
                let restarting = parts.values.contains { $0 != "unchanged" } || new != registry.config
                let summary = ["translator", "dns64", "6bed4"].map { "\($0) \(parts[$0] ?? "unchanged")" }.joined(separator: ", ")
                registry.lastApply.withLock { $0 = "\(when) \(path): \(summary)\(restarting ? "; restarted with it" : "")" }
                defer { if restarting { registry.restart(with: path) } }
                return (try? encoder.encode(ReloadAnswer(parts: parts, restarting: restarting))) ?? Data()
            case "inject-fault":
                // For tests of supervision: the part fails as if it had crashed.
                guard let part = request.part.flatMap(Part.init(rawValue:)), registry.inject(part, "fault injected over the control socket") else {
                    return (try? encoder.encode(["error": "no such part runs here, or it cannot be failed"])) ?? Data()
                }
                return (try? encoder.encode(["injected": part.rawValue])) ?? Data()
            default:
                return (try? encoder.encode(["error": "unknown command \(request.command)"])) ?? Data()
            }
        }
        defer { server.remove() }
        try? await gracefulShutdown()
    }
}

/// Calls `tick` every `period` until a graceful shutdown; what `tick` throws
/// ends the service (and with it the group).
func everyUntilShutdown(_ period: Duration, _ tick: @escaping @Sendable () throws -> Void) async throws {
    try await cancelWhenGracefulShutdown {
        while !Task.isCancelled {
            try tick()
            try? await Task.sleep(for: period)
        }
    }
}

struct TranslatorService: Service {
    let config: Config
    let logger: Logger
    let registry: Registry
    /// Restart it when it fails (in the whole daemon) rather than end.
    let supervise: Bool

    func run() async throws {
        let c = config, logger = logger, registry = registry
        // The pool outlives a restarted datapath: its mappings stay.
        let pool = c.makePool(now: UInt64(time(nil)))
        @Sendable func save() {
            do { try pool?.save() } catch { logger.error("cannot save the pool state: \(error)") }
        }
        let once: @Sendable () async throws -> Void = {
            let datapath = TunDatapath(settings: c.translatorSettings, pool: pool, device: c.nat64.device,
                                       device4: c.nat64.device4, queues: c.translatorQueues)
            do {
                try datapath.start()
            } catch {
                throw PartFailure(part: .translator, reason: "\(error)")
            }
            let restored = pool.map { ", pool \($0.range) with \($0.count) restored mapping(s)" } ?? ""
            logger.info("translator ready: \(datapath.queues) queue(s) on \(c.nat64.device)\(c.nat64.device4.map { " and \($0)" } ?? ""), prefix \(c.prefix)\(restored)")
            let why = c.nat64.datapath == .auto ? "nat64.datapath = auto, and mainline Linux has no kernel translator" : "nat64.datapath = tun"
            registry.serving(.translator, detail: [
                "datapath tun (userspace), \(datapath.queues) queue(s) on \(c.nat64.device)\(c.nat64.device4.map { " and \($0)" } ?? ""): \(why)",
                "prefix \(c.prefix), \(c.nat64.eam.count) EAM(s)" + (pool.map { ", pool \($0.range)" } ?? ""),
            ]) {
                var counters = PartStatus.counters(datapath.counters.summary)
                if let pool {
                    counters["pool_mappings"] = pool.count
                    counters["pool_addresses"] = 1 << (32 - pool.range.length)
                }
                return counters
            }
            defer { save() }
            // Housekeeping: idle pool mappings go, and the state file follows the pool.
            try await runDatapath(.translator, logger: logger, every: .seconds(1), counters: { datapath.counters.summary },
                                  failure: { datapath.failure }, stop: datapath.stop, stopped: { datapath.stopped }) {
                pool?.expire(now: UInt64(time(nil)))
                save()
            }
        }
        if supervise { try await supervised(.translator, registry: registry, logger: logger, once) } else { try await once() }
    }
}

/// Serves a started datapath until a graceful shutdown or its failure
/// (`tick` every `period` meanwhile), logs why with its counters, then stops
/// it and waits (blocking, two seconds at most) until its threads have
/// ended, so that a restart never shares the device with them.
func runDatapath(_ part: Part, logger: Logger, every period: Duration, counters: @escaping @Sendable () -> String,
                 failure: @escaping @Sendable () -> String?, stop: () -> Void, stopped: () -> Bool,
                 tick: @escaping @Sendable () -> Void = {}) async throws {
    defer {
        stop()
        for _ in 0..<40 where !stopped() { usleep(50_000) }
    }
    do {
        try await everyUntilShutdown(period) {
            tick()
            if let reason = failure() { throw PartFailure(part: part, reason: reason) }
        }
    } catch {
        logger.error("\(part.rawValue) stopping: \(error.reason); counters: \(counters())")
        throw error
    }
    logger.info("\(part.rawValue) stopping; counters: \(counters())")
}

struct DNS64Service: Service {
    let config: Config
    let logger: Logger
    let registry: Registry
    /// Restart it when it fails (in the whole daemon) rather than end.
    let supervise: Bool

    func run() async throws {
        let settings = config.dns64Settings
        let group = MultiThreadedEventLoopGroup(numberOfThreads: settings.threads)
        // The upstream threads outlive a restarted server.
        let loops = UpstreamLoops(threads: settings.threads)
        let logger = logger, registry = registry
        let once: @Sendable () async throws -> Void = {
            let server: DNS64Server
            do {
                server = try DNS64Server(settings: settings, group: group, loops: loops)
            } catch {
                throw PartFailure(part: .dns64, reason: "\(error)")
            }
            let faults = registry.faults(for: .dns64)
            let rate = QueryRate()
            do {
                try await withThrowingTaskGroup(of: Void.self) { tasks in
                    tasks.addTask {
                        try await server.run {
                            logger.info("dns64 ready on \(settings.listen.map(\.description).joined(separator: ", ")), prefix \(settings.prefix), asking \(settings.upstreams.map(\.description).joined(separator: ", "))")
                            registry.serving(.dns64, detail: [
                                "listens on \(settings.listen.map(\.description).joined(separator: ", ")), asks \(settings.upstreams.map(\.description).joined(separator: ", "))",
                                "synthesises with \(settings.prefix), \(settings.threads) thread(s), UDP steering \(settings.udpSteering.rawValue)",
                            ]) {
                                let c = server.counters
                                var counters = PartStatus.counters(c.description)
                                counters["cache_hit_percent"] = Int((c.cacheHitRate * 100).rounded())
                                counters["qps"] = rate.perSecond
                                return counters
                            }
                        }
                    }
                    tasks.addTask {
                        while !Task.isCancelled {
                            rate.record(server.counters.queries)
                            try? await Task.sleep(for: .seconds(1))
                        }
                    }
                    // A fault injected over the control socket fails the part as a crash would.
                    tasks.addTask {
                        for await reason in faults { throw PartFailure(part: .dns64, reason: reason) }
                    }
                    try await tasks.next()
                    tasks.cancelAll()
                }
            } catch is CancellationError {
                logger.info("dns64 stopping; counters: \(server.counters)")
                return
            } catch {
                logger.error("dns64 stopping: \(error.reason); counters: \(server.counters)")
                throw error is PartFailure ? error : PartFailure(part: .dns64, reason: "\(error)")
            }
            logger.info("dns64 stopping; counters: \(server.counters)")
        }
        if supervise {
            try await supervised(.dns64, registry: registry, logger: logger, once)
        } else {
            do {
                try await cancelWhenGracefulShutdown(once)
            } catch is CancellationError {
            }
        }
    }
}

/// Queries per second over the last ten seconds, from the running total
/// sampled every second.
final class QueryRate: Sendable {
    private let samples = Mutex<[(ContinuousClock.Instant, Int)]>([])
    static let window = Duration.seconds(10)

    func record(_ total: Int) {
        let now = ContinuousClock.now
        samples.withLock { s in
            s.append((now, total))
            s.removeAll { now - $0.0 > Self.window + .milliseconds(500) }
        }
    }

    var perSecond: Int {
        samples.withLock { s in
            guard let first = s.first, let last = s.last, last.0 > first.0 else { return 0 }
            let span = (last.0 - first.0).components
            return Int((Double(last.1 - first.1) / (Double(span.seconds) + Double(span.attoseconds) / 1e18)).rounded())
        }
    }
}

/// Runs `once` again whenever it fails, after 1 s, then 2, 4 … up to 30 s
/// (back to 1 s after a minute of good service), until a graceful shutdown:
/// one part's failure does not take the others, or their state, with it.
func supervised(_ part: Part, registry: Registry, logger: Logger, _ once: @escaping @Sendable () async throws -> Void) async throws {
    var delay = Duration.seconds(1)
    while true {
        let began = ContinuousClock.now
        do {
            try await cancelWhenGracefulShutdown(once)
            return
        } catch is CancellationError {
            return
        } catch {
            if ContinuousClock.now - began > .seconds(60) { delay = .seconds(1) }
            registry.failed(part, "\(error.reason); restarting in \(delay.humanReadable)")
            logger.error("\(part.rawValue) failed: \(error.reason); restarting in \(delay.humanReadable)")
            do {
                let wait = delay
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
            } catch {
                return
            }
            delay = min(delay * 2, .seconds(30))
            registry.restarted(part)
        }
    }
}

struct SixBedFourService: Service {
    let config: Config
    let logger: Logger
    let registry: Registry
    /// Restart it when it fails (in the whole daemon) rather than end.
    let supervise: Bool

    func run() async throws {
        guard let settings = config.sixBedFourSettings else { throw PartFailure(part: .sixbedfour, reason: "sixbedfour.enabled is false") }
        let device = config.sixbedfour.device, prefix = config.prefix, logger = logger, registry = registry
        let current = Mutex<RouterDatapath?>(nil)
        onSignal(SIGUSR1) { _ in
            if let datapath = current.withLock({ $0 }) { logger.info("6bed4 counters: \(datapath.router.counters)") }
        }
        let once: @Sendable () async throws -> Void = {
            let datapath = RouterDatapath(settings: settings, device: device)
            do {
                try datapath.start()
            } catch {
                throw PartFailure(part: .sixbedfour, reason: "\(error)")
            }
            current.withLock { $0 = datapath }
            logger.info("6bed4 router ready on \(settings.endpoint) and \(device), prefix \(IPv6Prefix(address: settings.address, length: 64)), PREF64 \(prefix)")
            registry.serving(.sixbedfour, detail: ["router on \(settings.endpoint) and \(device), PREF64 \(prefix)"]) {
                PartStatus.counters(datapath.router.counters.description)
            }
            try await runDatapath(.sixbedfour, logger: logger, every: .milliseconds(500), counters: { "\(datapath.router.counters)" },
                                  failure: { datapath.failure }, stop: datapath.stop, stopped: { datapath.stopped })
        }
        if supervise { try await supervised(.sixbedfour, registry: registry, logger: logger, once) } else { try await once() }
    }
}

/// WATCHDOG=1 at half the interval systemd asked for, while the group runs.
struct WatchdogService: Service {
    let interval: Duration

    func run() async throws {
        try await everyUntilShutdown(interval / 2) { Systemd.notify("WATCHDOG=1") }
    }
}

/// sd_notify(3) without libsystemd: a datagram to $NOTIFY_SOCKET. Never
/// waits: a message the other end has no room for is dropped rather than
/// block a thread of the daemon.
enum Systemd {
    static func notify(_ state: String) {
        guard let path = ProcessInfo.processInfo.environment["NOTIFY_SOCKET"], !path.isEmpty else { return }
        var name = Array(path.utf8)
        if name[0] == UInt8(ascii: "@") { name[0] = 0 }  // an abstract socket
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        guard name.count <= MemoryLayout.size(ofValue: address.sun_path) else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: name) }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + name.count)
        _ = Array(state.utf8).withUnsafeBytes { bytes in
            withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT), $0, length) } }
        }
    }

    /// WATCHDOG_USEC, when it is meant for this process (WATCHDOG_PID unset or ours).
    static var watchdogInterval: Duration? {
        let env = ProcessInfo.processInfo.environment
        guard let usec = env["WATCHDOG_USEC"].flatMap(Int64.init), usec > 0 else { return nil }
        if let pid = env["WATCHDOG_PID"].flatMap(Int32.init), pid != getpid() { return nil }
        return .microseconds(usec)
    }
}

/// One line per event on standard error, with the part it comes from:
/// `sixgated[dns64]: dns64 ready on …`. journald adds the time.
struct LineLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let tag = label == "sixgated" ? "sixgated" : "sixgated[\(label)]"
        FileHandle.standardError.write(Data("\(tag): \(event.message)\n".utf8))
    }
}
