import Configuration
import Reconcile
import Foundation
import NetnsRig
import Testing

/// What `make install` stages (and the Debian package carries): binaries,
/// units, man pages, completions, examples, docs, the dashboard and rules.
@Suite(.serialized) struct PackagingTests {
    /// `make install DESTDIR=` of this build's binaries, removed with the value.
    final class Stage {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sgt-install-\(getpid())-\(UUID().uuidString.prefix(6))").path
        init() throws {
            let install = try Spawn.run(["make", "-C", repoRoot, "install", "DESTDIR=\(path)", "BINDIR=\(binDir)", "GEN=\(path)-gen"],
                                        timeout: .seconds(120), scratch: FileManager.default.temporaryDirectory.path)
            try #require(install.succeeded, "\(install)")
        }
        deinit {
            try? FileManager.default.removeItem(atPath: path)
            try? FileManager.default.removeItem(atPath: path + "-gen")
        }
        func exists(_ file: String) -> Bool { FileManager.default.fileExists(atPath: path + "/" + file) }
    }

    static let commands = ["sixgatectl", "sixgated", "6bed4peer"]

    /// The units' commands pointed at the staged binaries; systemd-analyze
    /// finds nothing to say about them.
    @Test func installedUnitsVerify() throws {
        let stage = try Stage()
        var expected = ["lib/systemd/system/sixgate.service", "lib/systemd/system/6bed4peer.service",
                        "etc/sixgate/sixgate.toml.example", "etc/sixgate/6bed4peer.env.example", "etc/iproute2/rt_protos.d/sixgate.conf",
                        "usr/share/doc/sixgate/README.md", "usr/share/man/man5/sixgate.toml.5.gz",
                        "usr/share/sixgate/grafana/sixgate.json", "usr/share/sixgate/prometheus/sixgate.rules.yml"]
        for c in Self.commands {
            expected += ["usr/sbin/\(c)", "usr/share/man/man8/\(c).8.gz", "usr/share/bash-completion/completions/\(c)",
                         "usr/share/zsh/vendor-completions/_\(c)", "usr/share/fish/vendor_completions.d/\(c).fish"]
        }
        expected += exampleNames.map { "usr/share/doc/sixgate/examples/\($0).toml" }
        for file in expected { #expect(stage.exists(file), "\(file) installed") }
        let protos = try String(contentsOfFile: stage.path + "/etc/iproute2/rt_protos.d/sixgate.conf", encoding: .utf8)
        #expect(protos.contains("164\tsixgate"))
        var units: [String] = []
        for unit in ["sixgate.service", "6bed4peer.service"] {
            let text = try String(contentsOfFile: stage.path + "/lib/systemd/system/" + unit, encoding: .utf8)
            let path = stage.path + "/" + unit
            try text.replacingOccurrences(of: "/usr/sbin/", with: stage.path + "/usr/sbin/").write(toFile: path, atomically: true, encoding: .utf8)
            units.append(path)
        }
        let verify = try Spawn.run(["systemd-analyze", "verify"] + units, timeout: .seconds(30), scratch: FileManager.default.temporaryDirectory.path)
        #expect(verify.succeeded && verify.stderr.isEmpty && verify.stdout.isEmpty, "\(verify)")

        // make uninstall takes back all of it but the directories install shares with others.
        let uninstall = try Spawn.run(["make", "-C", repoRoot, "uninstall", "DESTDIR=\(stage.path)"], timeout: .seconds(30), scratch: FileManager.default.temporaryDirectory.path)
        try #require(uninstall.succeeded, "\(uninstall)")
        let left = try Spawn.run(["find", stage.path, "-type", "f"], timeout: .seconds(10), scratch: FileManager.default.temporaryDirectory.path)
        let files = left.stdout.split(separator: "\n").map { String($0.dropFirst(stage.path.count + 1)) }.filter { !units.contains(stage.path + "/" + $0) }
        #expect(files.isEmpty, "make uninstall left \(files)")
    }

    /// Each man page renders without a warning, and names every subcommand
    /// and long option of its command, or every table and key of the config.
    @Test func manPagesNameEverySubcommandOptionAndKey() throws {
        let stage = try Stage()
        for c in Self.commands {
            let page = try render(stage.path + "/usr/share/man/man8/\(c).8.gz")
            let help = try runProduct(c, ["--experimental-dump-help"])
            let tool = try JSONSerialization.jsonObject(with: Data(help.stdout.utf8)) as? [String: Any]
            let (subcommands, options) = Self.names(tool?["command"] as? [String: Any] ?? [:])
            #expect(!subcommands.isEmpty || c == "6bed4peer", "\(c) has subcommands")
            #expect(!options.isEmpty)
            let lines = Set(page.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) })
            for s in subcommands {
                #expect(lines.contains { $0 == s || $0.hasPrefix(s + " ") }, "\(c).8 describes its subcommand \(s)")
            }
            for o in options { #expect(page.contains("--" + o), "\(c).8 describes --\(o)") }
        }

        // Each table a section, each key its own line in it, in the schema's order.
        let page = try render(stage.path + "/usr/share/man/man5/sixgate.toml.5.gz")
        var sections: [String: [String]] = [:], current = ""
        for line in page.split(separator: "\n") {
            if !line.hasPrefix(" ") { current = String(line) } else { sections[current, default: []].append(line.trimmingCharacters(in: .whitespaces)) }
        }
        for t in Schema.tables {
            let heading = t.name.isEmpty ? "TOP LEVEL" : t.isArray ? "[[\(t.name)]]" : "[\(t.name)]"
            let body = sections[heading] ?? []
            #expect(!body.isEmpty, "sixgate.toml.5 has a section \(heading)")
            // A key longer than the indent has a line of its own; a shorter one shares it with its type.
            for k in t.keys {
                #expect(body.contains { $0 == k.name || $0.hasPrefix(k.name + " ") }, "sixgate.toml.5 describes \(heading) \(k.name)")
            }
        }
    }

