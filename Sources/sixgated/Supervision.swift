import Controller
import Foundation
import Glibc
import Logging
import ServiceLifecycle

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

/// Runs one part (`once`) until a graceful shutdown. With `restart` (the
/// whole daemon) a failure runs it again after 1 s, then 2, 4 … up to 30 s
/// (back to 1 s after a minute of good service): one part's failure does not
/// take the others, or their state, with it. Without, the failure is thrown.
/// A fault injected over the control socket fails it as a crash would.
func supervised(_ part: Part, restart: Bool, registry: Registry, logger: Logger, _ once: @escaping @Sendable () async throws -> Void) async throws {
    var delay = Duration.seconds(1)
    while true {
        let began = ContinuousClock.now
        let faults = registry.faults(for: part)
        do {
            try await cancelWhenGracefulShutdown {
                try await withThrowingTaskGroup(of: Void.self) { tasks in
                    tasks.addTask(operation: once)
                    tasks.addTask {
                        for await reason in faults { throw PartFailure(part: part, reason: reason) }
                    }
                    try await tasks.next()
                    tasks.cancelAll()
                }
            }
            return
        } catch is CancellationError {
            return
        } catch {
            guard restart else { throw error }
            if ContinuousClock.now - began > .seconds(60) { delay = .seconds(1) }
            registry.failed(part, "\(error.reason); restarting in \(delay.humanReadable)")
            logger.error("\(part.rawValue) failed: \(error.reason); restarting in \(delay.humanReadable)")
            do {
                let wait = delay
                try await cancelWhenGracefulShutdown { [wait] in try await Task.sleep(for: wait) }
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
