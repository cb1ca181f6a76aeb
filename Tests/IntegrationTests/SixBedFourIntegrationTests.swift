import Foundation
import Glibc
import NetnsRig
import Testing

/// The 6bed4 topology: the router in gw on 192.0.2.1; p1 on the router's IPv4
/// LAN; p2 behind a NAT box (nft masquerade, which keeps p2's port when it
/// can, as home routers do) whose public address is 198.51.100.2; the
/// IPv6-only server s6 behind gw.
///
///     p1 (192.0.2.11) ───────────────┐
///     p2 (203.0.113.2) ── nat ───────┼── gw (6bed4 router) ── s6 (2001:db8:2::2)
///                 (198.51.100.2)     │
struct SixBedFourNet {
    let rig: NetnsRig
    let router: NetnsRig.Process
    var peers: [String: NetnsRig.Process] = [:]

    static let prefix = "2001:db8:6bed:4"
    static let keepalive = 3

    static func start() throws -> SixBedFourNet {
        let rig = try NetnsRig(links: [
            .init(host: "p1", gatewayInterface: "p1", hostAddresses: ["192.0.2.11/24"], gatewayAddresses: ["192.0.2.1/24"]),
            .init(host: "nat", gatewayInterface: "nat", hostAddresses: ["198.51.100.2/24"], gatewayAddresses: ["198.51.100.1/24"]),
            .init(host: "p2", gatewayInterface: "lan", hostAddresses: ["203.0.113.2/24"], gatewayAddresses: ["203.0.113.1/24"], via: "nat"),
            .init(host: "s6", gatewayInterface: "s6", hostAddresses: ["2001:db8:2::2/64"], gatewayAddresses: ["2001:db8:2::1/64"]),
        ])
        do {
            try rig.checked("nat", ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            try rig.checked("nat", ["nft", "add table ip nat; add chain ip nat post { type nat hook postrouting priority srcnat; };"
                                    + " add rule ip nat post oifname eth0 masquerade"])
            let config = rig.scratch + "/sixgate.toml"
            try """
                prefix = "2001:db8:64::/96"
                [gateway]
                uplink4 = "nat"
                inside6 = "s6"
                clients = ["2001:db8:2::/64"]
                [nat64]
                enabled = false
                [dns64]
                enabled = false
                [sixbedfour]
                enabled = true
                address4 = "192.0.2.1"
                prefix = "\(prefix)::/64"
                publish = "6bed4.example.test"
                [controller]
                state_dir = "\(rig.scratch)/state"
                bpf_dir = "\(rig.scratch)/bpf"
                """.write(toFile: config, atomically: true, encoding: .utf8)
            let applied = try runProduct("sixgatectl", ["apply", config, "--netns", rig.ns("gw")])
            guard applied.succeeded else { throw RigError.commandFailed(applied) }
            let (router, _) = try rig.startNotifying("gw", [binDir + "/sixgated", "6bed4", "--config", config], name: "router", readyWithin: .seconds(10))
            var net = SixBedFourNet(rig: rig, router: router)
            for host in ["p1", "p2"] { net.peers[host] = try net.startPeer(host) }
            return net
        } catch {
            rig.teardown()
            throw error
        }
    }

    func startPeer(_ host: String) throws -> NetnsRig.Process {
        let p = try rig.start(host, [binDir + "/6bed4peer", "--server", "192.0.2.1", "--default-route", "--keepalive", "\(Self.keepalive)"],
                              name: "peer-\(host)-\(UUID().uuidString.prefix(4))")
        try p.waitForLog("address ")
        return p
    }

    /// The peer's current 6bed4 address and the endpoint it embeds, from its log.
    func address(_ host: String) -> (address: String, endpoint: String)? {
        guard let line = peers[host]?.errors.split(separator: "\n").last(where: { $0.contains(": address ") }) else { return nil }
        let words = line.split(separator: " ")
        guard let a = words.firstIndex(of: "address"), let e = words.firstIndex(of: "(endpoint") else { return nil }
        return (String(words[a + 1].split(separator: "/")[0]), String(words[e + 1].dropLast()))
    }

    /// The router's counters now (SIGUSR1 makes it log them).
    func routerCounters() throws -> [String: Int] {
        let before = router.errors.components(separatedBy: "6bed4 counters:").count
        kill(router.pid, SIGUSR1)
        try waitUntil("the router to log its counters\n\(router.errors)", deadline: .seconds(5)) {
            router.errors.components(separatedBy: "6bed4 counters:").count > before
        }
        let line = router.errors.components(separatedBy: "6bed4 counters:").last?.split(separator: "\n").first ?? ""
        return Dictionary(line.split(separator: " ").compactMap { kv -> (String, Int)? in
            let p = kv.split(separator: "=")
            return p.count == 2 ? (String(p[0]), Int(p[1]) ?? 0) : nil
        }, uniquingKeysWith: { a, _ in a })
    }

    func ping(_ from: String, _ to: String, count: Int = 3) throws -> CommandResult {
        try rig.run(from, ["ping", "-6", "-n", "-c", "\(count)", "-i", "0.2", "-W", "2", to], timeout: .seconds(30))
    }

    /// Serves a random blob from `host` on `address` and fetches it from `client`; true when the hashes agree.
    func transfer(from host: String, _ address: String, to client: String, size: Int = 1 << 20) throws -> Bool {
        let (dir, sha) = try rig.blob(size: size)
        let server = try rig.httpServer(host, address, dir: dir)
        defer { rig.stop(server) }
        let got = try rig.run(client, ["sh", "-c", "curl -sS --max-time 30 -g http://[\(address)]:8080/blob | sha256sum"], timeout: .seconds(60))
        return got.stdout.hasPrefix(sha)
    }
}

@Suite(.serialized) struct SixBedFourIntegrationTests {
    /// A peer finds the router by name: `sixgatectl publish` of the router's
    /// config, served by NSD, gives 6bed4.example.test; the router's AAAA
    /// (P::) embeds no endpoint, so the peer takes the name's A record.
    @Test func aPeerFindsThePublishedRouterByName() throws {
        let net = try SixBedFourNet.start()
        defer { net.rig.teardown() }
        let published = try runProduct("sixgatectl", ["publish", net.rig.scratch + "/sixgate.toml", "--zone", "example.test"])
        #expect(published.stdout.contains("6bed4\t300\tIN\tAAAA\t\(SixBedFourNet.prefix)::") && published.stdout.contains("6bed4\t300\tIN\tA\t192.0.2.1"), "\(published)")
        let zone = "$TTL 300\n@ IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 300\n@ IN NS ns.example.test.\nns IN A 192.0.2.11\n"
            + published.stdout
        let nsd = try net.rig.nsd("p1", "192.0.2.11", zones: [("example.test", zone)])
        defer { net.rig.stop(nsd) }
        let peer = try net.rig.start("p1", [binDir + "/6bed4peer", "--server", "6bed4.example.test", "--resolver", "192.0.2.11", "--device", "6bed4n"], name: "peer-by-name")
        defer { net.rig.stop(peer) }
        try peer.waitForLog("address ")
        #expect(peer.errors.contains("router 192.0.2.1:25790, from 6bed4.example.test A 192.0.2.1 (its AAAA \(SixBedFourNet.prefix):: embeds no endpoint)"), "\(peer.errors)")
    }