    /// The completions know every subcommand; bash loads its script.
    @Test func completionsKnowEverySubcommand() throws {
        let stage = try Stage()
        for c in Self.commands {
            let help = try runProduct(c, ["--experimental-dump-help"])
            let tool = try JSONSerialization.jsonObject(with: Data(help.stdout.utf8)) as? [String: Any]
            let (subcommands, _) = Self.names(tool?["command"] as? [String: Any] ?? [:])
            for file in ["usr/share/bash-completion/completions/\(c)", "usr/share/zsh/vendor-completions/_\(c)", "usr/share/fish/vendor_completions.d/\(c).fish"] {
                let text = try String(contentsOfFile: stage.path + "/" + file, encoding: .utf8)
                for s in subcommands where !text.contains(s) { Issue.record("\(file) does not complete \(s)") }
            }
            let bash = try Spawn.run(["bash", "-c", "source \(stage.path)/usr/share/bash-completion/completions/\(c) && complete -p \(c)"],
                                     timeout: .seconds(10), scratch: FileManager.default.temporaryDirectory.path)
            #expect(bash.succeeded && bash.stdout.contains(c), "\(bash)")
        }
    }

    /// The page as man shows it, one paragraph a line (no breaks, no
    /// hyphenation), in ASCII; man's warnings fail the test.
    private func render(_ file: String) throws -> String {
        let r = try Spawn.run(["env", "LC_ALL=C", "MANWIDTH=1000", "man", "--warnings", "-l", file],
                              timeout: .seconds(30), scratch: FileManager.default.temporaryDirectory.path)
        try #require(r.succeeded && !r.stdout.isEmpty, "\(file): \(r)")
        #expect(r.stderr.isEmpty, "\(file) renders without warnings: \(r.stderr)")
        return r.stdout
    }

    /// Every visible subcommand and long option, at any depth, from
    /// ArgumentParser's own description of the command (`help` aside).
    static func names(_ command: [String: Any]) -> (subcommands: Set<String>, options: Set<String>) {
        var subcommands: Set<String> = [], options: Set<String> = []
        for a in command["arguments"] as? [[String: Any]] ?? [] where a["shouldDisplay"] as? Bool ?? true {
            for n in a["names"] as? [[String: Any]] ?? [] where n["kind"] as? String == "long" {
                if let name = n["name"] as? String { options.insert(name) }
            }
        }
        for s in command["subcommands"] as? [[String: Any]] ?? [] {
            guard let name = s["commandName"] as? String, name != "help", s["shouldDisplay"] as? Bool ?? true else { continue }
            subcommands.insert(name)
            let (deeper, deeperOptions) = names(s)
            subcommands.formUnion(deeper)
            options.formUnion(deeperOptions)
        }
        return (subcommands, options)
    }
}
