import Netlink
import Foundation
import Glibc

/// One apply at a time per gateway: a lock file in its state directory
/// (which is per network namespace), held from observing the system to
/// saving the prefix history, so that two applies never interleave. `plan`
/// and `audit` hold it shared: they never see an apply half-way.
public final class StateLock {
    public enum Mode: Sendable { case exclusive, shared }

    private let fd: Int32
    public let path: String

    public static func file(in stateDir: String) -> String { (stateDir as NSString).appendingPathComponent("apply.lock") }

    /// Takes the lock, waiting up to `wait` for another holder to let go
    /// (zero: not at all).
    public init(stateDir: String, _ mode: Mode, wait: Duration) throws {
        path = Self.file(in: stateDir)
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemError("open \(path)") }
        let deadline = ContinuousClock.now + wait
        while flock(fd, (mode == .exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                let e = errno
                close(fd)
                throw SystemError("flock \(path)", code: e)
            }
            guard ContinuousClock.now < deadline else {
                let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
                close(fd)
                throw StateLockBusy(path: path, holder: holder, waited: wait)
            }
            usleep(20_000)
        }
        if mode == .exclusive {
            // Who holds it, for the message of the one that waits.
            let text = "sixgatectl apply, pid \(getpid())\n"
            ftruncate(fd, 0)
            _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
        }
    }

    deinit { close(fd) }
}

public struct StateLockBusy: Error, CustomStringConvertible {
    public let path: String
    public let holder: String
    public let waited: Duration

    public var description: String {
        let who = holder.isEmpty ? "another apply" : holder
        return waited == .zero
            ? "\(who) holds \(path): it is changing this gateway now; nothing was changed (without --no-wait, this waits for it)"
            : "\(who) still holds \(path) after \(waited.humanReadable): nothing was changed; try again once it is done"
    }
}
