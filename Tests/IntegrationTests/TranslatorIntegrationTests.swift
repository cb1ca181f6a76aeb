import Foundation
import Glibc
import NetnsRig
import Testing

/// The gateway of the test topology (NetnsRig) with the controller's state applied
/// and `sixgated translate` running in gw.
struct TranslatorGateway {
    let rig: NetnsRig
    let config: String
    let translator: NetnsRig.Process

    static let s4in6 = "2001:db8:64::cb00:7102", c4in6 = "2001:db8:64::c633:6402"
    static let s6eam = "203.0.113.10"

    /// Every suite that uses the translator runs once per datapath.
    static let datapaths = ["tun", "kernel"]

    /// State and pins (a bpffs the controller mounts) in `scratch`.
    static func configText(scratch: String, datapath: String = "auto") -> String {
        """
        prefix = "2001:db8:64::/96"
        [gateway]
        uplink4 = "s4"
        inside6 = "c6"
        clients = ["2001:db8:1::/64"]
        [nat64]
        datapath = "\(datapath)"
        pool4 = "192.0.2.128/25"
        address4 = "192.0.2.1"
        queues = 2
        [[nat64.eam]]
        ipv4 = "203.0.113.10/32"
        ipv6 = "2001:db8:2::2/128"
        [dns64]
        enabled = false
        [controller]
        state_dir = "\(scratch)/state"
        bpf_dir = "\(scratch)/bpf"
        """
    }

