import ArgumentParser
import Controller
import DNS64
import Dispatch
import Foundation
import Glibc
import NIOPosix
import Packet
import SixBedFour
import Translator

/// The daemon hosting the translator, DNS64 and the 6bed4 router. For now
/// each runs on its own (`translate`, `dns64`, `6bed4`); running them together
/// under supervision arrives with its issue.
@available(macOS 10.15, macCatalyst 13, iOS 13, tvOS 13, watchOS 6, *)
@main
struct Sixgated: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sixgated",
        abstract: "The sixgate daemon: NAT64 translator, DNS64 and 6bed4 router from one config.",
        version: SixgateVersion.string,
        subcommands: [Translate.self, DNS64Command.self, SixBedFourCommand.self]
    )
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

    @Option(help: "The config file.") var config = "/etc/sixgate/sixgate.toml"

    func run() async throws {
        let c = try loadConfig(config)
        guard c.nat64.enabled else {
            FileHandle.standardError.write(Data("sixgated translate: nat64.enabled is false in \(config)\n".utf8))
            throw ExitCode(1)
        }
        let pool = c.makePool(now: UInt64(time(nil)))
        let datapath = TunDatapath(settings: c.translatorSettings, pool: pool, device: c.nat64.device,
                                   device4: c.nat64.device4, queues: c.translatorQueues)
        do {
            try datapath.start()
        } catch {
            FileHandle.standardError.write(Data("sixgated translate: \(error)\n".utf8))
            throw ExitCode(1)
        }
        log("translator ready: \(datapath.queues) queue(s) on \(c.nat64.device)\(c.nat64.device4.map { " and \($0)" } ?? ""), prefix \(c.prefix)"
            + (pool.map { ", pool \($0.range) with \($0.count) restored mapping(s)" } ?? ""))

        // Housekeeping: idle pool mappings go, and the state file follows the pool.
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "sixgate.housekeeping"))
        timer.schedule(deadline: .now() + 1, repeating: 1)
        timer.setEventHandler {
            pool?.expire(now: UInt64(time(nil)))
            do { try pool?.save() } catch { log("cannot save the pool state: \(error)") }
        }
        timer.resume()
        onTermination { sig in
            do { try pool?.save() } catch { log("cannot save the pool state: \(error)") }
            log("translator stopping on signal \(sig); counters: \(datapath.counters.summary)")
        }
        try await untilFailure(datapath.failure) { failure in
            do { try pool?.save() } catch { log("cannot save the pool state: \(error)") }
            log("translator stopping: \(failure); counters: \(datapath.counters.summary)")
        }
    }
}

struct DNS64Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dns64",
        abstract: "Run only the DNS64 server of the config.",
        discussion: "It answers on dns64.listen, only to dns64.allow (by default the gateway's client networks), and asks dns64.upstreams."
    )

    @Option(help: "The config file.") var config = "/etc/sixgate/sixgate.toml"

    func run() async throws {
        let c = try loadConfig(config)
        let settings = c.dns64Settings
        let group = MultiThreadedEventLoopGroup(numberOfThreads: settings.threads)
        let server = try DNS64Server(settings: settings, group: group)
        onTermination { sig in log("dns64 stopping on signal \(sig); counters: \(server.counters)") }
        do {
            try await server.run {
                log("dns64 ready on \(settings.listen.map(\.description).joined(separator: ", ")), prefix \(settings.prefix), asking \(settings.upstreams.map(\.description).joined(separator: ", "))")
            }
        } catch {
            log("dns64: \(error)")
            throw ExitCode(1)
        }
    }
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

    @Option(help: "The config file.") var config = "/etc/sixgate/sixgate.toml"

    func run() async throws {
        let c = try loadConfig(config)
        guard let settings = c.sixBedFourSettings else {
            FileHandle.standardError.write(Data("sixgated 6bed4: sixbedfour.enabled is false in \(config)\n".utf8))
            throw ExitCode(1)
        }
        let datapath = RouterDatapath(settings: settings, device: c.sixbedfour.device)
        do {
            try datapath.start()
        } catch {
            FileHandle.standardError.write(Data("sixgated 6bed4: \(error)\n".utf8))
            throw ExitCode(1)
        }
        log("6bed4 router ready on \(settings.endpoint) and \(c.sixbedfour.device), prefix \(IPv6Prefix(address: settings.address, length: 64)), PREF64 \(c.prefix)")
        onSignal(SIGUSR1) { _ in log("6bed4 counters: \(datapath.router.counters)") }
        onTermination { sig in log("6bed4 stopping on signal \(sig); counters: \(datapath.router.counters)") }
        try await untilFailure(datapath.failure) { failure in
            log("6bed4 stopping: \(failure); counters: \(datapath.router.counters)")
        }
    }
}

/// Waits while a datapath's threads serve: signals end the process through
/// their handlers; a datapath that fails (`failure` says why) ends it with
/// exit 1 after `stopping`, so that a supervisor restarts it rather than
/// keep a process that serves nothing.
func untilFailure(_ failure: @autoclosure () -> String?, stopping: (String) -> Void) async throws {
    while true {
        try await Task.sleep(for: .milliseconds(500))
        if let reason = failure() {
            stopping(reason)
            throw ExitCode(1)
        }
    }
}

/// Loads the config, or prints every problem and exits 1.
func loadConfig(_ path: String) throws -> Config {
    do {
        return try ConfigLoader.load(path: path)
    } catch {
        FileHandle.standardError.write(Data((error.description + "\n").utf8))
        throw ExitCode(1)
    }
}

/// On SIGTERM or SIGINT: `body` (save state, log counters), then exit 0.
func onTermination(_ body: @escaping @Sendable (Int32) -> Void) {
    for sig in [SIGTERM, SIGINT] {
        onSignal(sig) {
            body($0)
            Glibc.exit(0)
        }
    }
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

func log(_ line: String) {
    FileHandle.standardError.write(Data("sixgated: \(line)\n".utf8))
}

extension TranslatorCounters {
    var summary: String {
        var parts = ["6to4=\(translated6to4)", "4to6=\(translated4to6)", "coalesced=\(coalesced)"]
        for r in DropReason.allCases where self[r] > 0 { parts.append("drop.\(r)=\(self[r])") }
        for e in SentError.allCases where self[e] > 0 { parts.append("sent.\(e)=\(self[e])") }
        return parts.joined(separator: " ")
    }
}

