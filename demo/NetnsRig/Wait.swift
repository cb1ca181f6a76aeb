import Foundation
import Glibc

/// What `waitUntil` throws when its deadline passes before the condition holds.
public struct WaitTimedOut: Error, CustomStringConvertible {
    public let what: String
    public let deadline: Duration

    public init(what: String, deadline: Duration) {
        self.what = what
        self.deadline = deadline
    }

    public var description: String { "gave up after \(deadline) waiting for \(what)" }
}

/// Asks `condition` every `poll` until it holds, and throws `WaitTimedOut`
/// naming `what` when it still does not after `deadline` (it is asked once
/// more then). The one way the tests wait for something to happen: never a
/// fixed sleep where there is a condition to wait for. `what` is evaluated
/// only on failure, so it may carry the log that shows why.
public func waitUntil(_ what: @autoclosure () -> String, deadline: Duration, poll: Duration = .milliseconds(20),
                      _ condition: () throws -> Bool) throws {
    let end = ContinuousClock.now + deadline
    while true {
        if try condition() { return }
        let now = ContinuousClock.now
        guard now < end else { throw WaitTimedOut(what: what(), deadline: deadline) }
        doze(min(poll, end - now))
    }
}

/// `waitUntil`'s poll interval.
func doze(_ d: Duration) {
    let (seconds, attoseconds) = d.components
    guard seconds > 0 || attoseconds > 0 else { return }
    var t = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
    var left = timespec()
    while nanosleep(&t, &left) != 0, errno == EINTR { t = left }
}

extension NetnsRig.Process {
    /// Waits until the process has logged `text` (its standard error): for
    /// what a process says once it happens, not for a daemon's readiness,
    /// which sixgated reports on its notify socket (`startNotifying`).
    public func waitForLog(_ text: String, deadline: Duration = .seconds(10)) throws {
        try waitUntil("\"\(text)\" in \(stderrPath):\n\(errors)", deadline: deadline) { errors.contains(text) }
    }

    /// Still running (not exited, not a zombie waiting to be reaped).
    public var isRunning: Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(close, offsetBy: 2)] != "Z"
    }
}

/// A Unix datagram socket standing in for systemd's $NOTIFY_SOCKET: what a
/// daemon started with NOTIFY_SOCKET naming it reports (READY=1, STATUS=,
/// RELOADING=1, WATCHDOG=1), one message per datagram.
public final class NotifySocket {
    public let path: String
    let fd: Int32
    /// Every message received so far, oldest first.
    public private(set) var messages: [String] = []

    public init(path: String) throws {
        self.path = path
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        guard path.utf8.count < MemoryLayout.size(ofValue: address.sun_path) else { throw CannotBind(path: path, code: ENAMETOOLONG) }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard fd >= 0, rc == 0 else { throw CannotBind(path: path, code: errno) }
    }

    public struct CannotBind: Error, CustomStringConvertible {
        public let path: String
        public let code: Int32
        public var description: String { "cannot bind the notify socket \(path): \(String(cString: strerror(code)))" }
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// The messages that arrive within `timeout` (waiting on the socket, not
    /// polling), until one contains `until`.
    public func receive(until: String, timeout: Duration) -> [String] {
        var got: [String] = []
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !got.contains(where: { $0.contains(until) }) {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { break }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ms = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            guard poll(&p, 1, ms) > 0 else { continue }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0 { got.append(String(decoding: buffer[0..<n], as: UTF8.self)) }
        }
        messages += got
        return got
    }

    /// Reads what has arrived, without waiting.
    public func drain() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            guard n > 0 else { return }
            messages.append(String(decoding: buffer[0..<n], as: UTF8.self))
        }
    }

    /// How many messages so far hold `text`.
    public func count(_ text: String) -> Int {
        drain()
        return messages.filter { $0.contains(text) }.count
    }

    /// How often the daemon has reported READY=1: once per start, and once
    /// per restart (a reload re-executes it, the same process).
    public var readies: Int { count("READY=1") }

    /// Waits until `count` messages hold `text`, or the deadline; gives up
    /// early when `process` has exited. Returns how many do.
    @discardableResult
    public func wait(for text: String, count wanted: Int, deadline: Duration, process: NetnsRig.Process? = nil) -> Int {
        let end = ContinuousClock.now + deadline
        while count(text) < wanted, ContinuousClock.now < end, process?.isRunning ?? true {
            // Woken by the next message; every 100 ms to see whether the process still runs.
            _ = receive(until: text, timeout: min(.milliseconds(100), end - ContinuousClock.now))
        }
        return count(text)
    }
}

extension NetnsRig {
    /// Starts `argv` in `host` as systemd starts a Type=notify service, with
    /// NOTIFY_SOCKET naming a socket this rig owns, and returns once it has
    /// reported READY=1; throws, with its log, when it does not within
    /// `readyWithin` or exits first. Words before the program (`setpriv`,
    /// `env`) pass the variable on.
    public func startNotifying(_ host: String, _ argv: [String], name: String, readyWithin: Duration = .seconds(15)) throws -> (Process, NotifySocket) {
        let notify = try NotifySocket(path: "\(scratch)/\(name).notify")
        let p = try start(host, argv, name: name, environment: ["NOTIFY_SOCKET": notify.path])
        guard notify.wait(for: "READY=1", count: 1, deadline: readyWithin, process: p) == 1 else {
            throw NotReady(command: argv, deadline: readyWithin, exited: !p.isRunning, messages: notify.messages, log: p.errors)
        }
        return (p, notify)
    }

    public struct NotReady: Error, CustomStringConvertible {
        public let command: [String]
        public let deadline: Duration
        public let exited: Bool
        public let messages: [String]
        public let log: String
        public var description: String {
            "`\(command.joined(separator: " "))` " + (exited ? "exited" : "did not report READY=1 within \(deadline)")
                + "; it notified \(messages)\n--- its log\n\(log)"
        }
    }
}
