import Foundation
import Glibc

/// What a finished command left behind.
public struct CommandResult: Sendable, CustomStringConvertible {
    public let command: [String]
    public let status: Int32
    public let stdout: String
    public let stderr: String

    public var succeeded: Bool { status == 0 }
    public var description: String {
        "`\(command.joined(separator: " "))` exited \(status)\n--- stdout\n\(stdout)--- stderr\n\(stderr)"
    }
}

public enum RigError: Error, CustomStringConvertible {
    case notRoot
    case missingTool(String)
    case spawnFailed([String], Int32)
    case timedOut([String], Duration)
    case commandFailed(CommandResult)
    case sharedMounts

    public var description: String {
        switch self {
        case .notRoot:
            "integration tests need root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to create network namespaces: run `make test` as root"
        case .missingTool(let t):
            "integration tests need `\(t)`, which is not installed: run `make test`, which installs it, or apt-get install it"
        case .spawnFailed(let c, let e): "could not start `\(c.joined(separator: " "))`: \(String(cString: strerror(e)))"
        case .timedOut(let c, let d): "`\(c.joined(separator: " "))` did not finish within \(d)"
        case .commandFailed(let r): "command failed: \(r)"
        case .sharedMounts:
            "integration tests mount a bpffs of their own, which must not reach the machine's mounts: run them in a private mount namespace, as `make test` does (`unshare --mount --propagation private swift test`)"
        }
    }
}

/// posix_spawn with stdout and stderr sent to files, so that a chatty child can
/// never block on a full pipe, and with the PID ours to wait for and to kill.
public enum Spawn {
    /// `environment` is added to the runner's own (a name in both takes its value from here).
    public static func start(_ argv: [String], stdout: String, stderr: String, environment: [String: String] = [:]) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // Its own process group, so a Ctrl-C at the terminal reaches only the test
        // runner, which then tears down in order.
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attr, 0)
        let cargs = argv.map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) } }
        var pid: pid_t = 0
        let rc: Int32
        if environment.isEmpty {
            rc = posix_spawnp(&pid, argv[0], &actions, &attr, cargs, environ)
        } else {
            var merged = ProcessInfo.processInfo.environment
            merged.merge(environment) { _, new in new }
            let cenv = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
            defer { cenv.forEach { free($0) } }
            rc = posix_spawnp(&pid, argv[0], &actions, &attr, cargs, cenv)
        }
        guard rc == 0 else { throw RigError.spawnFailed(argv, rc) }
        return pid
    }

    /// Waits for `pid`; nil when it is still running at the deadline.
    public static func wait(_ pid: pid_t, timeout: Duration) -> Int32? {
        var code: Int32?
        try? waitUntil("process \(pid) to exit", deadline: timeout, poll: .milliseconds(2)) {
            var status: Int32 = 0
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { code = exitCode(status) } else if r < 0, errno == ECHILD { code = -1 }
            return code != nil || r < 0
        }
        return code
    }

    /// SIGTERM, a grace period, then SIGKILL; always reaped.
    public static func stop(_ pid: pid_t, grace: Duration = .seconds(2)) {
        guard kill(pid, SIGTERM) == 0 else { _ = wait(pid, timeout: .zero); return }
        if wait(pid, timeout: grace) == nil {
            kill(pid, SIGKILL)
            _ = wait(pid, timeout: .seconds(5))
        }
    }

    static func exitCode(_ status: Int32) -> Int32 {
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }

    public static func run(_ argv: [String], timeout: Duration, scratch: String) throws -> CommandResult {
        let out = scratch + "/cmd-\(UUID().uuidString).out", err = out + ".err"
        defer { unlink(out); unlink(err) }
        let pid = try start(argv, stdout: out, stderr: err)
        guard let status = wait(pid, timeout: timeout) else {
            kill(pid, SIGKILL)
            _ = wait(pid, timeout: .seconds(5))
            throw RigError.timedOut(argv, timeout)
        }
        return CommandResult(command: argv, status: status,
                             stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
                             stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }
}
