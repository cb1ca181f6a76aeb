import Foundation
import NetnsRig
import Testing

/// `sixgatectl` as an operator runs it: the real binary, its output and exit code.
@Suite struct CLITests {
    /// No command is a usage error (64) with the help; every program names
    /// the commit it was built from.
    @Test func noCommandIsAUsageErrorAndVersionsNameTheCommit() throws {
        let none = try runProduct("sixgatectl", [])
        #expect(none.status == 64 && none.stderr.contains("USAGE: sixgatectl <subcommand>"), "\(none)")
        let head = try Spawn.run(["git", "-C", repoRoot, "rev-parse", "--short=12", "HEAD"], timeout: .seconds(10), scratch: NSTemporaryDirectory())
        try #require(head.succeeded, "\(head)")
        for program in ["sixgatectl", "sixgated", "6bed4peer"] {
            let v = try runProduct(program, ["--version"])
            #expect(v.succeeded && v.stdout.hasPrefix("0.1.0 (commit \(head.stdout.trimmingCharacters(in: .whitespacesAndNewlines))"), "\(program): \(v)")
        }
    }

    @Test func checkAcceptsTheExamples() throws {
        #expect(exampleNames.contains("full") && exampleNames.contains("minimal"), "\(exampleNames)")
        for example in exampleNames {
            let r = try runProduct("sixgatectl", ["check", repoRoot + "/examples/\(example).toml"])
            #expect(r.status == 0, "\(r)")
            #expect(r.stdout.contains("valid") && r.stdout.contains("prefix"), "\(r)")
        }
    }

    @Test func checkReportsEveryMistakeWithLineAndFix() throws {
        let file = repoRoot + "/Tests/IntegrationTests/Fixtures/mistakes.toml"
        let r = try runProduct("sixgatectl", ["check", file])
        #expect(r.status == 1)
        let lines = r.stderr.split(separator: "\n").map(String.init)
        let expected = [(2, "prefix"), (6, "gateway.inside6"), (9, "gateway.clients[1]"), (14, "nat64.rfc6791_pool"),
                        (15, "nat64.mtu"), (16, "nat64.pool_idel_timeout"), (19, "nat64.eam[0].ipv4"), (23, "dns64.upstreams[0]")]
        for (line, key) in expected {
            let hit = lines.first { $0.hasPrefix("\(file):\(line): \(key): ") }
            #expect(hit != nil, "no report for \(key) at line \(line) in:\n\(r.stderr)")
            // Every report ends with a sentence saying what to change.
            if let hit { #expect(hit.split(separator: ". ").count >= 2, "\(hit)") }
        }
        #expect(lines.contains { $0.contains("Did you mean `pool_idle_timeout`?") })
        // check changes nothing by nature, and does not say it did not.
        #expect(lines.last == "\(file): 8 problems.")
    }

    @Test func checkOfAMissingFileFails() throws {
        let r = try runProduct("sixgatectl", ["check", "/nonexistent/sixgate.toml"])
        #expect(r.status == 1 && r.stderr.contains("cannot be read"))
    }

    @Test func versionAndHelp() throws {
        let v = try runProduct("sixgatectl", ["--version"])
        #expect(v.status == 0 && v.stdout.split(separator: ".").count == 3)
        let h = try runProduct("sixgatectl", ["--help"])
        #expect(h.status == 0 && h.stdout.contains("check"))
    }
}
