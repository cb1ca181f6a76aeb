import Common
import ControlProtocol
import Configuration
import ArgumentParser
import Reconcile
import Datapaths
import DNS64
import Dispatch
import Foundation
import Glibc
import Logging
import Mux
import NIOPosix
import Packet
import ServiceLifecycle
import SixBedFour
import Synchronization
import Translator
import Tun

/// A part of the config that runs in the daemon.
enum Part: String, CaseIterable, Sendable {
    case translator
    case dns64
    case sixbedfour = "6bed4"
    case mux
}

/// A part that cannot start, or stopped serving: the whole daemon restarts
/// it (`supervised`); a part run alone exits 1 with it, for systemd.
struct PartFailure: Error, CustomStringConvertible {
    let part: Part
    let reason: String
    var description: String { "\(part.rawValue): \(reason)" }
}

extension Error {
    /// What to log after the part's name.
    var reason: String { (self as? PartFailure)?.reason ?? "\(self)" }
}

/// Runs `parts` of `config` (the text `text` of the file at `path`) as the
/// services of one group. The whole daemon (`control`) runs each part in a
/// process of its own (`PartProcessService`) beside the control socket,
/// metrics (with the audit they report) and the end of a renumbering; a
/// part run alone, or a part process (reporting over `uplink`), runs the
/// part here. SIGTERM and SIGINT shut them down gracefully (the pool's
/// state saved, counters logged) and the process exits 0. A part that fails is restarted with back-off when
/// `control`, else it ends the process with exit 1. When every part serves,
/// systemd hears READY=1; a reload ends with the process executing itself
/// again.
func serve(_ config: Config, text: String, path: String, parts: [Part], control: Bool, uplink: PartChannel?) async throws {
    let registry = Registry(parts, config: config, text: text, path: path, uplink: uplink)
    // A part's process speaks for its part.
    let log = Logger(label: uplink == nil ? "sixgated" : parts[0].rawValue)
    let inherited = Handover.inherited
    if !inherited.isEmpty {
        log.info("taking over from before the reload: \(inherited.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value))" }.joined(separator: ", "))")
    }
    var services: [ServiceGroupConfiguration.ServiceConfiguration] = parts.map { part in
        let logger = Logger(label: part.rawValue)
        let service: any Service = control ? PartProcessService(part: part, registry: registry, logger: logger)
            : PartService(part: part, config: config, logger: logger, registry: registry)
        return .init(service: service, successTerminationBehavior: .gracefullyShutdownGroup,
                     failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: part.rawValue)
    }
    if control {
        services.append(.init(service: ControlService(path: config.controller.controlSocket, registry: registry), serviceName: "control"))
        if !registry.retiring.isEmpty || !registry.retiringPools.isEmpty {
            services.append(.init(service: RenumberingService(registry: registry, logger: Logger(label: "sixgated")),
                                  successTerminationBehavior: .ignore, serviceName: "renumbering"))
        }
        if let metrics = config.controller.metrics {
            services.append(.init(service: MetricsService(endpoint: metrics, registry: registry), serviceName: "metrics"))
            services.append(.init(service: AuditService(registry: registry, logger: Logger(label: "sixgated")), serviceName: "audit"))
        }
        // The router's counters, logged by the router's process (once it
        // serves: before, SIGUSR1 would end it).
        onSignal(SIGUSR1) { _ in
            if registry.isServing(.sixbedfour) { registry.process(of: .sixbedfour)?.signal(SIGUSR1) }
        }
    }
    if let uplink {
        services.append(.init(service: UplinkService(channel: uplink, registry: registry), serviceName: "uplink"))
    }
    if let watchdog = Systemd.watchdogInterval {
        services.append(.init(service: WatchdogService(interval: watchdog), serviceName: "watchdog"))
    }
    var logger = Logger(label: "sixgated")
    logger.logLevel = .notice
    let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    registry.shutdown.withLock { $0 = { Task { await group.triggerGracefulShutdown() } } }
    // What a reload handed over is closed once every part serves; when one
    // cannot, ten seconds after the start: an unread TUN queue loses packets.
    Task {
        try? await Task.sleep(for: .seconds(10))
        Handover.closeUnclaimed()
    }
    do {
        try await group.run()
        if let path = registry.restartPath { reexecute(config: path, registry: registry) }
        if let uplink, Handover.isArmed { handOver(to: uplink, log: log) }
    } catch {
        let reason = "\(error)"
        log.error("stopping: \(reason)")
        uplink?.send(.failed(reason: error.reason))
        Systemd.notify("STATUS=failed: \(reason)")
        throw ExitCode(1)
    }
}