    @Test func peersGetTheirObservedEndpointsAndReachEverything() throws {
        let net = try SixBedFourNet.start()
        defer { net.rig.teardown() }
        let p1 = try #require(net.address("p1")), p2 = try #require(net.address("p2"))
        #expect(p1.address.hasPrefix(SixBedFourNet.prefix + ":") && p1.endpoint.hasPrefix("192.0.2.11:"), "\(p1)")
        #expect(p2.address.hasPrefix(SixBedFourNet.prefix + ":") && p2.endpoint.hasPrefix("198.51.100.2:"), "p2 shows the NAT's address: \(p2)")
        // The port is the one the NAT mapped: the router's answers reach p2 through it.
        let mapped = try net.rig.checked("nat", ["conntrack", "-L", "-p", "udp", "--dport", "25790"]).stdout
        #expect(mapped.contains("dport=\(p2.endpoint.split(separator: ":")[1])"), "\(mapped)")

        for (from, to) in [("p1", "2001:db8:2::2"), ("s6", p1.address), ("p2", "2001:db8:2::2"), ("p1", p2.address), ("p2", p1.address)] {
            let r = try net.ping(from, to)
            #expect(r.succeeded && r.stdout.contains("3 received"), "\(from) -> \(to): \(r)")
        }
        #expect(try net.transfer(from: "s6", "2001:db8:2::2", to: "p1"), "p1 <- s6")
        #expect(try net.transfer(from: "p1", p1.address, to: "s6"), "s6 <- p1")
        #expect(try net.transfer(from: "s6", "2001:db8:2::2", to: "p2"), "p2 <- s6")
        #expect(try net.transfer(from: "p2", p2.address, to: "p1"), "p1 <- p2")
        #expect(try net.transfer(from: "p1", p1.address, to: "p2"), "p2 <- p1")
    }

