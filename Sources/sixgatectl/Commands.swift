import Common
import Configuration
import ArgumentParser
import Reconcile
import Packet
import Foundation

struct SixgateCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sixgatectl",
        abstract: "Check, plan, apply and audit the state of a sixgate gateway.",
        version: SixgateVersion.string,
        subcommands: [Check.self, Plan.self, Apply.self, Audit.self, Remove.self, Status.self, Reload.self, Verify.self, InjectFault.self, Render.self,
                      Publish.self, Reference.self]
    )

    /// No command is a usage error (EX_USAGE), with the help to fix it.
    func run() throws {
        var stderr = StandardError()
        print(Self.helpMessage(), to: &stderr)
        throw ExitCode(64)
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a config file and say what it means.",
        discussion: """
            Exits 0 and prints a summary when the config is valid; prints every problem with file:line, key and what to change, \
            and exits 1, when it is not.
            """
    )

    @Argument(help: "The config file.") var config: String

    func run() throws {
        let c = try loadOrExit(config)
        print("\(config): valid\n")
        print(c.summary)
    }
}

struct Render: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the nftables table a config implies, in nft syntax. Needs no root and reads nothing from the system."
    )

    @Argument(help: "The config file.") var config: String

    func run() throws {
        let c = try loadOrExit(config)
        print(DesiredTable.table(for: c).nftText, terminator: "")
    }
}

struct Publish: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print, as zone-file lines, the DNS records the outside world needs to reach what the config serves.",
        discussion: """
            An A record for each named mapping ([[nat64.eam]] name) and each name a [[mux]] serves (and an SRV record for a \
            tcp [[mux]] with a service), and the AAAA of the 6bed4 service (sixbedfour.publish). Needs no root and reads \
            nothing from the system.
            """
    )

    @Argument(help: "The config file.") var config: String
    @Option(help: "Only the records in this zone, relative to its origin.") var zone: String?
    @Option(help: "The records' TTL in seconds.") var ttl = 300

    func run() throws {
        let c = try loadOrExit(config)
        print(Configuration.Publish.zoneText(c, zone: zone, ttl: ttl), terminator: "")
    }
}

/// Loads a config, or prints every problem and exits 1 before anything is
/// touched (`changing`: for a command that would have changed something).
func loadOrExit(_ path: String, changing: Bool = false) throws -> Config {
    do {
        return try ConfigLoader.load(path: path)
    } catch {
        var stderr = StandardError()
        for d in error.diagnostics { print(d, to: &stderr) }
        let n = error.diagnostics.count
        print("\(path): \(n) problem\(n == 1 ? "" : "s")\(changing ? "; nothing was changed" : "").", to: &stderr)
        throw ExitCode(1)
    }
}

struct Reference: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the config file reference (Markdown, or the sixgate.toml(5) man page).")

    enum Format: String, ExpressibleByArgument, CaseIterable { case markdown, man }

    @Option(help: "markdown (the README's reference) or man (sixgate.toml(5) in roff).") var format = Format.markdown
    @Option(help: "With --format man: the page's date, YYYY-MM-DD (the build uses its commit's).") var date = "1970-01-01"

    func run() {
        switch format {
        case .markdown: print(Schema.markdownReference(), terminator: "")
        case .man: print(Schema.manualPage(date: date, version: SixgateVersion.number), terminator: "")
        }
    }
}

struct StandardError: TextOutputStream {
    mutating func write(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }
}