/// A part process's last act at a reload: what its part kept open (TUN
/// queues, sockets) goes to `sixgated run`, for the part process after the
/// reload.
func handOver(to uplink: PartChannel, log: Logger) {
    let kept = Handover.passing()
    for start in stride(from: 0, to: kept.count, by: PartChannel.descriptorsPerMessage) {
        let chunk = kept[start..<min(start + PartChannel.descriptorsPerMessage, kept.count)]
        if !uplink.send(.handedOver(keys: chunk.map(\.key)), descriptors: chunk.map(\.fd)) {
            log.error("cannot hand \(chunk.map(\.key).joined(separator: ", ")) over: \(String(cString: strerror(errno)))")
        }
    }
    for d in kept { close(d.fd) }
}

/// Replaces this process with `sixgated run --config path` (same PID, so
/// systemd keeps following it). Every descriptor is close-on-exec; the parts
/// have stopped and saved their state.
func reexecute(config path: String, registry: Registry) -> Never {
    Logger(label: "sixgated").info("restarting with \(path)")
    if let last = registry.lastApply.withLock({ $0 }) { setenv(Registry.lastApplyVariable, last, 1) }
    setenv(Handover.variable, Handover.environment(), 1)
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    let words: [String] = [exe, "run", "--config", path]
    let argv = words.map { (w: String) -> UnsafeMutablePointer<CChar>? in strdup(w) } + [nil]
    execv(exe, argv)
    Logger(label: "sixgated").error("cannot execute \(exe) again: \(String(cString: strerror(errno)))")
    exit(1)
}

/// One part of the config, run in this process (a part process, or a part
/// run alone) until a graceful shutdown or its failure, which it throws.
struct PartService: Service {
    let part: Part
    let config: Config
    let logger: Logger
    let registry: Registry

    func run() async throws {
        let once = switch part {
        case .translator: translator()
        case .dns64: dns64()
        case .sixbedfour: try sixBedFour()
        case .mux: mux()
        }
        do {
            try await cancelWhenGracefulShutdown(once)
        } catch is CancellationError {
            return
        }
    }

