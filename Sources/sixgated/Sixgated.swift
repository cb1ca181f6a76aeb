import Common
import Configuration
import ArgumentParser
import CProcess
import Reconcile
import Dispatch
import Foundation
import Glibc
import Logging
import Packet
import Translator

/// The daemon hosting the translator, DNS64 and the 6bed4 router, from one
/// config: `run` runs every enabled part; `translate`, `dns64` and `6bed4`
/// one part alone.
@available(macOS 10.15, macCatalyst 13, iOS 13, tvOS 13, watchOS 6, *)
@main
struct Sixgated: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sixgated",
        abstract: "The sixgate daemon: NAT64 translator, DNS64 and 6bed4 router from one config.",
        version: SixgateVersion.string,
        subcommands: [Run.self, Translate.self, DNS64Command.self, SixBedFourCommand.self, MuxCommand.self, PartCommand.self]
    )
}

/// What every command shares: the config file, and serving its parts.
struct DaemonOptions: ParsableArguments {
    @Option(help: "The config file.") var config = "/etc/sixgate/sixgate.toml"

    /// Serves `parts` (nil: every enabled part) of the config.
    func serve(_ parts: [Part]?, command: String) async throws {
        let (c, text) = try loadConfig(config)
        try await serve(c, text: text, parts, command: command)
    }

    /// Serves `parts` of `c` (the config file's `text`); a part process
    /// reports to its supervisor over `uplink`.
    func serve(_ c: Config, text: String, _ parts: [Part]?, command: String, uplink: PartChannel? = nil) async throws {
        LoggingSystem.bootstrap { LineLogHandler(label: $0) }
        raiseOpenFileLimit()
        sixgate_die_of_sent_crash_signals()
        let enabled = Part.allCases.filter { part in
            switch part {
            case .translator: c.nat64.enabled
            case .dns64: c.dns64.enabled
            case .sixbedfour: c.sixbedfour.enabled
            // tcp entries on translated addresses need no process: the kernel routes them.
            case .mux: c.muxRelays
            }
        }
        let chosen = parts ?? enabled
        for part in chosen where !enabled.contains(part) {
            FileHandle.standardError.write(Data("sixgated \(command): \(part.enabledKey) is false in \(config)\n".utf8))
            throw ExitCode(1)
        }
        guard !chosen.isEmpty else {
            FileHandle.standardError.write(Data("sixgated \(command): nothing is enabled in \(config)\n".utf8))
            throw ExitCode(1)
        }
        try await sixgated.serve(c, text: text, path: config, parts: chosen, control: parts == nil, uplink: uplink)
    }
}

extension Part {
    var enabledKey: String {
        switch self {
        case .translator: "nat64.enabled"
        case .dns64: "dns64.enabled"
        case .sixbedfour: "sixbedfour.enabled"
        case .mux: "[[mux]]"
        }
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run every enabled part of the config: translator, DNS64, 6bed4 router.",
        discussion: """
            Each part runs in a process of its own (`sixgated part NAME`), from the one config value and with \
            only the capabilities it needs: a crash in one ends that part only. SIGTERM or SIGINT stops them \
            cleanly (the dynamic pool's state saved, counters logged); a part that fails is restarted with \
            back-off (1 s up to 30 s) while the others serve on. It answers sixgatectl on \
            controller.control_socket (status, the config apply hands over, reload). Under systemd \
            (Type=notify) it reports READY=1 once every part serves, and WATCHDOG=1 when a watchdog is set.
            """
    )

    @OptionGroup var options: DaemonOptions

    func run() async throws { try await options.serve(nil, command: "run") }
}

struct Translate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run only the translator, on the TUN device(s) of the config.",
        discussion: """
            It does no routing of its own: packets the kernel routes into the device are translated and written \
            back. `sixgatectl apply` creates the device, its routes and the firewall rules. The dynamic pool's \
            mappings are kept in STATE_DIR/pool4.state across restarts.
            """
    )

    @OptionGroup var options: DaemonOptions

    func run() async throws { try await options.serve([.translator], command: "translate") }
}

