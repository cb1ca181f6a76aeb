import Configuration
import Common
import Reconcile
import Foundation
import Glibc
import Logging
import ServiceLifecycle
import Synchronization

/// What the daemon's own audit last found (`AuditService`), for Prometheus:
/// nil until one has succeeded, so that a drift nobody measured is absent
/// rather than a reassuring 0.
final class AuditRecord: Sendable {
    struct Result: Sendable, Equatable {
        /// Objects that differ from the config, as `sixgatectl audit` lists them.
        let drift: Int
        /// When that was measured (seconds since 1970).
        let checked: UInt64
    }

    private let last = Mutex<Result?>(nil)

    var result: Result? { last.withLock { $0 } }

    func record(_ result: Result) { last.withLock { $0 = result } }
}

/// Compares the live system with the config the daemon runs, as `sixgatectl
/// audit` does, at the start and then every `interval`: a rule flushed by
/// hand or a route gone with a link shows up in `sixgate_drift` without
/// anyone running audit. It repairs nothing (that is apply's, on the
/// operator's word), and holds the state lock shared like audit, so that it
/// never counts an apply half-way. It runs where metrics are served: they
/// and the log are what read it.
struct AuditService: Service {
    let registry: Registry
    let logger: Logger

    /// Once a minute: an audit costs about 0.2 s with 10,000 routes.
    static let defaultInterval = Duration.seconds(60)
    /// When an apply holds the lock: it is over in a moment, and a reload
    /// would otherwise leave the new daemon unaudited for a whole interval.
    static let busyRetry = Duration.seconds(1)

    /// `SIXGATE_AUDIT_INTERVAL` (seconds) is for tests, which cannot wait a minute for drift to show.
    static var interval: Duration {
        guard let text = ProcessInfo.processInfo.environment["SIXGATE_AUDIT_INTERVAL"], let seconds = Int(text), seconds > 0 else {
            return defaultInterval
        }
        return .seconds(seconds)
    }

    enum Outcome {
        case drift([Drift])
        /// An apply is changing the system now.
        case busy
        case failed(String)
    }

    /// One audit of `config` in this network namespace.
    static func audit(_ config: Config) -> Outcome {
        do {
            let lock: StateLock
            do {
                lock = try StateLock(stateDir: config.controller.stateDir, .shared, wait: .zero)
            } catch is StateLockBusy {
                return .busy
            }
            defer { withExtendedLifetime(lock) {} }
            return .drift(try Reconciler(namespace: nil).plan(config).drift)
        } catch {
            return .failed("\(error)")
        }
    }

    func run() async throws {
        let interval = Self.interval
        // What was last logged: a lasting state is logged once, not every minute.
        var logged: String?
        while !Task.isShuttingDownGracefully {
            var wait = interval
            let line: String?
            switch Self.audit(registry.config) {
            case .drift(let drift):
                registry.audit.record(.init(drift: drift.count, checked: UInt64(time(nil))))
                line = drift.isEmpty ? (logged == nil ? nil : "audit: no drift")
                    : "audit: \(Drift.summary(drift)) against \(registry.path); `sixgatectl audit` lists them, `sixgatectl apply` repairs them"
            case .busy:
                wait = Self.busyRetry
                line = logged
            case .failed(let reason):
                // The timestamp stops advancing, which is what an alert sees.
                line = "audit: cannot compare the live system with \(registry.path): \(reason)"
            }
            if let line, line != logged {
                if line == "audit: no drift" { logger.info("\(line)") } else { logger.warning("\(line)") }
                logged = line
            }
            do {
                try await cancelWhenGracefulShutdown { [wait] in try await Task.sleep(for: wait) }
            } catch {
                return
            }
        }
    }
}
