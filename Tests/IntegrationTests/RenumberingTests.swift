import Demo
import Foundation
import Glibc
import NetnsRig
import Testing

/// Make-before-break renumbering on the demo gateway: the NAT64 prefix and
/// the dynamic pool change under a running download and a 6bed4 peer's
/// ping, both on the old prefix. Both prefixes translate until the longest
/// answer handed out for the old one has expired (here 20 s: DNS64 max_ttl,
/// PREF64 lifetime 16 s; and 5 s for the old daemon to stop); then the old prefix is gone from routes, nftables
/// and the translator. c6 keeps its address of the old pool until the
/// pool's idle timeout (30 s) has passed, then gets one of the new pool.
@Suite(.serialized) struct RenumberingTests {
    static let old = "2001:db8:64::", new = "2001:db8:46::"
    static let oldPool = "192.0.2.128/25", newPool = "192.0.2.64/26"
    static let hold = 20, poolHold = 30

    @Test(arguments: TranslatorGateway.datapaths) func thePrefixChangesWithoutLoss(datapath: String) throws {
        let demo = try DemoGateway(bin: binDir) {
            $0.replacingOccurrences(of: "[dns64]\n", with: "[dns64]\nmax_ttl = \"\(Self.hold)s\"\n")
                .replacingOccurrences(of: "[sixbedfour]\n", with: "[sixbedfour]\npref64_lifetime = \"16s\"\n")
                .replacingOccurrences(of: "[nat64]\n", with: "[nat64]\ndatapath = \"\(datapath)\"\npool_idle_timeout = \"\(Self.poolHold)s\"\n")
        }
        defer { demo.rig.teardown() }
        let rig = demo.rig, gw = rig.ns("gw")
        let daemon = try #require(demo.daemon)
        let s4old = Self.old + "cb00:7102", s4new = Self.new + "cb00:7102"
        func fetch(_ address: String) throws -> CommandResult {
            try rig.run("c6", ["curl", "-sS", "--max-time", "5", "-g", "http://[\(address)]:8080/index.html"])
        }
        func dig() throws -> String {
            try rig.run("c6", ["dig", "+short", "@2001:db8:1::1", "www.example.org", "AAAA"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        /// The last byte of c6's address in the dynamic pool (192.0.2.x), from
        /// the translator's state file.
        func poolOctet() throws -> Int? {
            let state = try String(contentsOfFile: gatewayState(rig) + "/pool4.state", encoding: .utf8)
            let line = state.split(separator: "\n").first { $0.hasPrefix("2001:db8:1::2 ") }
            return line.flatMap { $0.split(separator: " ")[1].split(separator: ".").last.flatMap { Int($0) } }
        }
        #expect(try dig() == s4old)

        // A download of about 10 s from s4 on the old prefix, and p2 (a 6bed4
        // peer behind NAT) pinging s4 on the old prefix for 10 s.
        // c6 takes at most 256 KB into its socket buffer: the transfer itself,
        // not only curl's reading, lasts the 10 s.
        try rig.checked("c6", ["sysctl", "-qw", "net.ipv4.tcp_rmem=4096 65536 262144"])
        let blob = rig.scratch + "/www-s4/blob"
        #expect(try rig.run("gw", ["sh", "-c", "head -c 5000000 /dev/urandom > \(blob)"]).succeeded)
        let sha = try rig.checked("gw", ["sha256sum", blob]).stdout.split(separator: " ")[0]
        let download = try rig.start("c6", ["curl", "-sS", "--limit-rate", "500k", "-o", rig.scratch + "/got", "-g",
                                            "http://[\(s4old)]:8080/blob"], name: "download")
        let ping = try rig.start("p2", ["ping", "-6", "-n", "-c", "40", "-i", "0.25", "-W", "2", s4old], name: "ping-p2")
        // Both under way on the old prefix before it changes.
        try waitUntil("the download and p2's ping on the old prefix\n\(download.errors)\n\(ping.output)", deadline: .seconds(10), poll: .milliseconds(100)) {
            let got = (try? FileManager.default.attributesOfItem(atPath: rig.scratch + "/got")[.size] as? Int) ?? 0
            return got >= 500_000 && ping.output.components(separatedBy: "icmp_seq=").count > 4
        }

        // The renumbering: apply hands the new prefix over; the daemon restarts with it.
        let text = try String(contentsOfFile: demo.config, encoding: .utf8)
        try text.replacingOccurrences(of: "prefix = \"\(Self.old)/96\"", with: "prefix = \"\(Self.new)/96\"")
            .replacingOccurrences(of: "pool4 = \"\(Self.oldPool)\"", with: "pool4 = \"\(Self.newPool)\"")
            .write(toFile: demo.config, atomically: true, encoding: .utf8)
        let applied = try runProduct("sixgatectl", ["apply", demo.config, "--netns", gw])
        let changed = ContinuousClock.now
        #expect(applied.succeeded && applied.stdout.contains("translator changed, dns64 changed, 6bed4 changed"), "\(applied)")
        #expect(applied.stdout.contains("renumbering: keeping prefix \(Self.old)/96 until ")
                && applied.stdout.contains("renumbering: keeping pool \(Self.oldPool) until "), "\(applied)")
        #expect(demo.waitForReady(2, seconds: 10) == 2, "\(daemon.errors)")

        // During the transition: DNS64 answers with the new prefix only, both translate.
        #expect(try dig() == s4new)
        #expect(try fetch(s4new).stdout.contains("hello from s4"))
        #expect(try fetch(s4old).stdout.contains("hello from s4"), "the old prefix still translates")
        let status = try runProduct("sixgatectl", ["status", demo.config]).stdout
        #expect(status.contains("renumbering: \(Self.old)/96 until ") && status.contains("then only \(Self.new)/96"), "\(status)")
        let routes = try rig.checked("gw", ["ip", "-6", "route", "show", "proto", "164"]).stdout
        #expect(routes.contains("\(Self.old)/96 dev sg-nat64") && routes.contains("\(Self.new)/96 dev sg-nat64"), "\(routes)")
        let routes4 = try rig.checked("gw", ["ip", "-4", "route", "show", "proto", "164"]).stdout
        #expect(routes4.contains("\(Self.oldPool) dev sg-nat64") && routes4.contains("\(Self.newPool) dev sg-nat64"), "\(routes4)")
        #expect(status.contains("renumbering: pool \(Self.oldPool) until "), "\(status)")
        let during = try runProduct("sixgatectl", ["verify", demo.config, "--netns", gw])
        #expect(during.succeeded && during.stdout.contains("\(Self.new)/96, \(Self.old)/96 (lifetime 0)"), "\(during)")

        // The download and the ping on the old prefix went on without loss.
        #expect(Spawn.wait(download.pid, timeout: .seconds(30)) == 0, "\(download.errors)")
        let got = try rig.checked("gw", ["sha256sum", rig.scratch + "/got"]).stdout.split(separator: " ")[0]
        #expect(got == sha, "the download arrived whole")
        #expect(Spawn.wait(ping.pid, timeout: .seconds(30)) == 0)
        #expect(ping.output.contains("40 packets transmitted, 40 received"), "\(ping.output) DAEMON \(daemon.errors)")
        let kept = try poolOctet()
        #expect(kept.map { $0 >= 128 } == true, "c6 kept its address of the old pool \(Self.oldPool): .\(kept ?? -1)")

        // After the deadline the daemon applies the config without the old prefix and restarts.
        let left = Duration.seconds(Self.hold) - (ContinuousClock.now - changed)
        #expect(demo.waitForReady(3, seconds: Int(left.components.seconds) + 15) == 3, "\(daemon.errors)")
        // Not before the longest answer for the old prefix has expired (DNS64 max_ttl).
        #expect(ContinuousClock.now - changed >= .seconds(Self.hold), "the old prefix retired too early")
        #expect(daemon.errors.contains("renumbering: \(Self.old)/96 retired"), "\(daemon.errors)")
        #expect(try dig() == s4new)
        #expect(try fetch(s4new).stdout.contains("hello from s4"))
        #expect(!(try fetch(s4old).succeeded), "the old prefix no longer translates")
        let after = try rig.checked("gw", ["ip", "-6", "route", "show", "proto", "164"]).stdout
        #expect(!after.contains(Self.old) && after.contains(Self.new), "\(after)")
        let table = try rig.checked("gw", ["nft", "list", "table", "inet", "sixgate"]).stdout
        #expect(!table.contains(Self.old) && table.contains(Self.new), "\(table)")
        let final = try runProduct("sixgatectl", ["status", demo.config]).stdout
        #expect(!final.contains("renumbering: \(Self.old)") && final.contains("renumbering ended, \(Self.old)/96 retired"), "\(final)")
        let verify = try runProduct("sixgatectl", ["verify", demo.config, "--netns", gw])
        #expect(verify.succeeded && !verify.stdout.contains(Self.old), "\(verify)")

        // The old pool goes at its own deadline; then c6 gets an address of the new one.
        #expect(demo.waitForReady(4, seconds: Self.poolHold - Self.hold + 15) == 4 && daemon.errors.contains("renumbering: pool \(Self.oldPool) retired"), "\(daemon.errors)")
        let routes4After = try rig.checked("gw", ["ip", "-4", "route", "show", "proto", "164"]).stdout
        #expect(!routes4After.contains(Self.oldPool) && routes4After.contains(Self.newPool), "\(routes4After)")
        #expect(try fetch(s4new).stdout.contains("hello from s4"))
        // The pool's state is saved every second.
        var moved: Int?
        try waitUntil("c6's mapping in the new pool \(Self.newPool) in the state file: .\(moved ?? -1)", deadline: .seconds(5), poll: .milliseconds(100)) {
            moved = try poolOctet()
            return moved.map { (64..<128).contains($0) } == true
        }
        #expect(try runProduct("sixgatectl", ["audit", demo.config, "--netns", gw]).status == 0)
        #expect(!(try runProduct("sixgatectl", ["status", demo.config]).stdout.contains("renumbering:")))
    }
}