    func translator() -> @Sendable () async throws -> Void {
        let c = config, logger = logger, registry = registry
        // The pool's mappings come from its state file, saved every second,
        // so a restarted part process keeps them; so, during a renumbering,
        // does which prefix each flow uses (saved every 30 s).
        let pool = c.makePool(now: UInt64(time(nil)), retiring: registry.retiringPools)
        var settings = c.translatorSettings
        settings.retiring = registry.retiring
        let flows = settings.retiring.isEmpty ? nil : PrefixFlows()
        if flows == nil { try? FileManager.default.removeItem(atPath: c.flowStateFile) }
        flows?.load(from: c.flowStateFile, now: UInt64(time(nil)), accepting: [c.prefix] + settings.retiring.map(\.value))
        let flowsSaved = Mutex<UInt64>(0)
        /// The flow table is copied under the lock every queue takes: written
        /// every 30 s while it runs (and when it stops), not every second.
        @Sendable func save(stopping: Bool = false) {
            do { try pool?.save() } catch { logger.error("cannot save the pool state: \(error)") }
            guard let flows else { return }
            let now = UInt64(time(nil))
            guard stopping || flowsSaved.withLock({ last in
                guard now >= last + 30 else { return false }
                last = now
                return true
            }) else { return }
            do { try flows.save(to: c.flowStateFile) } catch { logger.error("cannot save the flows of the renumbering: \(error)") }
        }
        let once: @Sendable () async throws -> Void = { [settings] in
            let choice: DatapathChoice, pins: String
            do {
                pins = try KernelProgramPlan.directory(bpfDir: c.controller.bpfDir, stateDir: c.controller.stateDir, namespace: nil)
            } catch {
                throw PartFailure(part: .translator, reason: "\(error)")
            }
            do {
                choice = try DatapathFactory.start(c.nat64.datapath, DatapathSetup(settings: settings, pool: pool, flows: flows, device: c.nat64.device,
                                                                                    device4: c.nat64.device4, queues: c.translatorQueues, pins: pins))
            } catch {
                throw PartFailure(part: .translator, reason: error.reason)
            }
            let datapath = choice.datapath
            let restored = pool.map { ", pool \($0.range) with \($0.count) restored mapping(s)" } ?? ""
            let retiring = settings.retiring.map { ", retiring \($0.value)" }.joined()
            logger.info("translator ready: \(datapath.detail), prefix \(c.prefix)\(retiring)\(restored) (\(choice.why))")
            registry.serving(.translator, detail: [
                "datapath \(datapath.detail): \(choice.why)",
                "prefix \(c.prefix)\(retiring), \(c.nat64.eam.count) EAM(s)"
                    + (pool.map { ", pool \($0.range)" + $0.retiring.map { ", keeping \($0.value) for its hosts" }.joined() } ?? ""),
            ]) {
                var counters = PartStatus.counters(datapath.counters.fields + datapath.ownCounters)
                if let flows { counters["renumbering_flows"] = flows.count }
                if let pool {
                    counters["pool_mappings"] = pool.count
                    counters["pool_addresses"] = 1 << (32 - pool.range.length)
                }
                return counters
            }
            defer { save(stopping: true) }
            // Housekeeping: idle pool mappings go, and the state file follows the pool.
            try await runDatapath(.translator, logger: logger, every: .seconds(1),
                                  counters: { (datapath.counters.fields + datapath.ownCounters).map { "\($0.0)=\($0.1)" }.joined(separator: " ") },
                                  failure: { datapath.failure }, stop: datapath.stop, stopped: { datapath.stopped }) {
                let now = UInt64(time(nil))
                datapath.housekeeping(now: now)
                pool?.expire(now: now)
                save()
            }
        }
        return once
    }

