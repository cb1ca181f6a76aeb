import CNetlink
import Foundation
import Glibc

/// Why talking to the kernel failed, with the operation and errno, and what to do
/// about the common cases.
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    public let operation: String
    public let code: Int32

    public init(_ operation: String, code: Int32 = errno) {
        self.operation = operation
        self.code = code
    }

    public var description: String {
        let reason = String(cString: strerror(code))
        switch code {
        case EPERM, EACCES:
            return "\(operation): \(reason). This needs CAP_NET_ADMIN: run as root (or with that capability)"
        default:
            return "\(operation): \(reason)"
        }
    }
}

/// A named network namespace (`ip netns add NAME`, a file in /run/netns).
///
/// The kernel binds a socket to the namespace of the thread that creates it,
/// and /proc/sys/net to the namespace of the thread that opens it. So handles are
/// created inside `run`, which switches only the calling thread and switches it
/// back; the handles then keep working from any thread.
public enum NetworkNamespace {
    public static func path(_ name: String) -> String { "/run/netns/\(name)" }

    /// Runs `body` with the calling thread in namespace `name` (nil: stay put).
    public static func run<T, E: Error>(in name: String?, _ body: () throws(E) -> T) throws -> T {
        guard let name else { return try body() }
        guard !name.contains("/"), !name.isEmpty else { throw SystemError("network namespace \"\(name)\"", code: EINVAL) }
        let original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        guard original >= 0 else { throw SystemError("open /proc/thread-self/ns/net") }
        defer { close(original) }
        let target = open(path(name), O_RDONLY | O_CLOEXEC)
        guard target >= 0 else {
            let e = errno
            throw SystemError("network namespace \"\(name)\" (\(path(name)))", code: e)
        }
        defer { close(target) }
        guard sixgate_setns_net(target) == 0 else { throw SystemError("setns to \"\(name)\"") }
        defer {
            // Failing to return would leave this thread in the wrong namespace for
            // every later caller: better to stop than to touch the wrong network.
            if sixgate_setns_net(original) != 0 { fatalError("cannot return from network namespace \(name): \(String(cString: strerror(errno)))") }
        }
        return try body()
    }
}

extension NetworkNamespace {
    /// What names the namespace `name` (nil: the calling thread's) in state
    /// that outlives a boot: nil for the host's own (PID 1's), else its
    /// `ip netns` name (the same after a reboot recreates it), else
    /// "inode-N" for one that has no name.
    public static func stateKey(_ name: String?) throws -> String? {
        func inode(_ path: String) -> UInt64? {
            var st = stat()
            return stat(path, &st) == 0 ? UInt64(st.st_ino) : nil
        }
        let path = name.map(Self.path) ?? "/proc/thread-self/ns/net"
        guard let mine = inode(path) else { throw SystemError("stat \(path)") }
        // The host's: PID 1's, or (where /proc/1 is closed to us) the inode
        // Linux gives the initial namespace (PROC_NET_INIT_INO, since 6.x).
        if mine == inode("/proc/1/ns/net") || mine == 0xEFFF_FFF9 { return nil }
        if let name { return name }
        let named = (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []
        return named.sorted().first { inode(Self.path($0)) == mine } ?? "inode-\(mine)"
    }
}