struct DNS64Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dns64",
        abstract: "Run only the DNS64 server of the config.",
        discussion: "It answers on dns64.listen, only to dns64.allow (by default the gateway's client networks), and asks dns64.upstreams."
    )

    @OptionGroup var options: DaemonOptions

    func run() async throws { try await options.serve([.dns64], command: "dns64") }
}

struct SixBedFourCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "6bed4",
        abstract: "Run only the 6bed4 router of the config.",
        discussion: """
            It answers peers on sixbedfour.address4 and .port, relays between them, and forwards to and from \
            IPv6 through its TUN device; `sixgatectl apply` creates the device, its addresses, the route of the \
            6bed4 prefix and the firewall rules. Router advertisements carry the NAT64 prefix (PREF64). \
            SIGUSR1 logs the counters.
            """
    )

    @OptionGroup var options: DaemonOptions

    func run() async throws { try await options.serve([.sixbedfour], command: "6bed4") }
}

struct MuxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mux",
        abstract: "Run only the multiplexer of the config ([[mux]]).",
        discussion: """
            It accepts connections on each [[mux]] listen address, reads the name each is for (TLS server_name, HTTP Host), \
            and connects to its backend from the client's address under the prefix, through a transparent socket; \
            `sixgatectl apply` makes the addresses local and the rule and route that bring the backends' answers back to it.
            """
    )

    @OptionGroup var options: DaemonOptions

    func run() async throws { try await options.serve([.mux], command: "mux") }
}

/// A server's descriptors: DNS64's TCP connections (up to its limit, and
/// those past it until they are closed), a socket per upstream query, TUN
/// queues. systemd's default soft limit of 1024 is too low for a flood of
/// connections to leave room for the rest, so the soft limit goes up to the
/// hard one (capped: some hard limits are effectively unbounded).
func raiseOpenFileLimit() {
    var limit = rlimit()
    guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
    let wanted = min(limit.rlim_max, 65536)
    if limit.rlim_cur < wanted {
        limit.rlim_cur = wanted
        _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    }
}

/// Loads the config and its text, or prints every problem and exits 1.
func loadConfig(_ path: String) throws -> (Config, String) {
    do {
        // Part processes run this text, not a later edit of the file.
        let text = try? String(contentsOfFile: path, encoding: .utf8)
        // Without text, loading says why (a directory, unreadable).
        let config = try text.map { try ConfigLoader.parse($0, source: path) } ?? ConfigLoader.load(path: path)
        return (try config.scoped(to: nil), text ?? "")
    } catch {
        FileHandle.standardError.write(Data("\(error)\n".utf8))
        throw ExitCode(1)
    }
}

/// The config at `path` as it applies in this network namespace: its state
/// is this namespace's (`Config.scoped`), as for sixgatectl here.
func loadScoped(_ path: String) throws -> Config {
    try ConfigLoader.load(path: path).scoped(to: nil)
}

func onSignal(_ sig: Int32, _ body: @escaping @Sendable (Int32) -> Void) {
    signal(sig, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: sig, queue: DispatchQueue(label: "sixgate.signal"))
    source.setEventHandler { body(sig) }
    source.resume()
    signalSources.append(source)
}

/// Kept so that the signal sources live as long as the process; written only
/// while a command starts, before anything else runs.
nonisolated(unsafe) var signalSources: [any DispatchSourceSignal] = []

extension TranslatorCounters {
    /// Name and value of each counter, for `status` and metrics.
    var fields: [(String, Int)] {
        var f = [("6to4", translated6to4), ("4to6", translated4to6), ("coalesced", coalesced)]
        // During a renumbering: how much still goes through the old prefix.
        if retiring6to4 + retiring4to6 > 0 { f += [("retiring_6to4", retiring6to4), ("retiring_4to6", retiring4to6)] }
        f += DropReason.allCases.filter { self[$0] > 0 }.map { ("drop.\($0)", self[$0]) }
        f += SentError.allCases.filter { self[$0] > 0 }.map { ("sent.\($0)", self[$0]) }
        return f
    }

}