    func dns64() -> @Sendable () async throws -> Void {
        let settings = config.dns64Settings
        let group = MultiThreadedEventLoopGroup(numberOfThreads: settings.threads)
        let loops = UpstreamLoops(threads: settings.threads)
        let logger = logger, registry = registry
        let listen = settings.listen.map(\.description).joined(separator: ", ")
        let upstreams = settings.upstreams.map(\.description).joined(separator: ", ")
        let once: @Sendable () async throws -> Void = {
            let server: DNS64Server
            do {
                server = try DNS64Server(settings: settings, group: group, loops: loops)
            } catch {
                throw PartFailure(part: .dns64, reason: "\(error)")
            }
            let rate = QueryRate()
            do {
                try await withThrowingTaskGroup(of: Void.self) { tasks in
                    tasks.addTask {
                        try await server.run {
                            logger.info("dns64 ready on \(listen), prefix \(settings.prefix), asking \(upstreams)")
                            registry.serving(.dns64, detail: [
                                "listens on \(listen), asks \(upstreams)",
                                "synthesises with \(settings.prefix), \(settings.threads) thread(s), UDP steering \(settings.udpSteering.rawValue)",
                            ]) {
                                let c = server.counters
                                var counters = PartStatus.counters(c.fields)
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
                    try await tasks.next()
                    tasks.cancelAll()
                }
            } catch is CancellationError {
                // A graceful shutdown: logged below like an ordinary end.
            } catch {
                logger.error("dns64 stopping: \(error.reason); counters: \(server.counters)")
                throw error is PartFailure ? error : PartFailure(part: .dns64, reason: "\(error)")
            }
            logger.info("dns64 stopping; counters: \(server.counters)")
        }
        return once
    }

    func sixBedFour() throws -> @Sendable () async throws -> Void {
        guard var configured = config.sixBedFourSettings else { throw PartFailure(part: .sixbedfour, reason: "sixbedfour.enabled is false") }
        configured.advertisement.retiredPref64 = registry.retiring.map(\.value)
        let settings = configured
        let device = config.sixbedfour.device, prefix = config.prefix, logger = logger, registry = registry
        let current = Mutex<RouterDatapath?>(nil)
        onSignal(SIGUSR1) { _ in
            if let datapath = current.withLock({ $0 }) { logger.info("6bed4 counters: \(datapath.router.counters)") }
        }
        let once: @Sendable () async throws -> Void = {
            let datapath = RouterDatapath(settings: settings, device: device)
            let withdrawn = settings.advertisement.retiredPref64.map { ", withdrawing \($0) (lifetime 0)" }.joined()
            do {
                try datapath.start()
            } catch {
                throw PartFailure(part: .sixbedfour, reason: "\(error)")
            }
            current.withLock { $0 = datapath }
            logger.info("""
                6bed4 router ready on \(settings.endpoint) and \(device), prefix \(IPv6Prefix(address: settings.address, length: 64)), \
                PREF64 \(prefix)\(withdrawn)
                """)
            registry.serving(.sixbedfour, detail: ["router on \(settings.endpoint) and \(device), PREF64 \(prefix)\(withdrawn)"]) {
                PartStatus.counters(datapath.router.counters.fields)
            }
            try await runDatapath(.sixbedfour, logger: logger, every: .milliseconds(500), counters: { "\(datapath.router.counters)" },
                                  failure: { datapath.failure }, stop: datapath.stop, stopped: { datapath.stopped })
        }
        return once
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

extension PartService {
    /// The multiplexer: its listeners bound (failing the part, saying which,
    /// when one cannot be), then its threads serve until a graceful shutdown.
    func mux() -> @Sendable () async throws -> Void {
        let settings = config.muxSettings, logger = logger, registry = registry
        return {
            let proxy: MuxProxy
            do {
                proxy = try MuxProxy(settings: settings)
            } catch {
                throw PartFailure(part: .mux, reason: "\(error)")
            }
            proxy.start()
            defer { proxy.stop() }
            let listeners = settings.listeners.map { "\($0.listen) (\($0.kind.rawValue), \($0.routes.count) route(s))" }.joined(separator: ", ")
            logger.info("mux ready on \(listeners), backends see clients under \(settings.prefix)")
            registry.serving(.mux, detail: ["listens on \(listeners)", "backends see clients under \(settings.prefix), \(settings.threads) thread(s)"]) {
                var counters = ["connections_open": proxy.connections]
                for (listener, c) in zip(settings.listeners, proxy.counters) {
                    let l = "\(listener.listen)"
                    for (key, value) in [("no_match", c.noMatch), ("peek_timeouts", c.peekTimeouts), ("invalid", c.invalid),
                                         ("over_limit", c.overLimit), ("idle_closed", c.idleClosed)] {
                        counters["\(l) \(key)"] = value
                    }
                    for (route, r) in c.routes {
                        for (key, value) in [("connections", r.connections), ("bytes_up", r.bytesUp), ("bytes_down", r.bytesDown),
                                             ("backend_failures", r.backendFailures)] {
                            counters["\(l) \(route) \(key)"] = value
                        }
                    }
                }
                return counters
            }
            try? await gracefulShutdown()
            logger.info("mux stopping; \(proxy.connections) connection(s) open")
        }
    }
}
