import Foundation
import Glibc
import NetnsRig
import Testing

/// The gateway of the DESIGN.md topology with the controller's state applied
/// and `sixgated translate` running in gw.
struct TranslatorGateway {
    let rig: NetnsRig
    let config: String
    let translator: NetnsRig.Process

    static let s4in6 = "2001:db8:64::cb00:7102", c4in6 = "2001:db8:64::c633:6402"
    static let s6eam = "203.0.113.10"

    static func configText(stateDir: String) -> String {
        """
        prefix = "2001:db8:64::/96"
        [gateway]
        uplink4 = "s4"
        inside6 = "c6"
        clients = ["2001:db8:1::/64"]
        [nat64]
        pool4 = "192.0.2.128/25"
        address4 = "192.0.2.1"
        queues = 2
        [[nat64.eam]]
        ipv4 = "203.0.113.10/32"
        ipv6 = "2001:db8:2::2/128"
        [dns64]
        enabled = false
        [controller]
        state_dir = "\(stateDir)"
        """
    }

    static func start() throws -> TranslatorGateway {
        let rig = try NetnsRig.standard()
        do {
            let config = rig.scratch + "/sixgate.toml"
            try configText(stateDir: rig.scratch + "/state").write(toFile: config, atomically: true, encoding: .utf8)
            let applied = try runProduct("sixgatectl", ["apply", config, "--netns", rig.ns("gw")])
            guard applied.succeeded else { throw RigError.commandFailed(applied) }
            let translator = try startTranslator(rig, config)
            return TranslatorGateway(rig: rig, config: config, translator: translator)
        } catch {
            rig.teardown()
            throw error
        }
    }

    static func startTranslator(_ rig: NetnsRig, _ config: String) throws -> NetnsRig.Process {
        let p = try rig.start("gw", [binDir + "/sixgated", "translate", "--config", config], name: "translator-\(UUID().uuidString.prefix(6))")
        let deadline = ContinuousClock.now + .seconds(10)
        while !p.errors.contains("translator ready"), ContinuousClock.now < deadline { usleep(20_000) }
        guard p.errors.contains("translator ready") else { throw TranslatorDidNotStart(log: p.errors) }
        return p
    }

    /// Serves `dir` over HTTP on `address` in `host`, and waits until it answers.
    func httpServer(_ host: String, _ address: String, dir: String) throws -> NetnsRig.Process {
        let p = try rig.start(host, ["python3", "-m", "http.server", "8080", "--bind", address, "--directory", dir], name: "http-\(host)")
        let family = address.contains(":") ? "AF_INET6" : "AF_INET"
        let probe = "import socket,sys; s=socket.socket(socket.\(family)); s.settimeout(0.5); sys.exit(s.connect_ex(('\(address)', 8080)))"
        for _ in 0..<100 {
            if try rig.run(host, ["python3", "-c", probe]).succeeded { break }
            usleep(50_000)
        }
        return p
    }

    /// A file of random bytes and its SHA-256, as sha256sum prints it.
    func blob(size: Int) throws -> (dir: String, sha: String) {
        let dir = rig.scratch + "/www"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try rig.checked("gw", ["sh", "-c", "head -c \(size) /dev/urandom > \(dir)/blob"])
        let sha = try rig.checked("gw", ["sha256sum", dir + "/blob"]).stdout.split(separator: " ")[0]
        return (dir, String(sha))
    }

    /// A one-shot UDP echo server in `host` that answers reversed.
    func udpEcho(_ host: String, _ address: String, port: Int) throws -> NetnsRig.Process {
        let family = address.contains(":") ? "AF_INET6" : "AF_INET"
        let p = try rig.start(host, ["python3", "-c", "import socket; s=socket.socket(socket.\(family), socket.SOCK_DGRAM); s.bind(('\(address)', \(port)))\nwhile True:\n d,a=s.recvfrom(4000); s.sendto(d[::-1], a)"], name: "udp-\(host)")
        usleep(300_000)
        return p
    }

