import Foundation
import Glibc
import NetnsRig
import Testing

/// Hostile TCP on port 53: the server must neither crash nor stop answering.
@Suite(.serialized) struct DNS64FloodTests {
    /// Runs `flood` (a Python script) in `host` in the background and asks
    /// for v4only.example.org over UDP until it ends: every answer must be
    /// right, and the server must still run afterwards and answer over TCP.
    /// Returns what the flood printed.
    @discardableResult
    static func survives(_ g: DNS64Gateway, host: String, flood: String) throws -> String {
        let script = g.rig.scratch + "/flood.py"
        try flood.write(toFile: script, atomically: true, encoding: .utf8)
        let flooder = try g.rig.start(host, ["python3", script], name: "flood-\(host)")
        var asked = 0
        let deadline = ContinuousClock.now + .seconds(90)
        while Spawn.wait(flooder.pid, timeout: .zero) == nil, ContinuousClock.now < deadline {
            let r = try g.dig("v4only.example.org")
            // The TTL ages in the cache; the rest must not change.
            #expect(r.answers.map { $0.split(separator: " ").enumerated().filter { $0.offset != 1 }.map(\.element).joined(separator: " ") }
                    == ["v4only.example.org. AAAA 2001:db8:64::c000:20a"], "answered during the flood: \(r)")
            asked += 1
        }
        #expect(ContinuousClock.now < deadline, "the flood ended in time")
        #expect(flooder.output.contains("done"), "the flood ran to its end: \(flooder.output) \(flooder.errors)")
        #expect(asked >= 2, "queries were asked while the flood ran")
        #expect(isRunning(g.dns64.pid), "sixgated survived: \(g.dns64.errors.suffix(2000))")
        let tcp = try g.rig.run("c6", ["kdig", "+tcp", "+short", "+timeout=3", "@2001:db8:1::1", "v4only.example.org", "AAAA"])
        #expect(tcp.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "2001:db8:64::c000:20a", "TCP answers after the flood: \(tcp)")
        return flooder.output
    }

    @Test func twoThousandConcurrentConnections() throws {
        let g = try DNS64Gateway.start()
        defer { g.rig.teardown() }
        // 2,000 connections open together, about four times the server's
        // limit, held for two seconds. They are opened a hundred at a time,
        // so that the server's accept queue takes each handshake in (a
        // burst past it completes on the client's side only).
        let flood = try Self.survives(g, host: "c6", flood: """
            import resource, select, socket, time
            resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
            socks, connected = [], 0
            for batch in range(20):
                poll, pending = select.poll(), set()
                for i in range(100):
                    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                    s.setblocking(False)
                    s.connect_ex(('2001:db8:1::1', 53))
                    socks.append(s)
                    pending.add(s.fileno())
                    poll.register(s.fileno(), select.POLLOUT)
                deadline = time.time() + 10
                while pending and time.time() < deadline:
                    for fd, _ in poll.poll(500):
                        poll.unregister(fd)
                        pending.discard(fd)
                connected += 100 - len(pending)
                time.sleep(0.02)  # pacing between batches: part of the flood's shape
            time.sleep(2)  # the flood under test holds them for two seconds
            for s in socks: s.close()
            print('done', connected, flush=True)
            """)
        // The limit was reached, and what was past it was refused, not queued.
        g.rig.stop(g.dns64)
        let overload = g.dns64.errors.split(separator: " ").first { $0.hasPrefix("overload=") }.flatMap { Int($0.dropFirst("overload=".count)) }
        #expect((overload ?? 0) > 0, "connections past the limit counted: \(g.dns64.errors.suffix(500)) \(flood)")
    }

    @Test func aThousandConnectionsResetByAClientOutsideTheAccessList() throws {
        let g = try DNS64Gateway.start()
        defer { g.rig.teardown() }
        // c4 is not allowed to ask. Each connection is reset as soon as it is
        // made (SO_LINGER 0), often before the server asks whom it is from.
        try Self.survives(g, host: "c4", flood: """
            import socket, struct, time
            for batch in range(20):
                socks = []
                for i in range(50):
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
                    s.settimeout(2)
                    try: s.connect(('198.51.100.1', 53))
                    except OSError: pass
                    socks.append(s)
                for s in socks: s.close()
                time.sleep(0.05)  # pacing between batches: part of the flood's shape
            print('done', flush=True)
            """)
    }
}

/// Alive and not a zombie: a crashed child of the test stays in the process
/// table until it is reaped, so `kill(pid, 0)` alone would say it runs.
func isRunning(_ pid: pid_t) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return false }
    return stat[stat.index(close, offsetBy: 2)] != "Z"
}

