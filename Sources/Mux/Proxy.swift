import Foundation
import Synchronization

/// The multiplexer: IPv4 clients of one public address and port reach many
/// IPv6-only backends, chosen by the TLS server_name, the HTTP Host or the
/// port alone. Backends see each client as the prefix plus its IPv4
/// address, as through the translator: the connection to them is made from
/// that address (a transparent socket), so they need no change. TLS is
/// never terminated.
public final class MuxProxy: Sendable {
    public let settings: MuxSettings
    private let loops: [Loop]
    private let open = OpenCount()

    /// Binds every listener on every thread; throws, saying which, when one
    /// cannot be.
    public init(settings: MuxSettings) throws(MuxError) {
        self.settings = settings
        let listeners = try Listeners(settings)
        var loops: [Loop] = []
        for _ in 0..<max(1, settings.threads) {
            do throws(MuxError) {
                loops.append(try Loop(settings: settings, listeners: listeners, open: open))
            } catch {
                loops.forEach { $0.stop() }
                throw error
            }
        }
        self.loops = loops
    }

    /// Serves on its threads until `stop`.
    public func start() {
        // splice(2) into a socket the client has reset raises SIGPIPE, and
        // has no MSG_NOSIGNAL: unignored, one client closing mid-transfer
        // would end the process and every connection in it.
        signal(SIGPIPE, SIG_IGN)
        for (i, loop) in loops.enumerated() {
            let t = Thread { loop.run() }
            t.name = "sixgate.mux.\(i)"
            t.start()
        }
    }

    public func stop() { loops.forEach { $0.stop() } }

    /// Connections open now.
    public var connections: Int { open.value.load(ordering: .relaxed) }

    /// Per listener, summed over the threads.
    public var counters: [MuxListenerCounters] {
        loops.map { $0.counters.withLock { $0 } }
            .reduce(into: [MuxListenerCounters](repeating: MuxListenerCounters(), count: settings.listeners.count)) { sum, loop in
            for (i, l) in loop.enumerated() {
                sum[i].noMatch += l.noMatch
                sum[i].peekTimeouts += l.peekTimeouts
                sum[i].invalid += l.invalid
                sum[i].overLimit += l.overLimit
                sum[i].idleClosed += l.idleClosed
                for (route, r) in l.routes {
                    sum[i].routes[route, default: MuxRouteCounters()].connections += r.connections
                    sum[i].routes[route, default: MuxRouteCounters()].bytesUp += r.bytesUp
                    sum[i].routes[route, default: MuxRouteCounters()].bytesDown += r.bytesDown
                    sum[i].routes[route, default: MuxRouteCounters()].backendFailures += r.backendFailures
                }
            }
        }
    }
}