    @Test func peersTalkDirectlyAndFallBackToTheRouter() throws {
        let net = try SixBedFourNet.start()
        defer { net.rig.teardown() }
        let p2 = try #require(net.address("p2"))
        // The first exchange goes through the router; probes find the direct path.
        _ = try net.ping("p1", p2.address, count: 10)
        let before = try net.routerCounters()["relayed"] ?? -1
        let direct = try net.ping("p1", p2.address, count: 10)
        #expect(direct.succeeded && direct.stdout.contains("10 received"), "\(direct)")
        let after = try net.routerCounters()["relayed"] ?? -2
        // The peers' counters, for the message below.
        let logged = net.peers.mapValues { $0.errors.components(separatedBy: "counters:").count }
        for p in net.peers.values { kill(p.pid, SIGUSR1) }
        try waitUntil("the peers to log their counters", deadline: .seconds(5)) {
            net.peers.allSatisfy { $0.value.errors.components(separatedBy: "counters:").count > logged[$0.key]! }
        }
        let ct = try net.rig.run("nat", ["conntrack", "-L"]).stdout
        #expect(before == after, "the router relayed nothing while the peers talked: \(before) -> \(after)\n\(net.peers["p1"]!.errors)\n\(net.peers["p2"]!.errors)\n\(ct)")

        // Block the direct path in the NAT box: after a few seconds of silence
        // the peers go through the router again, and the ping goes on.
        try net.rig.checked("nat", ["nft", "add table ip block; add chain ip block forward { type filter hook forward priority 0; };"
                                    + " add rule ip block forward ip saddr 192.0.2.11 drop; add rule ip block forward ip daddr 192.0.2.11 drop"])
        let relayedBefore = try net.routerCounters()["relayed"] ?? -1
        let fallback = try net.rig.run("p1", ["ping", "-6", "-n", "-c", "40", "-i", "0.25", "-W", "1", p2.address], timeout: .seconds(60))
        let relayedAfter = try net.routerCounters()["relayed"] ?? -1
        let received = fallback.stdout.split(separator: "\n").first { $0.contains("received") } ?? ""
        #expect(relayedAfter > relayedBefore + 20, "relayed again: \(relayedBefore) -> \(relayedAfter)")
        // Some loss proves the block hit the direct path in use; replies prove the fallback.
        #expect(!fallback.stdout.contains(" 0% packet loss") && !received.contains(" 0 received"), "\(fallback)")
        // The last replies came back through the router.
        #expect(fallback.stdout.contains("icmp_seq=40 ") || fallback.stdout.contains("icmp_seq=39 "), "\(fallback)")
    }

