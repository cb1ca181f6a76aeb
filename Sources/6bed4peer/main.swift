import Common
import ArgumentParser
import CNetlink
import Netlink
import DNS64
import Foundation
import Glibc
import Packet
import SixBedFour
import Tun

/// The 6bed4 client for IPv4-only hosts: IPv6 over UDP/IPv4 through a 6bed4
/// router, and straight to other peers where the path allows.
struct SixBedFourPeer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "6bed4peer",
        abstract: "6bed4 peer: IPv6 over UDP/IPv4 through a 6bed4 router, direct to other peers where possible.",
        discussion: """
            It opens a TUN device, solicits the router until it advertises a /114, and configures the address it \
            embeds (the public IPv4 address and port the router saw) on the device, with the routes the router \
            announces (the NAT64 prefix among them). On SIGTERM or SIGINT it removes them and exits; SIGUSR1 logs \
            its counters.
            """,
        version: SixgateVersion.string
    )

    @Option(name: .shortAndLong, help: "The router: its IPv4 address, or a DNS name (its AAAA where that embeds the router's endpoint, else its A).")
    var server: String
    @Option(help: "Resolve --server with this DNS server ([address]:port) rather than the system's.") var resolver: String?
    @Option(name: .shortAndLong, help: "The router's UDP port.") var port: UInt16 = SixBedFourPrefix.defaultPort
    @Option(help: "The TUN device to create.") var device = "6bed4"
    @Flag(name: .shortAndLong, help: "Also route ::/0 through the router (metric 1042, below native IPv6).") var defaultRoute = false
    @Option(help: "Seconds between keepalives, which also caps the solicitation back-off.") var keepalive = 30.0
    @Option(help: "IPv4 TTL of keepalives: enough to refresh the NATs nearby.") var keepaliveTTL = 3

    func validate() throws {
        guard IPv4Address(server) != nil || DNSName(server) != nil else {
            throw ValidationError("--server \(server) is neither an IPv4 address nor a DNS name")
        }
        if let resolver, (try? IPEndpoint.parse(resolver, defaultPort: 53)) == nil { throw ValidationError("--resolver \(resolver) is not an address") }
        guard keepalive >= 1 else { throw ValidationError("--keepalive must be at least 1 second") }
        guard (1...255).contains(keepaliveTTL) else { throw ValidationError("--keepalive-ttl must be 1 to 255") }
    }

    func run() throws {
        let host = try Host(device: device, defaultRoute: defaultRoute)
        let socket = try UDPSocket.bind(nil)
        let (router, how) = try ServerName.resolve(server, port: port, resolver: resolver.flatMap { try? IPEndpoint.parse($0, defaultPort: 53) })
        if !how.isEmpty { log("6bed4peer: router \(router), from \(how)") }
        let engine = PeerEngine(server: router, keepalivePeriod: keepalive)
        let ttl = keepaliveTTL
        let out = SendBatch(socket: socket)
        engine.send = { e, p, n in out.add(p, length: n, to: e) }
        engine.sendKeepalive = { socket.sendKeepalive(to: $0, ttl: ttl) }
        // Packets to the stack get a zero offload header, written in the
        // headroom every receive buffer leaves in front of them.
        engine.write = { p, n in
            (p - Offload.size).initializeMemory(as: UInt8.self, repeating: 0, count: Offload.size)
            host.tun.write(p - Offload.size, length: n + Offload.size)
        }
        engine.configure = { learned, old, new in host.configure(learned, old: old, new: new) }
        log("6bed4peer \(SixgateVersion.string): soliciting \(engine.server) from \(socket.local) on \(device)")

        let signals = try SignalFD([SIGTERM, SIGINT, SIGUSR1])
        let headroom = 16
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: headroom + 65536, alignment: 16)
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: 2048, alignment: 16)
        var fds = [pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0), pollfd(fd: host.tun.fd, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: signals.fd, events: Int16(POLLIN), revents: 0)]
        let clock = ContinuousClock()
        let start = clock.now
        func now() -> Double { let d = clock.now - start; return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
        var lastAddress: IPv6Address?
        while true {
            let deadline = engine.tick(now: now())
            out.flush()
            if engine.address != lastAddress, let a = engine.address {
                log("address \(a)/114 (endpoint \(SixBedFourAddress.decode(a).endpoint))")
                lastAddress = a
            }
            let wait = Int32(max(0, min(1000, (deadline - now()) * 1000)))
            guard poll(&fds, 3, wait) > 0 else { continue }
            if fds[2].revents & Int16(POLLIN) != 0 {
                let sig = signals.next()
                if sig == SIGUSR1 {
                    log("counters: \(engine.counters)")
                } else {
                    log("stopping on signal \(sig); counters: \(engine.counters)")
                    host.teardown(address: engine.address)
                    return
                }
            }
            // Drain what is queued, a bounded batch per side, before polling again.
            let t = now()
            for _ in 0..<64 {
                guard let (n, from) = socket.receive(into: buffer + headroom, capacity: 2048) else { break }
                engine.fromUDP(buffer + headroom, length: n, from: from, now: t)
            }
            for _ in 0..<64 {
                let n = host.tun.read(into: buffer, capacity: headroom + 65536)
                if let failure = host.tun.failure(ofRead: n) {
                    // The device went away under us (its address and routes
                    // with it): exit 1 rather than spin, for a supervisor.
                    log("stopping: \(failure); counters: \(engine.counters)")
                    throw ExitCode(1)
                }
                guard n > Offload.size else { break }
                Segmenter.packets(of: buffer + Offload.size, length: n - Offload.size, offload: Offload(reading: buffer), maxLength: 1280, scratch: scratch) {
                    engine.fromTUN($0, length: $1, now: t)
                }
            }
            out.flush()
        }
    }
}

