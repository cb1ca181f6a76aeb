import Demo
import Foundation
import Glibc
import NetnsRig
import Testing

/// The Grafana dashboard and the Prometheus alert rules of dist/ against a
/// real sixgated: they query only metrics it exports, promtool accepts and
/// unit-tests the rules, and the daemon's own gauges (drift, renumbering
/// deadline) say what the live system is.
@Suite(.serialized) struct MonitoringTests {
    static let metrics = "http://[2001:db8:1::1]:9164/metrics"
    static let s4old = "2001:db8:64::cb00:7102"

    /// A multiplexer beside the demo's parts: c4 reaches s6's web server by
    /// its Host on an IPv4 address of the gateway.
    static let mux = """
        [[mux]]
        listen = "203.0.113.20:80"
        kind = "http-host"
        [[mux.route]]
        name = "www.example.com"
        backend = "[2001:db8:2::10]:8080"

        """

    /// The demo gateway serving metrics, its daemon auditing every second
    /// (instead of every minute) with no more capabilities than the systemd
    /// unit grants.
    static func gateway(tune: @escaping (String) -> String = { $0 }) throws -> DemoGateway {
        let unit = try String(contentsOfFile: repoRoot + "/dist/systemd/sixgate.service", encoding: .utf8)
        let granted = try #require(unit.split(separator: "\n").first { $0.hasPrefix("CapabilityBoundingSet=") }).dropFirst("CapabilityBoundingSet=".count)
            .split(separator: " ").map { "+" + $0.dropFirst("CAP_".count).lowercased() }
        let wrapper = ["setpriv", "--bounding-set", (["-all"] + granted).joined(separator: ","), "env", "SIXGATE_AUDIT_INTERVAL=1"]
        return try DemoGateway(bin: binDir, daemonWrapper: wrapper) {
            tune($0.replacingOccurrences(of: "[controller]\n", with: "[controller]\nmetrics = \"[2001:db8:1::1]:9164\"\n"))
        }
    }

    static func scrape(_ rig: NetnsRig) throws -> Scrape {
        let r = try rig.run("c6", ["curl", "-sS", "--max-time", "5", metrics])
        guard r.succeeded else { throw RigError.commandFailed(r) }
        return Scrape(text: r.stdout)
    }

    /// Every sixgate metric the dashboard and the rules query is one a
    /// daemon running every part exports, after traffic through each part
    /// (the counters that appear only once they count something: one of
    /// each kind made to count, the rest of their kind named after the
    /// source's enums). Its audit gauge is 0 after apply, follows a rule
    /// flushed by hand as `sixgatectl audit` sees it, and 0 again after
    /// apply repairs it.
    @Test func theDashboardAndTheRulesQueryOnlyWhatSixgatedExports() throws {
        let before = UInt64(time(nil))
        let demo = try Self.gateway { $0 + Self.mux }
        defer { demo.rig.teardown() }
        let rig = demo.rig
        let daemon = try #require(demo.daemon)
        #expect(daemon.errors.contains("ready: translator, dns64, 6bed4, mux"), "\(daemon.errors)")

        // Traffic through each part: DNS64, the translator (a hop limit that
        // runs out there too: a drop, an ICMPv6 error, a punt of the kernel
        // datapath), the multiplexer, and a datagram the 6bed4 router drops.
        let dig = try rig.run("c6", ["dig", "+short", "+time=2", "@2001:db8:1::1", "www.example.org", "AAAA"])
        #expect(dig.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == DemoGateway.s4in6, "\(dig)")
        let fetched = try rig.run("c6", DemoGateway.fetchS4)
        #expect(fetched.stdout.contains("hello from s4"), "\(fetched)")
        let expired = try rig.run("c6", ["ping", "-6", "-n", "-c", "1", "-t", "2", "-W", "2", DemoGateway.s4in6])
        #expect(expired.stdout.contains("Time exceeded"), "\(expired)")
        let muxed = try rig.run("c4", ["curl", "-sS", "--max-time", "5", "-H", "Host: www.example.com", "http://203.0.113.20/index.html"])
        #expect(muxed.stdout.contains("hello from s6"), "\(muxed)\n\(daemon.errors)")
        try rig.checked("c4", ["python3", "-c", "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'`junk', ('198.51.100.1', 25790))"])

        var scrape = Scrape(text: "")
        try waitUntil("a scrape with the audit's time and the router's drop\n\(scrape.text)\n\(daemon.errors)", deadline: .seconds(10), poll: .milliseconds(200)) {
            scrape = try Self.scrape(rig)
            return scrape.value("sixgate_drift_checked_timestamp_seconds") != nil && scrape.names.contains("sixgate_sixbedfour_drop_malformed_total")
        }
        let exported = scrape.names
        // One of each kind that appears only once counted: the naming holds.
        for name in ["sixgate_translator_drop_hop_limit_exceeded_total", "sixgate_translator_sent_icmpv6_time_exceeded_total",
                     "sixgate_translator_punt_hop_limit_total", "sixgate_sixbedfour_drop_malformed_total"] {
            #expect(exported.contains(name) && MonitoringFiles.countedOnceHappened.contains(name), "\(name) in \(exported.sorted())")
        }
        #expect(scrape.samples.contains { $0.name == "sixgate_mux_route_connections_total" && $0.labels.contains(#"route="www.example.com""#) && $0.value == 1 },
                "\(scrape.text)")