    static func start(_ datapath: String) throws -> TranslatorGateway {
        let rig = try NetnsRig.standard()
        do {
            let config = rig.scratch + "/sixgate.toml"
            try configText(scratch: rig.scratch, datapath: datapath).write(toFile: config, atomically: true, encoding: .utf8)
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
        let (p, _) = try rig.startNotifying("gw", [binDir + "/sixgated", "translate", "--config", config], name: "translator-\(UUID().uuidString.prefix(6))",
                                            readyWithin: .seconds(10))
        // The datapath asked for is the one that runs.
        if p.errors.contains("datapath = kernel"), !p.errors.contains("translator ready: kernel (tc-BPF") { throw TranslatorDidNotStart(log: p.errors) }
        return p
    }

    /// A one-shot UDP echo server in `host` that answers reversed.
    func udpEcho(_ host: String, _ address: String, port: Int) throws -> NetnsRig.Process {
        let family = address.contains(":") ? "AF_INET6" : "AF_INET"
        let p = try rig.start(host, ["python3", "-c", "import socket; s=socket.socket(socket.\(family), socket.SOCK_DGRAM); s.bind(('\(address)', \(port)))\nwhile True:\n d,a=s.recvfrom(4000); s.sendto(d[::-1], a)"], name: "udp-\(host)")
        try rig.waitForListener(host, port: port, udp: true, of: p)
        return p
    }

    /// The mappings the translator has mirrored into the kernel datapath's
    /// pool map (its IPv6 side), as bpftool reads the pinned map.
    func kernelPoolMappings() throws -> Int {
        let pins = try FileManager.default.contentsOfDirectory(atPath: rig.bpfDir + "/sixgate").map { rig.bpfDir + "/sixgate/" + $0 }
        guard let map = pins.first.map({ $0 + "/pool6" }) else { return 0 }
        let dump = try Spawn.run(["bpftool", "-j", "map", "dump", "pinned", map], timeout: .seconds(10), scratch: rig.scratch)
        guard dump.succeeded else { throw RigError.commandFailed(dump) }
        return (try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [Any])?.count ?? 0
    }

    func udpAsk(_ host: String, _ address: String, port: Int, message: String) throws -> String {
        let family = address.contains(":") ? "AF_INET6" : "AF_INET"
        let script = "import socket; s=socket.socket(socket.\(family), socket.SOCK_DGRAM); s.settimeout(2)\nfor i in range(3):\n try:\n  s.sendto(b'\(message)', ('\(address)', \(port))); print(s.recvfrom(4000)[0].decode()); break\n except socket.timeout: pass"
        return try rig.run(host, ["python3", "-c", script]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

struct TranslatorDidNotStart: Error, CustomStringConvertible {
    let log: String
    var description: String { "sixgated translate does not run the datapath its config asks for:\n\(log)" }
}

extension TranslatorGateway {
    /// A TCP sink in `host`: reads everything a client sends and answers its SHA-256.
    func tcpSink(_ host: String, _ address: String, port: Int) throws -> NetnsRig.Process {
        let family = address.contains(":") ? "AF_INET6" : "AF_INET"
        let script = """
            import socket, hashlib
            s = socket.socket(socket.\(family)); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(('\(address)', \(port))); s.listen(4)
            while True:
                c, _ = s.accept(); h = hashlib.sha256()
                while True:
                    d = c.recv(65536)
                    if not d: break
                    h.update(d)
                c.sendall(h.hexdigest().encode()); c.close()
            """
        let p = try rig.start(host, ["python3", "-c", script], name: "sink-\(host)")
        try rig.waitForListener(host, port: port, of: p)
        return p
    }

    /// Sends `size` random bytes to a sink and returns (what was sent, what came back).
    func upload(from host: String, to address: String, port: Int, size: Int) throws -> (String, String) {
        let family = address.contains(":") ? "AF_INET6" : "AF_INET"
        let script = """
            import socket, hashlib, os
            import time
            d = os.urandom(\(size))
            for i in range(50):  # refused? asked again every 0.1 s: a poll until the sink accepts, not a pause
                try:
                    s = socket.socket(socket.\(family)); s.settimeout(30); s.connect(('\(address)', \(port))); break
                except OSError:
                    time.sleep(0.1)
            s.sendall(d); s.shutdown(socket.SHUT_WR)
            r = b''
            while True:
                x = s.recv(100)
                if not x: break
                r += x
            print(hashlib.sha256(d).hexdigest(), r.decode())
            """
        let out = try rig.run(host, ["python3", "-c", script], timeout: .seconds(60)).stdout.split(separator: " ")
        return (out.first.map(String.init) ?? "none", out.dropFirst().first.map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) } ?? "none")
    }

    /// A datagram of `size` bytes and its echo, to show fragments crossing both ways.
    func udpRoundTrip(from host: String, to address: String, port: Int, size: Int) throws -> Bool {
        let family = address.contains(":") ? "AF_INET6" : "AF_INET"
        let script = """
            import socket
            d = bytes(range(256)) * (\(size) // 256 + 1); d = d[:\(size)]
            s = socket.socket(socket.\(family), socket.SOCK_DGRAM); s.settimeout(2)
            for i in range(3):
                try:
                    s.sendto(d, ('\(address)', \(port))); r = s.recvfrom(65535)[0]; print('ok' if r == d[::-1] else 'bad %d' % len(r)); break
                except socket.timeout: pass
            """
        return try rig.run(host, ["python3", "-c", script]).stdout.hasPrefix("ok")
    }
}

@Suite(.serialized) struct TranslatorIntegrationTests {
    /// c6 -> s4 through the dynamic pool and the masquerade: ping, a TCP
    /// download checked by hash, and UDP request/response.
    @Test(arguments: TranslatorGateway.datapaths) func ipv6ClientReachesIPv4Server(datapath: String) throws {
        let g = try TranslatorGateway.start(datapath)
        defer { g.rig.teardown() }
        let ping = try g.rig.run("c6", ["ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "2", TranslatorGateway.s4in6])
        #expect(ping.succeeded && ping.stdout.contains("3 received"), "\(ping)\n\(g.translator.errors)")

        let (dir, sha) = try g.rig.blob(size: 2 << 20)
        _ = try g.rig.httpServer("s4", "203.0.113.2", dir: dir)
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
    @Test(arguments: TranslatorGateway.datapaths) func ipv4ClientReachesIPv6ServerThroughMapping(datapath: String) throws {
        let g = try TranslatorGateway.start(datapath)
        defer { g.rig.teardown() }
        let ping = try g.rig.run("c4", ["ping", "-4", "-n", "-c", "3", "-i", "0.2", "-W", "2", TranslatorGateway.s6eam])
        #expect(ping.succeeded && ping.stdout.contains("3 received"), "\(ping)\n\(g.translator.errors)")

        let (dir, sha) = try g.rig.blob(size: 2 << 20)
        let server = try g.rig.httpServer("s6", "2001:db8:2::2", dir: dir)
        let got = try g.rig.run("c4", ["sh", "-c", "curl -sS --max-time 30 http://\(TranslatorGateway.s6eam):8080/blob | sha256sum"], timeout: .seconds(60))
        #expect(got.stdout.hasPrefix(sha), "\(got)")
        #expect(server.errors.contains(TranslatorGateway.c4in6 + " - - "), "the server log shows the client as prefix::c4: \(server.errors)")

        _ = try g.udpEcho("s6", "2001:db8:2::2", port: 9999)
        #expect(try g.udpAsk("c4", TranslatorGateway.s6eam, port: 9999, message: "mapping") == "gnippam")
    }

    /// Bursts of small datagrams arrive whole in both directions: each with
    /// its own content and a checksum the receiving kernel accepts. The TUN
    /// translator joins them into UDP super-packets on their way out
    /// (Coalescer); the kernel datapath translates them without the TUN
    /// readers.
    @Test(arguments: TranslatorGateway.datapaths) func burstsOfSmallDatagramsArriveWhole(datapath: String) throws {
        let g = try TranslatorGateway.start(datapath)
        defer { g.rig.teardown() }
        // Checksums computed in software where gw sends to the servers, as a
        // NIC would compute them on the wire: the servers then verify what
        // the translator left for the kernel to complete. (Between namespaces
        // they would otherwise be trusted unchecked.)
        for device in ["s4", "s6"] { try g.rig.checked("gw", ["ethtool", "-K", device, "tx", "off"]) }
        // c6's pool mapping first (made by the userspace translator, then
        // mirrored into the kernel's map), so that the burst finds it.
        _ = try g.rig.run("c6", ["ping", "-6", "-n", "-c", "1", "-W", "2", TranslatorGateway.s4in6])
        if datapath == "kernel" {
            try waitUntil("c6's pool mapping in the kernel's map", deadline: .seconds(5)) { try g.kernelPoolMappings() > 0 }
        }
        let count = 20000
        for (client, destination, server, address) in [("c6", TranslatorGateway.s4in6, "s4", "203.0.113.2"),
                                                        ("c4", TranslatorGateway.s6eam, "s6", "2001:db8:2::2")] {
            let family = address.contains(":") ? "AF_INET6" : "AF_INET"
            let receiver = try g.rig.start(server, ["python3", "-c", """
                import socket
                s = socket.socket(socket.\(family), socket.SOCK_DGRAM)
                s.setsockopt(socket.SOL_SOCKET, 33, 1 << 26)  # SO_RCVBUFFORCE: python reads slower than the burst comes
                s.bind(('\(address)', 9100)); s.settimeout(10)
                seen, bad = set(), 0
                try:
                    while True:
                        d = s.recv(2048); s.settimeout(1)
                        n = int.from_bytes(d[:4], 'big')
                        if d[4:] == bytes([n % 251]) * 60: seen.add(n)
                        else: bad += 1
                except socket.timeout: pass
                print(len(seen), bad, flush=True)
                """], name: "burst-\(server)")
            try g.rig.waitForListener(server, port: 9100, udp: true, of: receiver)
            try g.rig.checked(client, ["python3", "-c", """
                import socket, time
                s = socket.socket(socket.\(destination.contains(":") ? "AF_INET6" : "AF_INET"), socket.SOCK_DGRAM)
                s.connect(('\(destination)', 9100))
                for n in range(\(count)):
                    s.send(n.to_bytes(4, 'big') + bytes([n % 251]) * 60)
                    if n % 200 == 199: time.sleep(0.002)  # bursts, not a flood
                """])
            #expect(Spawn.wait(receiver.pid, timeout: .seconds(20)) == 0)
            let fields = receiver.output.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            #expect(fields.count == 2 && fields[0] >= count * 95 / 100 && fields[1] == 0,
                    "\(client) -> \(server): datagrams received whole, corrupt: \(receiver.output)")
            let errors = try g.rig.checked(server, ["nstat", "-asz", "UdpInCsumErrors", "Udp6InCsumErrors"]).stdout
            #expect(!errors.split(separator: "\n").contains { $0.hasPrefix("Udp") && $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first != "0" },
                    "no checksum errors at \(server): \(errors)")
        }
        g.rig.stop(g.translator)
        let counters = g.translator.errors.split(separator: "\n").first { $0.contains("counters:") } ?? ""
        func counter(_ name: String) -> Int { counters.split(separator: " ").first { $0.hasPrefix(name + "=") }.flatMap { Int($0.dropFirst(name.count + 1)) } ?? 0 }
        if datapath == "tun" {
            #expect(counter("coalesced") > 0, "some datagrams crossed joined: \(counters)")
        } else {
            // The kernel carried them: its counters rose, the TUN readers' stayed flat.
            #expect(counter("kernel_6to4") >= count * 95 / 100 && counter("kernel_4to6") >= count * 95 / 100, "\(counters)")
            #expect(counter("6to4") + counter("4to6") < count / 100, "\(counters)")
        }
    }

    /// Datagrams larger than any link cross as fragments in both directions:
    /// IPv6 fragments become IPv4 fragments, and IPv4 fragments become IPv6
    /// fragments no larger than lowest-ipv6-mtu.
    @Test(arguments: TranslatorGateway.datapaths) func fragmentedUDPBothWays(datapath: String) throws {
        let g = try TranslatorGateway.start(datapath)
        defer { g.rig.teardown() }
        _ = try g.udpEcho("s4", "203.0.113.2", port: 9999)
        #expect(try g.udpRoundTrip(from: "c6", to: TranslatorGateway.s4in6, port: 9999, size: 4000), "c6 <-> s4: \(g.translator.errors)")
        _ = try g.udpEcho("s6", "2001:db8:2::2", port: 9999)
        #expect(try g.udpRoundTrip(from: "c4", to: TranslatorGateway.s6eam, port: 9999, size: 4000), "c4 <-> s6")
    }

    /// The IPv6 links at MTU 1280 and the IPv4 links at 1500: large TCP
    /// transfers complete in each direction, both ways round.
    @Test(arguments: TranslatorGateway.datapaths) func tcpAcrossMTU1280(datapath: String) throws {
        let g = try TranslatorGateway.start(datapath)
        defer { g.rig.teardown() }
        for (host, gwSide) in [("c6", "c6"), ("s6", "s6")] {
            try g.rig.checked(host, ["ip", "link", "set", "eth0", "mtu", "1280"])
            try g.rig.checked("gw", ["ip", "link", "set", gwSide, "mtu", "1280"])
        }
        _ = try g.tcpSink("s4", "203.0.113.2", port: 7000)
        let up = try g.upload(from: "c6", to: TranslatorGateway.s4in6, port: 7000, size: 3 << 20)
        #expect(up.0 == up.1, "c6 -> s4 upload")
        _ = try g.tcpSink("s6", "2001:db8:2::2", port: 7000)
        let up4 = try g.upload(from: "c4", to: TranslatorGateway.s6eam, port: 7000, size: 3 << 20)
        #expect(up4.0 == up4.1, "c4 -> s6 upload")
        let (dir, sha) = try g.rig.blob(size: 3 << 20)
        _ = try g.rig.httpServer("s4", "203.0.113.2", dir: dir)
        _ = try g.rig.httpServer("s6", "2001:db8:2::2", dir: dir)
        let down = try g.rig.run("c6", ["sh", "-c", "curl -sS --max-time 30 http://[\(TranslatorGateway.s4in6)]:8080/blob | sha256sum"], timeout: .seconds(60))
        #expect(down.stdout.hasPrefix(sha), "s4 -> c6 download: \(down)")
        let down4 = try g.rig.run("c4", ["sh", "-c", "curl -sS --max-time 30 http://\(TranslatorGateway.s6eam):8080/blob | sha256sum"], timeout: .seconds(60))
        #expect(down4.stdout.hasPrefix(sha), "s6 -> c4 download: \(down4)")
    }

    /// The translator restarts in the middle of a download: the pool mapping
    /// comes back from the state file, so the TCP connection goes on.
    @Test(arguments: TranslatorGateway.datapaths) func poolSurvivesARestart(datapath: String) throws {
        let g = try TranslatorGateway.start(datapath)
        defer { g.rig.teardown() }
        let (dir, sha) = try g.rig.blob(size: 3 << 20)
        let server = try g.rig.httpServer("s4", "203.0.113.2", dir: dir)
        let download = try g.rig.start("c6", ["sh", "-c", "curl -sS --max-time 40 --limit-rate 600K http://[\(TranslatorGateway.s4in6)]:8080/blob | sha256sum"], name: "slow-download")
        // The server logs the request once it answers: the download is under way.
        try server.waitForLog("GET /blob")
        #expect(isAlive(download.pid), "the download is still running when the translator stops")
        g.rig.stop(g.translator)
        let state = try String(contentsOfFile: gatewayState(g.rig) + "/pool4.state", encoding: .utf8)
        #expect(state.contains("2001:db8:1::2 192.0.2.128"), "the mapping was saved: \(state)")
        let again = try TranslatorGateway.startTranslator(g.rig, g.config)
        #expect(again.errors.contains("pool 192.0.2.128/25 with 1 restored mapping"), "\(again.errors)")
        #expect(Spawn.wait(download.pid, timeout: .seconds(45)) == 0)
        #expect(download.output.hasPrefix(sha), "the download finished intact: \(download.output) \(download.errors)")
    }

    /// Garbage written into the TUN device (through a packet socket, as a
    /// conformance suite would) is counted and dropped, and translation goes on.
    @Test(arguments: TranslatorGateway.datapaths) func malformedPacketsAreDroppedAndTranslationGoesOn(datapath: String) throws {
        let g = try TranslatorGateway.start(datapath)
        defer { g.rig.teardown() }
        let inject = """
            import socket, os, random
            s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM)
            for i in range(2000):
                n = random.randint(1, 100); d = bytearray(os.urandom(n))
                if i % 3 == 0: d[0] = 0x60 | (d[0] & 0x0f)
                if i % 3 == 1: d[0] = 0x45
                s.sendto(bytes(d), ('sg-nat64', 0x86dd if d[0] >> 4 == 6 else 0x0800))
            """
        try g.rig.checked("gw", ["python3", "-c", inject])
        let ping = try g.rig.run("c6", ["ping", "-6", "-n", "-c", "2", "-i", "0.2", "-W", "2", TranslatorGateway.s4in6])
        #expect(ping.succeeded, "\(ping)")
        g.rig.stop(g.translator)
        let log = g.translator.errors
        let counters = log.split(separator: "\n").first { $0.contains("counters:") } ?? ""
        let drops = counters.split(separator: " ").filter { $0.hasPrefix("drop.") }.compactMap { Int($0.split(separator: "=").last ?? "") }.reduce(0, +)
        #expect(drops >= 1500, "\(counters)")
        #expect(counters.contains("drop.malformed=") && counters.contains("drop.unknown_ip_version="), "\(counters)")
        #expect(counters.contains("6to4="), "\(counters)")
    }

    /// A TUN device deleted under the translator stops it with exit 1 and
    /// the reason, instead of leaving it spinning on a dead queue: a
    /// supervisor can then restart it once the device is back.
    @Test(arguments: TranslatorGateway.datapaths) func deletedDeviceStopsTheTranslator(datapath: String) throws {
        let g = try TranslatorGateway.start(datapath)
        defer { g.rig.teardown() }
        try g.rig.checked("gw", ["ip", "link", "del", "sg-nat64"])
        #expect(Spawn.wait(g.translator.pid, timeout: .seconds(5)) == 1, "\(g.translator.errors)")
        #expect(g.translator.errors.contains("translator stopping: reading from TUN device sg-nat64 failed"), "\(g.translator.errors)")
    }

    /// The kernel datapath is the controller's, like the nftables table:
    /// apply loads, pins and attaches the program and fills its EAM map;
    /// audit reports a missing filter, another program in its place or a
    /// wrong EAM map (exit 2), and apply repairs each; the program goes on
    /// translating established mappings with no daemon at all; a tun config
    /// and remove take it all away.
    @Test func theControllerOwnsTheKernelDatapath() throws {
        let g = try TranslatorGateway.start("kernel")
        defer { g.rig.teardown() }
        let rig = g.rig
        func filters() throws -> String { try rig.checked("gw", ["tc", "filter", "show", "dev", "sg-nat64", "egress"]).stdout }
        func ctl(_ command: String) throws -> CommandResult { try runProduct("sixgatectl", [command, g.config, "--netns", rig.ns("gw")]) }
        let pins = try #require(try FileManager.default.contentsOfDirectory(atPath: rig.bpfDir + "/sixgate").first.map { rig.bpfDir + "/sixgate/" + $0 })
        #expect(try filters().contains("handle 0x5147 nat64"), "attached by apply")
        let eam = try Spawn.run(["bpftool", "map", "dump", "pinned", pins + "/eam4"], timeout: .seconds(10), scratch: rig.scratch)
        #expect(eam.stdout.contains("203") || eam.stdout.contains("0xcb"), "the EAM entry is in the pinned map: \(eam)")
        #expect(try ctl("audit").status == 0)

        // The program translates for an established mapping while no daemon runs.
        #expect(try rig.run("c6", ["ping", "-6", "-n", "-c", "2", "-i", "0.2", "-W", "2", TranslatorGateway.s4in6]).succeeded)
        kill(g.translator.pid, SIGKILL)
        _ = Spawn.wait(g.translator.pid, timeout: .seconds(5))
        let alone = try rig.run("c6", ["ping", "-6", "-n", "-c", "5", "-i", "0.2", "-W", "2", TranslatorGateway.s4in6])
        #expect(alone.stdout.contains("5 received"), "the kernel translates with no daemon: \(alone)")

        // A deleted filter.
        try rig.checked("gw", ["tc", "filter", "del", "dev", "sg-nat64", "egress"])
        let missing = try ctl("audit")
        #expect(missing.status == 2 && missing.stdout.contains("+ bpf sg-nat64 egress filter handle 0x5147"), "\(missing)")
        #expect(try ctl("apply").succeeded)
        #expect(try ctl("audit").status == 0 && filters().contains("handle 0x5147 nat64"))

        // A mapping gone from the EAM map: its key is the /32's prefix length and address.
        let deleted = try Spawn.run(["bpftool", "map", "delete", "pinned", pins + "/eam4", "key", "32", "0", "0", "0", "203", "0", "113", "10"],
                                    timeout: .seconds(10), scratch: rig.scratch)
        try #require(deleted.succeeded, "\(deleted)")
        let wrongEAM = try ctl("audit")
        #expect(wrongEAM.status == 2 && wrongEAM.stdout.contains("+ bpf eam 203.0.113.10/32 2001:db8:2::2/128"), "\(wrongEAM)")
        #expect(try ctl("apply").succeeded)
        #expect(try ctl("audit").status == 0)

        // Another program in our filter's place.
        let other = rig.scratch + "/other.bpf.o"
        try "int pass(void *skb) { return 0; }\nchar _license[] __attribute__((section(\"license\"))) = \"GPL\";\n"
            .write(toFile: rig.scratch + "/other.c", atomically: true, encoding: .utf8)
        let compiled = try Spawn.run(["clang", "-O2", "-target", "bpf", "-c", rig.scratch + "/other.c", "-o", other], timeout: .seconds(30), scratch: rig.scratch)
        try #require(compiled.succeeded, "\(compiled)")
        try rig.checked("gw", ["tc", "filter", "replace", "dev", "sg-nat64", "egress", "pref", "20807", "handle", "0x5147", "bpf", "da", "obj", other, "sec", ".text"])
        let replaced = try ctl("audit")
        #expect(replaced.status == 2 && replaced.stdout.contains("~ bpf sg-nat64 egress filter handle 0x5147: runs program id"), "\(replaced)")
        #expect(try ctl("apply").succeeded)
        #expect(try ctl("audit").status == 0 && filters().contains("handle 0x5147 nat64"))

        // A tun config: no program, no pins; the daemon translates alone.
        try TranslatorGateway.configText(scratch: rig.scratch, datapath: "tun").write(toFile: g.config, atomically: true, encoding: .utf8)
        let toTun = try ctl("apply")
        #expect(toTun.stdout.contains("- bpf sg-nat64 egress filter handle 0x5147") && toTun.stdout.contains("- bpf pins \(pins)"), "\(toTun)")
        #expect(try !filters().contains("nat64") && !FileManager.default.fileExists(atPath: pins))
        _ = try TranslatorGateway.startTranslator(rig, g.config)
        #expect(try rig.run("c6", ["ping", "-6", "-n", "-c", "2", "-i", "0.2", "-W", "2", TranslatorGateway.s4in6]).succeeded)

        // Back to kernel, then remove.
        try TranslatorGateway.configText(scratch: rig.scratch, datapath: "kernel").write(toFile: g.config, atomically: true, encoding: .utf8)
        #expect(try ctl("apply").stdout.contains("+ bpf program \(pins)/nat64"))
        let removed = try ctl("remove")
        #expect(removed.stdout.contains("- bpf sg-nat64 egress filter handle 0x5147") && removed.stdout.contains("- bpf pins \(pins)"), "\(removed)")
        #expect(!FileManager.default.fileExists(atPath: rig.bpfDir + "/sixgate"), "nothing of sixgate is left in bpf_dir")
    }

    /// A hop limit that runs out at the translator comes back as a translated
    /// Time Exceeded from the translator's own address.
    @Test(arguments: TranslatorGateway.datapaths) func hopLimitExpiryIsAnswered(datapath: String) throws {
        let g = try TranslatorGateway.start(datapath)
        defer { g.rig.teardown() }
        let r = try g.rig.run("c6", ["ping", "-6", "-n", "-c", "1", "-t", "2", "-W", "2", TranslatorGateway.s4in6])
        #expect(r.stdout.contains("Time exceeded") && r.stdout.contains("2001:db8:64::c000:201"), "\(r)")
        let r4 = try g.rig.run("c4", ["ping", "-4", "-n", "-c", "1", "-t", "2", "-W", "2", TranslatorGateway.s6eam])
        #expect(r4.stdout.contains("Time to live exceeded") && r4.stdout.contains("192.0.2.1"), "\(r4)")
    }
}
