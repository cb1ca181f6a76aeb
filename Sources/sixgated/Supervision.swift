import Common
import Reconcile
import Foundation
import Glibc
import Logging
import ServiceLifecycle
import Tun

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

/// One part of the config in a process of its own (`PartProcess`), started
/// again when that process ends: after 1 s, then 2, 4 … up to 30 s (back to
/// 1 s after a minute of good service). A crash there takes neither the
/// other parts nor their state with it. At a graceful shutdown the process
/// is stopped (SIGTERM, SIGKILL after ten seconds) or, at a reload, asked
/// to hand its queues and sockets over.
struct PartProcessService: Service {
    let part: Part
    let registry: Registry
    let logger: Logger

    func run() async throws {
        var delay = Duration.seconds(1)
        // What the program before a reload kept for this part.
        var descriptors = Handover.take(prefixed: "\(part.rawValue)/")
        defer { descriptors.forEach { close($0.fd) } }
        while !Task.isShuttingDownGracefully {
            if part == .dns64 {
                // Answers send clients to the prefix: they go out once the
                // translator serves it (make before break, also at boot). One
                // that cannot start delays DNS64 by five seconds at most.
                for _ in 0..<250 where registry.runs(.translator) && !registry.isServing(.translator) && !Task.isShuttingDownGracefully {
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
            let began = ContinuousClock.now
            let reason: String
            do {
                let process = try PartProcess.spawn(part, config: registry.path, text: registry.text, capabilities: part.capabilityMask(registry.config),
                                                descriptors: descriptors, registry: registry)
                descriptors = []
                registry.started(part, process)
                let registry = registry
                reason = await withGracefulShutdownHandler {
                    await process.ended()
                } onGracefulShutdown: {
                    if registry.restartPath != nil { process.handOver() } else { process.signal(SIGTERM) }
                    Task {
                        try? await Task.sleep(for: .seconds(10))
                        process.signal(SIGKILL)
                    }
                }
                registry.started(part, nil)
            } catch {
                reason = "\(error)"
            }
            if Task.isShuttingDownGracefully { return }
            if ContinuousClock.now - began > .seconds(60) { delay = .seconds(1) }
            registry.failed(part, "\(reason); restarting in \(delay.humanReadable)")
            logger.error("\(part.rawValue) failed: \(reason); restarting in \(delay.humanReadable)")
            let wait = delay
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
            } catch {
                return
            }
            delay = min(delay * 2, .seconds(30))
            registry.restarted(part)
        }
    }
}

/// Ends a renumbering when the last answer that carried an older prefix has
/// expired: the kernel state the config implies now (without that prefix's
/// routes and rules) is applied, and the daemon restarts without it, its
/// queues and sockets handed over so that nothing in flight is lost.
struct RenumberingService: Service {
    let registry: Registry
    let logger: Logger

    func run() async throws {
        guard let history = registry.history, let deadline = history.nextDeadline(after: UInt64(time(nil))) else { return }
        var wait = Duration.seconds(max(0, Int64(deadline) - Int64(time(nil))))
        while true {
            do {
                try await cancelWhenGracefulShutdown { [wait] in try await Task.sleep(for: wait) }
            } catch {
                return  // shut down first
            }
            let now = UInt64(time(nil))
            let ended = (history.retiring.filter { !$0.isActive(at: now) }.map(\.value)
                + history.retiringPools.filter { !$0.isActive(at: now) }.map { "pool \($0.value)" }).joined(separator: ", ")
            let changes: String
            do {
                // An apply that runs meanwhile finishes first; this one then finds its work done.
                let lock = try StateLock(stateDir: registry.config.controller.stateDir, .exclusive, wait: .seconds(20))
                defer { withExtendedLifetime(lock) {} }
                let reconciler = try Reconciler(namespace: nil)
                let plan = try reconciler.plan(registry.config)
                try reconciler.apply(plan)
                changes = plan.drift.isEmpty ? "no changes" : plan.drift.map(\.description).joined(separator: "; ")
            } catch {
                // The old routes and rules stay, harmless: tried again shortly.
                logger.error("renumbering: \(ended) retired, but applying that failed: \(error); trying again in 30 s")
                wait = .seconds(30)
                continue
            }
            logger.info("renumbering: \(ended) retired; \(changes)")
            // Otherwise the parts go on as they are (the translator has stopped
            // taking the old prefix by itself) until that edit is applied.
            guard registry.configFileUnchanged else {
                logger.warning("renumbering: \(registry.path) changed since it was applied; not restarting with it: `sixgatectl apply` it")
                registry.note("renumbering ended, \(ended) retired: \(changes); not restarted, the config file changed since")
                return
            }
            registry.note("renumbering ended, \(ended) retired: \(changes); restarted")
            registry.restart(with: registry.path)
            return
        }
    }
}