/// The peer's side of the host: its TUN device, the address and the routes on it.
final class Host {
    let tun: TunQueue
    let device: String
    let defaultRoute: Bool
    let netlink: RouteNetlink
    var routes: [OwnedRoute] = []
    /// Routes learned from router advertisements (RTPROT_RA).
    static let routeProtocol: UInt8 = 9

    init(device: String, defaultRoute: Bool) throws {
        // With offloads: TCP and UDP super-packets from the stack, cut here.
        tun = try TunQueue.open(device, multiQueue: false, offload: true)
        tun.setNonBlocking()
        self.device = device
        self.defaultRoute = defaultRoute
        netlink = try RouteNetlink(namespace: nil)
        // No autoconfiguration or DAD on the device: its one address comes from the router.
        let sysctl = Sysctl(namespace: nil)
        for key in ["accept_ra", "autoconf", "accept_dad", "forwarding"] { try sysctl.write("net.ipv6.conf.\(device).\(key)", "0") }
        try netlink.setLink(name: device, up: true, mtu: 1280)
    }

    func configure(_ learned: ND.Learned, old: IPv6Address?, new: IPv6Address) {
        do {
            if old != new {
                if let old { try netlink.deleteAddress(device: device, address: .v6(old), length: 114) }
                try netlink.addAddress(device: device, address: .v6(new), length: 114)
            }
            var wanted = learned.routes.map { OwnedRoute(destination: .v6($0), device: device, metric: 1052) }
            if defaultRoute {
                wanted.append(OwnedRoute(destination: .v6(IPv6Prefix(address: IPv6Address(high: 0, low: 0), length: 0)), device: device, metric: 1042))
            }
            for r in routes where !wanted.contains(r) { try? netlink.deleteRoute(r, protocol: Self.routeProtocol) }
            for r in wanted where !routes.contains(r) { try netlink.addRoute(r, protocol: Self.routeProtocol) }
            routes = wanted
        } catch {
            log("cannot configure \(new) on \(device): \(error)")
        }
    }

    /// What the peer added goes; the device itself goes when its last file closes.
    func teardown(address: IPv6Address?) {
        for r in routes { try? netlink.deleteRoute(r, protocol: Self.routeProtocol) }
        if let address { try? netlink.deleteAddress(device: device, address: .v6(address), length: 114) }
        tun.close()
    }
}

/// Signals as a file descriptor the loop polls (signalfd), so that they
/// arrive between packets, never in the middle of one.
struct SignalFD {
    let fd: Int32

    init(_ signals: [Int32]) throws {
        var set = sigset_t()
        sigemptyset(&set)
        for s in signals { sigaddset(&set, s) }
        sigprocmask(SIG_BLOCK, &set, nil)
        fd = signalfd(-1, &set, Int32(SFD_CLOEXEC))
        guard fd >= 0 else { throw SocketError("signalfd") }
    }

    func next() -> Int32 {
        var info = signalfd_siginfo()
        guard read(fd, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size else { return 0 }
        return Int32(info.ssi_signo)
    }
}

func log(_ line: String) {
    FileHandle.standardError.write(Data("6bed4peer: \(line)\n".utf8))
}

SixBedFourPeer.main()