        let dashboard = try MonitoringFiles.dashboardJSON()
        let queried = MonitoringFiles.dashboardExpressions(dashboard).map { ("dashboard \($0.place)", $0.expr) }
            + (try MonitoringFiles.ruleExpressions()).map { ("alert \($0.alert)", $0.expr) }
        var names = Set<String>()
        for (place, expr) in queried {
            let read = MonitoringFiles.metricNames(in: expr)
            names.formUnion(read)
            for name in read.sorted() where !exported.contains(name) {
                #expect(MonitoringFiles.countedOnceHappened.contains(name) || MonitoringFiles.onlyWhileRenumbering.contains(name),
                        "\(place) queries \(name), which sixgated does not export: \(expr)")
            }
        }
        // The panels and alerts the operator needs are there.
        for needed in ["sixgate_part_up", "sixgate_translator_restarts_total", "sixgate_translator_6to4_total", "sixgate_translator_kernel_4to6_total",
                       "sixgate_translator_drop_pool_exhausted_total", "sixgate_translator_pool_mappings", "sixgate_translator_pool_addresses",
                       "sixgate_dns64_qps", "sixgate_dns64_cache_hit_percent", "sixgate_sixbedfour_peers", "sixgate_sixbedfour_relayed_bytes_total",
                       "sixgate_mux_connections_open", "sixgate_drift", "sixgate_renumbering_deadline_timestamp_seconds"] {
            #expect(names.contains(needed), "nothing queries \(needed)")
        }

        // The daemon's own gauges: no drift right after apply, measured since the start, no renumbering.
        #expect(scrape.type("sixgate_drift") == "gauge" && scrape.type("sixgate_drift_checked_timestamp_seconds") == "gauge"
                && scrape.type("sixgate_renumbering_deadline_timestamp_seconds") == "gauge", "\(scrape.text)")
        #expect(scrape.value("sixgate_drift") == 0, "\(scrape.text)\n\(daemon.errors)")
        let checked = scrape.value("sixgate_drift_checked_timestamp_seconds").map { UInt64($0) } ?? 0
        #expect((before...UInt64(time(nil))).contains(checked), "checked at \(checked), the test began at \(before)")
        #expect(scrape.value("sixgate_renumbering_deadline_timestamp_seconds") == 0, "\(scrape.text)")

        // A chain flushed by hand: the next audit counts what `sixgatectl audit` lists.
        try rig.checked("gw", ["nft", "flush", "chain", "inet", "sixgate", "postrouting"])
        let audit = try runProduct("sixgatectl", ["audit", demo.config, "--netns", rig.ns("gw"), "--json"])
        let listed = ((try? JSONSerialization.jsonObject(with: Data(audit.stdout.utf8))) as? [String: Any])?["drift"] as? [[String: Any]] ?? []
        #expect(audit.status == 2 && !listed.isEmpty, "\(audit)")
        try waitUntil("sixgate_drift (\(String(describing: scrape.value("sixgate_drift")))) to be what audit lists (\(listed.count))\n\(daemon.errors)",
                      deadline: .seconds(10), poll: .milliseconds(200)) {
            scrape = try Self.scrape(rig)
            return scrape.value("sixgate_drift") == Double(listed.count)
        }
        #expect((scrape.value("sixgate_drift_checked_timestamp_seconds").map { UInt64($0) } ?? 0) > checked, "a later audit")
        #expect(daemon.errors.contains("sixgated: audit: \(listed.count) change") && daemon.errors.contains("`sixgatectl apply` repairs them"), "\(daemon.errors)")
        #expect(try runProduct("sixgatectl", ["apply", demo.config, "--netns", rig.ns("gw")]).succeeded)
        try waitUntil("sixgate_drift 0, repaired by apply\n\(daemon.errors)", deadline: .seconds(10), poll: .milliseconds(200)) {
            try Self.scrape(rig).value("sixgate_drift") == 0
        }
        #expect(daemon.errors.contains("sixgated: audit: no drift"), "\(daemon.errors)")
    }

    /// The renumbering deadline: 0 without a renumbering; during one, the
    /// deadline apply saved in the prefix history (the old prefix's
    /// counters exported meanwhile, the audit clean). When the daemon
    /// cannot end it (the config file was edited since it was applied) the
    /// deadline stays, past, which is what SixgateRenumberingStuck sees;
    /// an apply ends it and the gauge is 0 again.
    @Test func theRenumberingDeadlineStaysUntilTheRenumberingEnds() throws {
        let demo = try Self.gateway {
            $0.replacingOccurrences(of: "[dns64]\n", with: "[dns64]\nmax_ttl = \"12s\"\n")
                .replacingOccurrences(of: "[sixbedfour]\n", with: "[sixbedfour]\npref64_lifetime = \"8s\"\n")
        }
        defer { demo.rig.teardown() }
        let rig = demo.rig, gw = rig.ns("gw")
        let daemon = try #require(demo.daemon)
        #expect(try Self.scrape(rig).value("sixgate_renumbering_deadline_timestamp_seconds") == 0)

        let text = try String(contentsOfFile: demo.config, encoding: .utf8)
        try text.replacingOccurrences(of: "prefix = \"2001:db8:64::/96\"", with: "prefix = \"2001:db8:46::/96\"")
            .write(toFile: demo.config, atomically: true, encoding: .utf8)
        let applied = try runProduct("sixgatectl", ["apply", demo.config, "--netns", gw])
        #expect(applied.succeeded && applied.stdout.contains("renumbering: keeping prefix 2001:db8:64::/96 until "), "\(applied)")
        let history = try Data(contentsOf: URL(fileURLWithPath: gatewayState(rig) + "/prefixes.json"))
        let retiring = ((try JSONSerialization.jsonObject(with: history) as? [String: Any])?["retiring"] as? [[String: Any]]) ?? []
        let deadline = try #require(retiring.first?["until"] as? Int, "\(String(decoding: history, as: UTF8.self))")
        try #require(demo.waitForReady(2, seconds: 10) == 2, "\(daemon.errors)")

        // Under way: the deadline, and the old prefix still translating and counted.
        #expect(try rig.run("c6", ["curl", "-sS", "--max-time", "5", "-g", "http://[\(Self.s4old)]:8080/index.html"]).stdout.contains("hello from s4"))
        var scrape = Scrape(text: "")
        try waitUntil("a scrape with the renumbering's counters\n\(scrape.text)\n\(daemon.errors)", deadline: .seconds(5), poll: .milliseconds(200)) {
            scrape = try Self.scrape(rig)
            return scrape.value("sixgate_drift") != nil && MonitoringFiles.onlyWhileRenumbering.isSubset(of: scrape.names)
        }
        #expect(scrape.value("sixgate_renumbering_deadline_timestamp_seconds") == Double(deadline), "\(deadline): \(scrape.text)")
        #expect(scrape.value("sixgate_drift") == 0, "the audit keeps the old prefix until its deadline: \(daemon.errors)")
        try #require(Int(time(nil)) < deadline - 2, "the deadline came too soon for the test")

        // An edit nobody applied: at the deadline the daemon ends the
        // renumbering in the kernel but cannot restart, so the deadline stays.
        try (try String(contentsOfFile: demo.config, encoding: .utf8)).replacingOccurrences(of: "max_ttl = \"12s\"", with: "max_ttl = \"10s\"")
            .write(toFile: demo.config, atomically: true, encoding: .utf8)
        try daemon.waitForLog("changed since it was applied; not restarting with it", deadline: .seconds(deadline - Int(time(nil)) + 30))
        // SixgateRenumberingStuck's condition needs the clock past the deadline, not at it.
        try waitUntil("the clock to pass the deadline \(deadline)", deadline: .seconds(3), poll: .milliseconds(100)) { Int(time(nil)) > deadline }
        scrape = try Self.scrape(rig)
        let stuck = scrape.value("sixgate_renumbering_deadline_timestamp_seconds") ?? 0
        #expect(stuck == Double(deadline) && stuck > 0 && Double(time(nil)) > stuck, "SixgateRenumberingStuck's condition holds: \(stuck)")

        // Applying the edit ends it: the daemon restarts without the old prefix.
        #expect(try runProduct("sixgatectl", ["apply", demo.config, "--netns", gw]).succeeded)
        try #require(demo.waitForReady(3, seconds: 15) == 3, "\(daemon.errors)")
        try waitUntil("sixgate_renumbering_deadline_timestamp_seconds 0\n\(daemon.errors)", deadline: .seconds(5), poll: .milliseconds(200)) {
            try Self.scrape(rig).value("sixgate_renumbering_deadline_timestamp_seconds") == 0
        }
    }

    /// promtool accepts the rules and its unit tests of them pass (each alert
    /// fires after its `for` and not on healthy series); every alert says
    /// what is wrong and what to do, and has a unit test.
    @Test func promtoolChecksAndTestsTheRules() throws {
        let promtool = try Promtool.located()
        let alerts = try MonitoringFiles.ruleExpressions().map(\.alert)
        #expect(Set(alerts).isSuperset(of: ["SixgateDown", "SixgatePartDown", "SixgatePoolNearlyExhausted", "SixgateDrift", "SixgateRenumberingStuck"]),
                "\(alerts)")
        let check = try Spawn.run([promtool, "check", "rules", MonitoringFiles.rules], timeout: .seconds(60), scratch: NSTemporaryDirectory())
        #expect(check.succeeded && check.stdout.contains("SUCCESS: \(alerts.count) rules found"), "\(check)")
        let tested = try Spawn.run([promtool, "test", "rules", MonitoringFiles.rulesTests], timeout: .seconds(60), scratch: NSTemporaryDirectory())
        #expect(tested.succeeded && tested.stdout.contains("SUCCESS"), "\(tested)")

        let text = try String(contentsOfFile: MonitoringFiles.rules, encoding: .utf8)
        #expect(text.components(separatedBy: "\n          summary: ").count - 1 == alerts.count
                && text.components(separatedBy: "\n          description: ").count - 1 == alerts.count, "each alert has a summary and a description")
        let cases = try String(contentsOfFile: MonitoringFiles.rulesTests, encoding: .utf8)
        for alert in alerts { #expect(cases.contains("alertname: \(alert)\n"), "no promtool test case for \(alert)") }
    }

    /// The dashboard imports into Grafana: JSON, a data source variable every
    /// query goes through, panels that fit the grid; every query is PromQL
    /// that Prometheus parses (promtool, with Grafana's variables filled in).
    @Test func theDashboardIsImportable() throws {
        let dashboard = try MonitoringFiles.dashboardJSON()
        #expect((dashboard["schemaVersion"] as? Int ?? 0) >= 36 && dashboard["uid"] as? String == "sixgate" && dashboard["title"] as? String == "sixgate")
        let variables = (dashboard["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? []
        #expect(variables.contains { $0["name"] as? String == "datasource" && $0["type"] as? String == "datasource" && $0["query"] as? String == "prometheus" })
        #expect(variables.contains { $0["name"] as? String == "instance" && $0["type"] as? String == "query" })
        let panels = MonitoringFiles.panels(dashboard)
        let ids = panels.compactMap { $0["id"] as? Int }
        #expect(ids.count == panels.count && Set(ids).count == ids.count, "every panel has an id of its own")
        var queries = 0
        for panel in panels {
            let title = panel["title"] as? String ?? "?"
            let grid = panel["gridPos"] as? [String: Int] ?? [:]
            #expect((grid["x"] ?? -1) >= 0 && (grid["w"] ?? 0) > 0 && (grid["x"] ?? 0) + (grid["w"] ?? 0) <= 24 && (grid["h"] ?? 0) > 0, "\(title): \(grid)")
            guard panel["type"] as? String != "row" else { continue }
            #expect((panel["datasource"] as? [String: Any])?["uid"] as? String == "${datasource}", "\(title) goes through the data source variable")
            let targets = panel["targets"] as? [[String: Any]] ?? []
            #expect(!targets.isEmpty, "\(title) has queries")
            for t in targets {
                let expr = t["expr"] as? String ?? ""
                #expect(expr.contains(#"{instance=~"$instance"}"#) && !MonitoringFiles.metricNames(in: expr).isEmpty, "\(title): \(expr)")
                queries += 1
            }
        }
        #expect(queries >= 20, "\(queries) queries")

        // Each query as a recording rule: promtool parses it as Prometheus would.
        let expressions = MonitoringFiles.dashboardExpressions(dashboard).filter { !$0.expr.hasPrefix("label_values(") }
        let file = NSTemporaryDirectory() + "sgt-dashboard-\(getpid()).rules.yml"
        defer { unlink(file) }
        let rules = expressions.enumerated().map { i, e in
            let filled = e.expr.replacingOccurrences(of: "$__rate_interval", with: "5m").replacingOccurrences(of: "$instance", with: ".+")
            return "      - record: sixgate:dashboard:query\(i)\n        expr: '\(filled.replacingOccurrences(of: "'", with: "''"))'\n"
        }.joined()
        try "groups:\n  - name: dashboard\n    rules:\n\(rules)".write(toFile: file, atomically: true, encoding: .utf8)
        let check = try Spawn.run([try Promtool.located(), "check", "rules", file], timeout: .seconds(60), scratch: NSTemporaryDirectory())
        #expect(check.succeeded && check.stdout.contains("SUCCESS: \(expressions.count) rules found"), "\(check)")
    }
}
