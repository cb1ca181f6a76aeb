import ArgumentParser
import Controller
import Packet

/// The daemon hosting the translator, DNS64 and the 6bed4 router. Its services
/// arrive with their issues; until then it validates its config and says so.
struct Sixgated: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sixgated",
        abstract: "The sixgate daemon: NAT64 translator, DNS64 and 6bed4 router from one config.",
        version: SixgateVersion.string
    )

    @Option(help: "The config file.") var config = "/etc/sixgate/sixgate.toml"

    func run() throws {
        do {
            _ = try ConfigLoader.load(path: config)
        } catch {
            print(error)
            throw ExitCode(1)
        }
        print("sixgated \(SixgateVersion.string): \(config) is valid, but no service is implemented yet")
        throw ExitCode(1)
    }
}

Sixgated.main()
