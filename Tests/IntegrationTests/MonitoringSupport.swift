import Foundation
import Glibc
import NetnsRig
import SixBedFour
import Synchronization
import TCBPF
import Translator

/// promtool from Debian's prometheus package, without installing the
/// package (its postinst would start a Prometheus server on a machine
/// others share): `apt-get download` and `dpkg-deb -x` into .build/promtool,
/// once. No promtool is a failure, never a skip: the rules would go untested.
enum Promtool {
    static let directory = repoRoot + "/.build/promtool"
    static var path: String { directory + "/root/usr/bin/promtool" }

    struct Unavailable: Error, CustomStringConvertible {
        let description: String
    }

    private static let fetching = Mutex(())

    /// Its path, downloaded and unpacked the first time.
    static func located() throws -> String {
        try fetching.withLock { _ in
            if access(path, X_OK) != 0 { try fetch() }
            return path
        }
    }

    private static func run(_ argv: [String]) throws -> CommandResult {
        try Spawn.run(argv, timeout: .seconds(300), scratch: NSTemporaryDirectory())
    }

    private static func fetch() throws {
        // A directory of this process's own: another test run may fetch at the same time.
        let work = directory + "/fetch-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let download = ["sh", "-c", "cd \"$1\" && apt-get download prometheus", "sh", work]
        var got = try run(download)
        if !got.succeeded {
            // Package lists never fetched on this machine: fetch them (this installs nothing) and try again.
            let update = try run(["apt-get", "update", "-qq"])
            got = try run(download)
            if !got.succeeded { throw Unavailable(description: "cannot download Debian's prometheus package for promtool:\n\(update)\n\(got)") }
        }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: work)) ?? []
        guard let deb = files.first(where: { $0.hasPrefix("prometheus_") && $0.hasSuffix(".deb") }) else {
            throw Unavailable(description: "apt-get download prometheus left no package in \(work): \(got)")
        }
        let unpacked = try run(["dpkg-deb", "-x", work + "/" + deb, work + "/root"])
        guard unpacked.succeeded, access(work + "/root/usr/bin/promtool", X_OK) == 0 else {
            throw Unavailable(description: "\(deb) unpacked without usr/bin/promtool: \(unpacked)")
        }
        // Whole or not at all; when another run got there first, its copy serves.
        if rename(work + "/root", directory + "/root") != 0, access(path, X_OK) != 0 {
            throw Unavailable(description: "cannot move promtool to \(directory)/root: \(String(cString: strerror(errno)))")
        }
    }
}

/// The dashboard and the alert rules in dist/, read as Grafana and
/// Prometheus read them, for what they query.
enum MonitoringFiles {
    static let dashboard = repoRoot + "/dist/grafana/sixgate.json"
    static let rules = repoRoot + "/dist/prometheus/sixgate.rules.yml"
    static let rulesTests = repoRoot + "/Tests/IntegrationTests/Fixtures/sixgate.rules.test.yml"

    static func dashboardJSON() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: dashboard))
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw NotAnObject() }
        return object
    }

    struct NotAnObject: Error {}

    /// The panels, those inside (collapsed) rows too.
    static func panels(_ dashboard: [String: Any]) -> [[String: Any]] {
        let top = dashboard["panels"] as? [[String: Any]] ?? []
        return top.flatMap { [$0] + ($0["panels"] as? [[String: Any]] ?? []) }
    }

    /// Every PromQL expression of the dashboard: each panel's queries (by
    /// panel title and refId) and each query variable's.
    static func dashboardExpressions(_ dashboard: [String: Any]) -> [(place: String, expr: String)] {
        var found: [(String, String)] = []
        for panel in panels(dashboard) {
            for target in panel["targets"] as? [[String: Any]] ?? [] {
                found.append(("panel \"\(panel["title"] as? String ?? "?")\" \(target["refId"] as? String ?? "?")", target["expr"] as? String ?? ""))
            }
        }
        let variables = (dashboard["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? []
        for v in variables where v["type"] as? String == "query" {
            let query = (v["query"] as? [String: Any])?["query"] as? String ?? v["query"] as? String ?? ""
            found.append(("variable \(v["name"] as? String ?? "?")", query))
        }
        return found
    }

    /// Each alert's name and `expr`, a folded block read to its end. (No
    /// YAML parser here: the file is plain enough, and promtool checks it.)
    static func ruleExpressions() throws -> [(alert: String, expr: String)] {
        let lines = try String(contentsOfFile: rules, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        func indent(_ line: String) -> Int { line.prefix { $0 == " " }.count }
        var found: [(String, String)] = []
        var alert = "?"
        for (i, line) in lines.enumerated() {
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.hasPrefix("- alert:") { alert = String(text.dropFirst("- alert:".count)).trimmingCharacters(in: .whitespaces) }
            guard text.hasPrefix("expr:") else { continue }
            let value = String(text.dropFirst("expr:".count)).trimmingCharacters(in: .whitespaces)
            guard [">", ">-", "|", "|-"].contains(value) else {
                found.append((alert, value.trimmingCharacters(in: CharacterSet(charactersIn: "'\""))))
                continue
            }
            let block = lines[(i + 1)...].prefix { $0.trimmingCharacters(in: .whitespaces).isEmpty || indent($0) > indent(line) }
            found.append((alert, block.map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")))
        }
        return found
    }

    /// The sixgate metric names an expression reads.
    static func metricNames(in expr: String) -> Set<String> {
        var names = Set<String>()
        var rest = Substring(expr)
        while let start = rest.range(of: "sixgate_") {
            let name = rest[start.lowerBound...].prefix { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
            names.insert(String(name))
            rest = rest[name.endIndex...]
        }
        return names
    }

    /// Counters that sixgated exports only once they have counted
    /// something: a drop or error of each reason, a punt of the kernel
    /// datapath for each reason. Named from the enums their names come from.
    static let countedOnceHappened: Set<String> = {
        var names = Set(DropReason.allCases.map { "sixgate_translator_drop_\($0)_total" })
        names.formUnion(SentError.allCases.map { "sixgate_translator_sent_\($0)_total" })
        names.formUnion(KernelCounter.allCases.map(\.description).filter { $0.hasPrefix("punt.") }.map {
            "sixgate_translator_\($0.replacingOccurrences(of: ".", with: "_"))_total"
        })
        names.formUnion(RouterDrop.allCases.map { "sixgate_sixbedfour_drop_\($0)_total" })
        return names
    }()

    /// What the translator exports only during a renumbering.
    static let onlyWhileRenumbering: Set<String> = [
        "sixgate_translator_retiring_6to4_total", "sixgate_translator_retiring_4to6_total", "sixgate_translator_renumbering_flows",
    ]
}

/// A scrape of sixgated's /metrics.
struct Scrape {
    let text: String

    /// Name, labels and value of each sample.
    var samples: [(name: String, labels: String, value: Double)] {
        text.split(separator: "\n").compactMap { line in
            guard !line.hasPrefix("#"), let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { return nil }
            let series = line[..<space]
            let name = series.prefix { $0 != "{" }
            return (String(name), String(series.dropFirst(name.count)), value)
        }
    }

    var names: Set<String> { Set(samples.map(\.name)) }

    /// The value of an unlabelled metric.
    func value(_ name: String) -> Double? { samples.first { $0.name == name && $0.labels.isEmpty }?.value }

    func type(_ name: String) -> String? {
        text.split(separator: "\n").first { $0.hasPrefix("# TYPE \(name) ") }.map { String($0.split(separator: " ").last ?? "") }
    }
}