    @Test func natRebindingAndSpoofing() throws {
        let net = try SixBedFourNet.start()
        defer { net.rig.teardown() }
        let old = try #require(net.address("p2"))
        // A steady ping keeps p2 talking while its NAT forgets it and maps it
        // anew, to another port (outside the ephemeral range p2's own port
        // comes from, so it cannot stay the same); the router sees a source
        // that no longer matches and answers with a corrective RA.
        let pinger = try net.rig.start("p2", ["ping", "-6", "-n", "-i", "0.2", "-W", "1", "2001:db8:2::2"], name: "pinger")
        try waitUntil("a reply to p2's steady ping\n\(pinger.output)", deadline: .seconds(5)) { pinger.output.contains("icmp_seq=") }
        try net.rig.checked("nat", ["nft", "flush chain ip nat post; add rule ip nat post oifname eth0 meta l4proto udp masquerade to :20000-20999"])
        try net.rig.checked("nat", ["conntrack", "-F"])
        // Within a keepalive: p2 learns its new address from the corrective RA.
        try waitUntil("p2's new address", deadline: .seconds(SixBedFourNet.keepalive), poll: .milliseconds(50)) { net.address("p2")?.address != old.address }
        let new = try #require(net.address("p2"))
        #expect(new.address != old.address && new.endpoint.hasPrefix("198.51.100.2:20"), "\(old) -> \(new)")
        let r = try net.ping("p2", "2001:db8:2::2")
        #expect(r.succeeded && r.stdout.contains("3 received"), "connectivity is back: \(r)")
        net.rig.stop(pinger)
        let addresses = try net.rig.checked("p2", ["ip", "-6", "addr", "show", "dev", "6bed4", "scope", "global"]).stdout
        #expect(addresses.contains(new.address) && !addresses.contains(old.address), "replaced, not added: \(addresses)")

        // A datagram from p1 whose IPv6 source is not p1's own: dropped and counted.
        let spoofed = try net.routerCounters()["drop.spoofed_source"] ?? 0
        let script = """
            import socket, struct
            src = socket.inet_pton(socket.AF_INET6, '2001:db8:2::99'); dst = socket.inet_pton(socket.AF_INET6, '2001:db8:2::2')
            pkt = struct.pack('!IHBB', 0x60000000, 8, 17, 64) + src + dst + struct.pack('!HHHH', 1, 9, 8, 0)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(pkt, ('192.0.2.1', 25790))
            """
        try net.rig.checked("p1", ["python3", "-c", script])
        var dropped = spoofed
        try waitUntil("the router to count the spoofed datagram: \(dropped), \(spoofed) before", deadline: .seconds(5), poll: .milliseconds(50)) {
            dropped = try net.routerCounters()["drop.spoofed_source"] ?? 0
            return dropped > spoofed
        }
        #expect(dropped == spoofed + 1)
    }

    @Test func peerAndRouterExitCleanly() throws {
        let net = try SixBedFourNet.start()
        defer { net.rig.teardown() }
        let p1 = try #require(net.peers["p1"])
        #expect(try net.rig.checked("p1", ["ip", "-6", "route", "show", "default"]).stdout.contains("6bed4"))
        net.rig.stop(p1)
        #expect(p1.errors.contains("stopping on signal 15"), "\(p1.errors)")
        let links = try net.rig.checked("p1", ["ip", "-o", "link"]).stdout
        #expect(!links.contains("6bed4"), "the device is gone, and its address and routes with it: \(links)")
        let help = try runProduct("6bed4peer", ["--help"], timeout: .seconds(10))
        #expect(help.succeeded && help.stdout.contains("USAGE"), "--help returns")

        // A peer or router whose TUN device is deleted stops with exit 1 and
        // says why, rather than spin on a dead queue.
        let p2 = try #require(net.peers["p2"])
        try net.rig.checked("p2", ["ip", "link", "del", "6bed4"])
        #expect(Spawn.wait(p2.pid, timeout: .seconds(5)) == 1, "\(p2.errors)")
        #expect(p2.errors.contains("stopping: reading from TUN device 6bed4 failed"), "\(p2.errors)")
        try net.rig.checked("gw", ["ip", "link", "del", "sg-6bed4"])
        #expect(Spawn.wait(net.router.pid, timeout: .seconds(5)) == 1, "\(net.router.errors)")
        #expect(net.router.errors.contains("6bed4 stopping: reading from TUN device sg-6bed4 failed"), "\(net.router.errors)")
    }
}
