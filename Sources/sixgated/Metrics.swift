import ControlProtocol
import Reconcile
import Foundation
import Glibc
import Packet
import Prometheus
import ServiceLifecycle
import Synchronization

/// The Prometheus endpoint (`controller.metrics`, off by default): the
/// counters of `status`, served as text at /metrics over plain HTTP/1.1, one
/// response per connection. Counters of a part are `sixgate_PART_NAME_total`;
/// rates and levels (qps, hit rate, pool usage) are gauges; `sixgate_part_up`
/// says which parts serve. The daemon's own: `sixgate_drift` and
/// `sixgate_drift_checked_timestamp_seconds` (its audit, `AuditService`) and
/// `sixgate_renumbering_deadline_timestamp_seconds` (0 without a renumbering).
struct MetricsService: Service {
    let endpoint: IPEndpoint
    let registry: Registry

    static let gauges: Set<String> = ["qps", "cache_hit_percent", "pool_mappings", "pool_addresses", "peers", "renumbering_flows", "connections_open"]

    func run() async throws {
        let fd = socket(endpoint.address.isV4 ? AF_INET : AF_INET6, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw MetricsError(endpoint: endpoint, code: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_storage()
        let length = endpoint.write(into: &address)
        guard withUnsafePointer(to: &address, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }) == 0,
              listen(fd, 16) == 0 else {
            let e = errno
            close(fd)
            throw MetricsError(endpoint: endpoint, code: e)
        }
        let exposition = Exposition(registry: registry)
        acceptConnections(on: fd, thread: "sixgate-metrics") { Self.answer($0, exposition) }
        try? await gracefulShutdown()
        // Wakes the accept, which then fails and ends the thread.
        shutdown(fd, Int32(SHUT_RDWR))
    }

    /// Reads the request head (at most 8 KiB) and answers it.
    static func answer(_ c: Int32, _ exposition: Exposition) {
        var head = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 2048)
        while head.count < 8192, !head.suffix(4).elementsEqual("\r\n\r\n".utf8) {
            let n = recv(c, &chunk, chunk.count, 0)
            guard n > 0 else { return }
            head += chunk[0..<n]
        }
        let requestLine = String(decoding: head.prefix { $0 != UInt8(ascii: "\r") }, as: UTF8.self)
        let parts = requestLine.split(separator: " ")
        let (status, body): (String, String) =
            parts.count >= 2 && parts[0] == "GET" && (parts[1] == "/metrics" || parts[1].hasPrefix("/metrics?"))
            ? ("200 OK", exposition.text())
            : ("404 Not Found", "sixgate serves /metrics only\n")
        let response = "HTTP/1.1 \(status)\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        _ = Array(response.utf8).withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}

struct MetricsError: Error, CustomStringConvertible {
    let endpoint: IPEndpoint
    let code: Int32
    var description: String { "cannot serve metrics on \(endpoint): \(String(cString: strerror(code))) (controller.metrics)" }
}

/// The Prometheus registry, brought up to date with `status` at each scrape.
final class Exposition: Sendable {
    private let registry: Registry
    private let prometheus = PrometheusCollectorRegistry()
    private struct Known {
        var counters: [String: (Counter, Int)] = [:]
        var gauges: [String: Gauge] = [:]
    }
    private let known = Mutex(Known())

    init(registry: Registry) { self.registry = registry }

    /// A metric of a part's counter, which has no help text of its own.
    static func named(_ name: String) -> MetricNameDescriptor { MetricNameDescriptor(metricName: name, unitName: "", helpText: "") }

    func text() -> String {
        let status = registry.status
        let audit = registry.audit.result, deadline = registry.renumberingDeadline ?? 0
        known.withLock { k in
            func gauge(_ name: String, _ help: String) -> Gauge {
                if let g = k.gauges[name] { return g }
                let g = prometheus.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help))
                k.gauges[name] = g
                return g
            }
            if let audit {
                gauge("sixgate_drift", "Objects of the live system that differ from the config, at the daemon's last audit").set(Int64(audit.drift))
                gauge("sixgate_drift_checked_timestamp_seconds", "When the daemon last audited the live system").set(Int64(audit.checked))
            }
            gauge("sixgate_renumbering_deadline_timestamp_seconds",
                  "The earliest deadline of the renumbering the daemon runs with, kept once past until the daemon ends it; 0 when none")
                .set(Int64(clamping: deadline))
            for part in status.parts {
                let name = part.name == "6bed4" ? "sixbedfour" : part.name
                let up = "sixgate_part_up{\(name)}"
                if k.gauges[up] == nil { k.gauges[up] = prometheus.makeGauge(descriptor: Self.named("sixgate_part_up"), labels: [("part", name)]) }
                k.gauges[up]?.set(Int64(part.state == .serving ? 1 : 0))
                for (counter, value) in part.counters {
                    // The multiplexer's are "LISTEN [ROUTE] NAME": the address and route become labels.
                    let words = counter.split(separator: " ").map(String.init)
                    let labels = zip(["listen", "route"], words.dropLast()).map { ($0, $1) }
                    let base = words.last ?? counter
                    let metric = "sixgate_\(name)_" + (labels.count == 2 ? "route_" : "")
                        + base.map { $0.isLetter || $0.isNumber ? $0 : "_" }.reduce(into: "") { $0.append($1) }
                    let key = metric + labels.map { "{\($0.0)=\($0.1)}" }.joined()
                    if MetricsService.gauges.contains(base) {
                        if k.gauges[key] == nil { k.gauges[key] = prometheus.makeGauge(descriptor: Self.named(metric), labels: labels) }
                        k.gauges[key]?.set(Int64(value))
                    } else {
                        let total = metric + "_total"
                        var (c, last) = k.counters[key] ?? (prometheus.makeCounter(descriptor: Self.named(total), labels: labels), 0)
                        if value < last {
                            // The part restarted and its counters with it: a new counter, as Prometheus expects a reset.
                            prometheus.unregisterCounter(c)
                            c = prometheus.makeCounter(descriptor: Self.named(total), labels: labels)
                            last = 0
                        }
                        c.increment(by: Int64(value - last))
                        k.counters[key] = (c, value)
                    }
                }
            }
        }
        return prometheus.emitToString()
    }
}
