import ArgumentParser
import Packet
import SixBedFour

/// The 6bed4 client for IPv4-only hosts. The peer itself arrives with its issue.
struct SixBedFourPeer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "6bed4peer",
        abstract: "6bed4 peer: IPv6 over UDP/IPv4 through a 6bed4 router, direct to other peers where possible.",
        version: SixgateVersion.string
    )

    @Option(name: .shortAndLong, help: "The router's IPv4 address.") var server: String?
    @Option(name: .shortAndLong, help: "The router's UDP port.") var port: UInt16 = SixBedFourPrefix.defaultPort

    func run() throws {
        print("6bed4peer \(SixgateVersion.string): the peer is not implemented yet")
        throw ExitCode(1)
    }
}

SixBedFourPeer.main()