    func udpAsk(_ host: String, _ address: String, port: Int, message: String) throws -> String {
        let family = address.contains(":") ? "AF_INET6" : "AF_INET"
        let script = "import socket; s=socket.socket(socket.\(family), socket.SOCK_DGRAM); s.settimeout(2)\nfor i in range(3):\n try:\n  s.sendto(b'\(message)', ('\(address)', \(port))); print(s.recvfrom(4000)[0].decode()); break\n except socket.timeout: pass"
        return try rig.run(host, ["python3", "-c", script]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

struct TranslatorDidNotStart: Error, CustomStringConvertible {
    let log: String
    var description: String { "sixgated translate did not report ready within 10 s:\n\(log)" }
}

@Suite(.serialized) struct TranslatorIntegrationTests {
    /// c6 -> s4 through the dynamic pool and the masquerade: ping, a TCP
    /// download checked by hash, and UDP request/response.
    @Test func ipv6ClientReachesIPv4Server() throws {
        let g = try TranslatorGateway.start()
        defer { g.rig.teardown() }
        let ping = try g.rig.run("c6", ["ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "2", TranslatorGateway.s4in6])
        #expect(ping.succeeded && ping.stdout.contains("3 received"), "\(ping)\n\(g.translator.errors)")

        let (dir, sha) = try g.blob(size: 2 << 20)
        _ = try g.httpServer("s4", "203.0.113.2", dir: dir)
        let got = try g.rig.run("c6", ["sh", "-c", "curl -sS --max-time 30 http://[\(TranslatorGateway.s4in6)]:8080/blob | sha256sum"], timeout: .seconds(60))
        #expect(got.stdout.hasPrefix(sha), "\(got)")

        _ = try g.udpEcho("s4", "203.0.113.2", port: 9999)
        #expect(try g.udpAsk("c6", TranslatorGateway.s4in6, port: 9999, message: "sixgate") == "etagxis")

        // s4 saw the gateway's uplink address: the pool was masqueraded.
        let seen = try g.rig.checked("gw", ["nft", "list", "counter", "inet", "sixgate", "pool4_masquerade"]).stdout
        #expect(!seen.contains("packets 0 "), "\(seen)")
    }

    /// c4 -> s6 through the explicit mapping: the IPv6-only server sees the
    /// client as prefix::c4.
    @Test func ipv4ClientReachesIPv6ServerThroughMapping() throws {
        let g = try TranslatorGateway.start()
        defer { g.rig.teardown() }
        let ping = try g.rig.run("c4", ["ping", "-4", "-n", "-c", "3", "-i", "0.2", "-W", "2", TranslatorGateway.s6eam])
        #expect(ping.succeeded && ping.stdout.contains("3 received"), "\(ping)\n\(g.translator.errors)")

        let (dir, sha) = try g.blob(size: 2 << 20)
        let server = try g.httpServer("s6", "2001:db8:2::2", dir: dir)
        let got = try g.rig.run("c4", ["sh", "-c", "curl -sS --max-time 30 http://\(TranslatorGateway.s6eam):8080/blob | sha256sum"], timeout: .seconds(60))
        #expect(got.stdout.hasPrefix(sha), "\(got)")
        #expect(server.errors.contains(TranslatorGateway.c4in6 + " - - "), "the server log shows the client as prefix::c4: \(server.errors)")

        _ = try g.udpEcho("s6", "2001:db8:2::2", port: 9999)
        #expect(try g.udpAsk("c4", TranslatorGateway.s6eam, port: 9999, message: "mapping") == "gnippam")
    }

    /// A hop limit that runs out at the translator comes back as a translated
    /// Time Exceeded from the translator's own address.
    @Test func hopLimitExpiryIsAnswered() throws {
        let g = try TranslatorGateway.start()
        defer { g.rig.teardown() }
        let r = try g.rig.run("c6", ["ping", "-6", "-n", "-c", "1", "-t", "2", "-W", "2", TranslatorGateway.s4in6])
        #expect(r.stdout.contains("Time exceeded") && r.stdout.contains("2001:db8:64::c000:201"), "\(r)")
        let r4 = try g.rig.run("c4", ["ping", "-4", "-n", "-c", "1", "-t", "2", "-W", "2", TranslatorGateway.s6eam])
        #expect(r4.stdout.contains("Time to live exceeded") && r4.stdout.contains("192.0.2.1"), "\(r4)")
    }
}
