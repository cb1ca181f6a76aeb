import Foundation
import Glibc
import NetnsRig
import Testing

@Suite(.serialized) struct NetnsRigTests {
    /// The rig's own proof: both families cross gw, only gw forwards, and after
    /// teardown no namespace, link or process is left.
    @Test func pingsThroughTheGatewayAndLeavesNothingBehind() throws {
        let linksBefore = try rootLinks()
        let rig = try NetnsRig.standard()
        var pids: [pid_t] = []
        do {
            defer { rig.teardown() }
            #expect(Set(NetnsRig.listNamespaces()).isSuperset(of: rig.hosts.map(rig.ns)))

            for host in rig.hosts {
                let v4 = try rig.checked(host, ["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout
                let v6 = try rig.checked(host, ["cat", "/proc/sys/net/ipv6/conf/all/forwarding"]).stdout
                let want = host == "gw" ? "1\n" : "0\n"
                #expect(v4 == want && v6 == want, "forwarding in \(host): ipv4 \(v4) ipv6 \(v6)")
            }

            let ping6 = try rig.run("c6", ["ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "2", "2001:db8:2::2"])
            #expect(ping6.succeeded && ping6.stdout.contains("3 received"), "\(ping6)")
            let ping4 = try rig.run("c4", ["ping", "-4", "-n", "-c", "3", "-i", "0.2", "-W", "2", "203.0.113.2"])
            #expect(ping4.succeeded && ping4.stdout.contains("3 received"), "\(ping4)")

            // Hop limit 1 expires at gw: proof that the path goes through it.
            let hop = try rig.run("c6", ["ping", "-6", "-n", "-c", "1", "-t", "1", "-W", "2", "2001:db8:2::2"])
            #expect(hop.stdout.contains("From 2001:db8:1::1") && hop.stdout.contains("Time exceeded"), "\(hop)")
            let ttl = try rig.run("c4", ["ping", "-4", "-n", "-c", "1", "-t", "1", "-W", "2", "203.0.113.2"])
            #expect(ttl.stdout.contains("From 198.51.100.1") && ttl.stdout.contains("Time to live exceeded"), "\(ttl)")

            // No route between families: c6 has no IPv4 at all.
            let none = try rig.run("c6", ["ping", "-4", "-n", "-c", "1", "-W", "1", "203.0.113.2"])
            #expect(!none.succeeded)

            // A long-running process, stopped by PID; another left for teardown.
            let a = try rig.start("gw", ["sleep", "600"], name: "sleep-a")
            let b = try rig.start("s4", ["sleep", "600"], name: "sleep-b")
            pids = [a.pid, b.pid]
            // `ip netns exec` enters the namespace just after the spawn.
            var inside = ""
            try waitUntil("the process to enter a namespace", deadline: .seconds(2)) {
                inside = try rig.checked("gw", ["ip", "netns", "identify", String(a.pid)]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                return !inside.isEmpty
            }
            #expect(inside == rig.ns("gw"), "the process runs inside gw")
            rig.stop(a)
            #expect(!isAlive(a.pid))
            #expect(isAlive(b.pid))

            let echo = try rig.start("s6", ["sh", "-c", "echo hello from s6; echo oops >&2"], name: "echo")
            _ = Spawn.wait(echo.pid, timeout: .seconds(5))
            #expect(echo.output == "hello from s6\n" && echo.errors == "oops\n")
        }
        #expect(rig.remainingNamespaces().isEmpty)
        for pid in pids { #expect(!isAlive(pid), "process \(pid) outlived the rig") }
        #expect(try rootLinks() == linksBefore, "the root namespace's links are unchanged")
    }

    /// SIGTERM and SIGINT to a process holding a rig tear the rig down.
    @Test(arguments: [SIGTERM, SIGINT])
    func signalTearsDown(signal sig: Int32) throws {
        let path = binDir + "/RigHold"
        guard access(path, X_OK) == 0 else { throw MissingBinary(path: path) }
        let out = NSTemporaryDirectory() + "righold-\(getpid())-\(sig).out"
        defer { unlink(out); unlink(out + ".err") }
        let pid = try Spawn.start([path], stdout: out, stderr: out + ".err")
        var ready: [Substring] = []
        // Its report, or its end: either way no more to wait for.
        try? waitUntil("RigHold to report its rig", deadline: .seconds(30)) {
            let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("ready ") }) { ready = line.split(separator: " ") }
            return !ready.isEmpty || Spawn.wait(pid, timeout: .zero) != nil
        }
        guard ready.count == 7, let sleeper = pid_t(ready[1]) else {
            Spawn.stop(pid)
            Issue.record("RigHold did not come up: \((try? String(contentsOfFile: out + ".err", encoding: .utf8)) ?? "")")
            return
        }
        let names = ready[2...].map(String.init)
        #expect(Set(NetnsRig.listNamespaces()).isSuperset(of: names))
        #expect(isAlive(sleeper))

        kill(pid, sig)
        let status = Spawn.wait(pid, timeout: .seconds(30))
        #expect(status == 128 + sig, "RigHold died of the signal after tearing down")
        #expect(Set(NetnsRig.listNamespaces()).isDisjoint(with: names), "namespaces removed")
        #expect(!isAlive(sleeper), "the process inside was stopped")
    }

    /// A runner killed with SIGKILL cannot clean up; the next rig removes what it left.
    @Test func reapsNamespacesOfDeadRunners() throws {
        let dead = try Spawn.start(["true"], stdout: "/dev/null", stderr: "/dev/null")
        _ = Spawn.wait(dead, timeout: .seconds(5))
        let name = "\(NetnsRig.namePrefix)\(dead)-stale-gw"
        _ = try Spawn.run(["ip", "netns", "add", name], timeout: .seconds(10), scratch: NSTemporaryDirectory())
        let sleeper = try Spawn.start(["ip", "netns", "exec", name, "sleep", "600"], stdout: "/dev/null", stderr: "/dev/null")
        // Inside, or already gone with the namespace (reaped by a rig of a parallel test).
        try waitUntil("the sleeper to enter \(name)", deadline: .seconds(5)) {
            try Spawn.run(["ip", "netns", "identify", String(sleeper)], timeout: .seconds(10), scratch: NSTemporaryDirectory()).stdout.contains(name)
                || Spawn.wait(sleeper, timeout: .zero) != nil
        }
        // No check that it exists here: a rig built meanwhile by a test running in
        // parallel reaps it too, which is the same function at work.
        NetnsRig.reapStale()
        _ = Spawn.wait(sleeper, timeout: .seconds(5))
        #expect(!NetnsRig.listNamespaces().contains(name))
        #expect(!isAlive(sleeper))
    }
}
