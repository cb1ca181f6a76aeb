import Demo
import Foundation
import Glibc
import NetnsRig
import Testing

/// What `make demo` shows, asserted: the seed's three scenarios end to end
/// with `sixgated run` (DNS64 and the translator for c6 to reach s4; an EAM
/// for c4 to reach s6; 6bed4 peers, one behind NAT, talking directly and
/// reaching s6), then `status` and `verify`.
@Suite(.serialized) struct SeedScenarioTests {
    @Test func theDemoScenariosWork() throws {
        let demo = try DemoGateway(bin: binDir)
        defer { demo.rig.teardown() }
        let steps = try demo.scenarios()
        #expect(steps.count == 10)
        for step in steps {
            #expect(step.ok, "\(step.title)\n$ \(step.command)\n\(step.output)")
        }
    }

    /// A reboot: the daemon dies (SIGKILL) and the namespace loses its kernel
    /// state (table, routes, links). The service path again (apply, then the
    /// daemon) restores everything: the pool mapping comes back from the
    /// state file, the audit is clean, verify passes, c6 reaches s4 again.
    @Test func rebootRestoresEverything() throws {
        let demo = try DemoGateway(bin: binDir)
        defer { demo.rig.teardown() }
        let fetch = ["curl", "-sS", "--max-time", "10", "-g", "http://[\(DemoGateway.s4in6)]:8080/index.html"]
        #expect(try demo.rig.run("c6", fetch).stdout.contains("hello from s4"))
        let daemon = try #require(demo.daemon)
        sleep(2)  // the translator saves the pool's state every second
        kill(daemon.pid, SIGKILL)
        #expect(Spawn.wait(daemon.pid, timeout: .seconds(5)) != nil)
        try demo.rig.checked("gw", ["nft", "flush", "ruleset"])
        for link in ["sg-nat64", "sg-6bed4"] { try demo.rig.checked("gw", ["ip", "link", "del", link]) }
        let broken = try runProduct("sixgatectl", ["audit", demo.config, "--netns", demo.rig.ns("gw")])
        #expect(broken.status == 2, "the wipe left drift: \(broken)")

        let again = try demo.startDaemon()
        #expect(again.errors.contains("pool 192.0.2.128/25 with 1 restored mapping"), "\(again.errors)")
        #expect(try runProduct("sixgatectl", ["audit", demo.config, "--netns", demo.rig.ns("gw")]).status == 0)
        let verify = try runProduct("sixgatectl", ["verify", demo.config, "--netns", demo.rig.ns("gw")])
        #expect(verify.succeeded, "\(verify)")
        #expect(try demo.rig.run("c6", fetch).stdout.contains("hello from s4"))

        // A bad config pushed with apply changes nothing: kernel state and daemon stay.
        let bad = demo.rig.scratch + "/bad.toml"
        try (try String(contentsOfFile: demo.config, encoding: .utf8)).replacingOccurrences(of: "prefix = \"2001:db8:64::/96\"", with: "prefix = \"2001:db8:65::/95\"")
            .write(toFile: bad, atomically: true, encoding: .utf8)
        let refused = try runProduct("sixgatectl", ["apply", bad, "--netns", demo.rig.ns("gw")])
        #expect(refused.status == 1 && refused.stderr.contains("prefix") && refused.stderr.contains("nothing was changed"), "\(refused)")
        #expect(try runProduct("sixgatectl", ["audit", demo.config, "--netns", demo.rig.ns("gw")]).status == 0)
        #expect(try runProduct("sixgatectl", ["verify", demo.config, "--netns", demo.rig.ns("gw")]).succeeded)
    }
}
