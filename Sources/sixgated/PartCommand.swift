import Configuration
import ArgumentParser
import Reconcile
import Foundation
import Glibc
import ServiceLifecycle

/// One part of the config in a process of its own, started by `sixgated
/// run` with its channel on descriptor 3; not for operators (the commands
/// `translate`, `dns64` and `6bed4` run a part alone).
struct PartCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "part", abstract: "A part of `sixgated run` in its own process.", shouldDisplay: false)

    @Argument(help: "translator, dns64, 6bed4 or mux.") var name: String
    @OptionGroup var options: DaemonOptions
    /// Read before main, where they are dropped (CProcess): this is for the parser.
    @Option(help: "The capabilities it keeps, a bit each (hexadecimal).") var capabilities = "0"

    func run() async throws {
        guard let part = Part(rawValue: name), fcntl(PartChannel.partDescriptor, F_GETFD) >= 0 else {
            throw ValidationError("sixgated part runs under sixgated run, which passes it its channel on descriptor 3")
        }
        let uplink = PartChannel(fd: PartChannel.partDescriptor)
        _ = fcntl(uplink.fd, F_SETFD, FD_CLOEXEC)
        guard case .run(let text)? = uplink.receive()?.0 else { throw ExitCode(1) }
        let c: Config
        do {
            c = try ConfigLoader.parse(text, source: options.config).scoped(to: nil)
        } catch {
            uplink.send(.failed(reason: "\(error)"))
            throw ExitCode(1)
        }
        try await options.serve(c, text: text, [part], command: "part", uplink: uplink)
    }
}

/// The capabilities a part process keeps (of those it was started with):
/// the translator's TUN devices and, for the kernel datapath, the pinned
/// BPF maps; DNS64's port 53; the 6bed4 router's TUN device and port.
enum Capability: Int {
    case netBindService = 10
    case netAdmin = 12
    case perfmon = 38
    case bpf = 39

}

extension Part {
    /// As `sixgated part --capabilities` takes them.
    func capabilityMask(_ c: Config) -> String {
        String(capabilities(c).reduce(UInt64(0)) { $0 | 1 << UInt64($1.rawValue) }, radix: 16)
    }

    func capabilities(_ c: Config) -> [Capability] {
        switch self {
        case .translator:
            return [.netAdmin, .bpf, .perfmon]
        case .dns64:
            return c.dns64Settings.listen.contains { $0.port < 1024 } ? [.netBindService] : []
        case .sixbedfour:
            return [.netAdmin] + ((c.sixBedFourSettings?.endpoint.port ?? 0) < 1024 ? [.netBindService] : [])
        case .mux:
            // Transparent sockets (IPV6_TRANSPARENT) need CAP_NET_ADMIN.
            return [.netAdmin] + (c.mux.contains { !c.routedInKernel($0) && $0.listen.port < 1024 } ? [.netBindService] : [])
        }
    }
}

/// A part process's end of its channel: counters when `sixgated run` asks,
/// a hand-over at a reload, and a graceful stop once the supervisor is gone
/// (nobody would restart or ask this part any more).
struct UplinkService: Service {
    let channel: PartChannel
    let registry: Registry

    func run() async throws {
        let channel = channel, registry = registry
        let reader = Thread {
            while let (message, fds) = channel.receive() {
                fds.forEach { close($0) }
                switch message {
                case .askCounters(let id):
                    channel.send(.counters(id: id, values: registry.status.parts.first?.counters ?? [:]))
                case .handOver:
                    registry.handOver()
                default:
                    break
                }
            }
            registry.shutdown.withLock { $0 }?()
        }
        reader.name = "sixgate.uplink"
        reader.start()
        try? await gracefulShutdown()
    }
}
