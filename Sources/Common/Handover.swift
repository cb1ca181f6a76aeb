import Glibc
import Synchronization

/// Descriptors handed from a daemon to the program it executes in its
/// place (a reload). A TUN queue or a UDP socket that stays open across the
/// exec keeps its device attached and its packets queued in the kernel, so
/// nothing arriving while the new program starts is lost; closed, the
/// device would drop them (no reader) and the socket answer with port
/// unreachable.
///
/// The old program `arm`s it before stopping its parts; their queues and
/// sockets are then `shelve`d instead of closed, and `environment()` marks
/// them to survive the exec and names them in SIXGATE_FDS. The new program
/// `take`s them back by the same key; what it does not take is closed by
/// `closeUnclaimed`.
public enum Handover {
    public static let variable = "SIXGATE_FDS"

    private struct State {
        var armed = false
        var inherited: [String: [Int32]]
        var shelved: [(String, Int32)] = []
    }

    private static let state = Mutex(State(inherited: parse(getenv(variable).map { String(cString: $0) } ?? "")))

    /// "key=fd,key=fd": keys name what the descriptor is ("tun:sg-nat64",
    /// "udp:192.0.2.1:25790"); one key may come several times (the queues of
    /// one device).
    static func parse(_ s: String) -> [String: [Int32]] {
        var out: [String: [Int32]] = [:]
        for item in s.split(separator: ",") {
            guard let eq = item.lastIndex(of: "="), let fd = Int32(item[item.index(after: eq)...]), fd > 2 else { continue }
            out[String(item[..<eq]), default: []].append(fd)
        }
        return out
    }

    /// What the previous program handed over and nobody has taken yet: how
    /// many descriptors per key.
    public static var inherited: [String: Int] { state.withLock { $0.inherited.mapValues(\.count).filter { $0.value > 0 } } }

    /// A descriptor the previous program handed over for `key`, now close-on-exec again.
    static func take(_ key: String) -> Int32? {
        let fd = state.withLock { s -> Int32? in
            guard var fds = s.inherited[key], !fds.isEmpty else { return nil }
            let fd = fds.removeFirst()
            s.inherited[key] = fds
            return fd
        }
        if let fd { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return fd
    }

    /// A descriptor handed over for `key` that still `fits` it (the device
    /// or address the key names); the ones that do not are closed.
    public static func take(_ key: String, where fits: (Int32) -> Bool) -> Int32? {
        while let fd = take(key) {
            if fits(fd) { return fd }
            close(fd)
        }
        return nil
    }

    /// Keeps `fd` for the next program when a handover is armed, else closes it.
    public static func release(_ key: String, _ fd: Int32) {
        if !shelve(key, fd) { close(fd) }
    }

    /// Closes what was handed over and not taken (a device the new config
    /// does not name, fewer queues); nothing once a handover is armed, for
    /// then the next program gets them.
    public static func closeUnclaimed() {
        let fds = state.withLock { s -> [Int32] in
            guard !s.armed else { return [] }
            defer { s.inherited = [:] }
            return s.inherited.values.flatMap { $0 }
        }
        for fd in fds { close(fd) }
    }

    /// From now on, `shelve` keeps descriptors for the exec.
    public static func arm() { state.withLock { $0.armed = true } }

    /// Whether this process is about to hand over to the next program.
    public static var isArmed: Bool { state.withLock { $0.armed } }

    /// Keeps `fd` for the next program when a handover is armed (true), else
    /// leaves it to the caller to close (false).
    static func shelve(_ key: String, _ fd: Int32) -> Bool {
        state.withLock { s in
            guard s.armed else { return false }
            s.shelved.append((key, fd))
            return true
        }
    }

    /// Just before the exec: the shelved descriptors, open across it, as the
    /// value of SIXGATE_FDS.
    public static func environment() -> String {
        let passed = passing()
        for (_, fd) in passed { _ = fcntl(fd, F_SETFD, 0) }
        return passed.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
    }

    /// What goes to the next program: the shelved descriptors, and what this
    /// program inherited and has not taken yet. Left open and unnamed, a TUN
    /// queue would stay attached with nobody reading it, a black hole for
    /// the flows the kernel steers to it.
    public static func passing() -> [(key: String, fd: Int32)] {
        state.withLock { s in
            defer {
                s.shelved = []
                s.inherited = [:]
            }
            return (s.shelved + s.inherited.flatMap { key, fds in fds.map { (key, $0) } }).map { (key: $0.0, fd: $0.1) }
        }
    }

    /// Takes every inherited descriptor whose key starts with `prefix`, with
    /// the prefix removed from the key: `sixgated run` hands over for each
    /// part process under "PART/".
    public static func take(prefixed prefix: String) -> [(key: String, fd: Int32)] {
        state.withLock { s in
            let mine = s.inherited.filter { $0.key.hasPrefix(prefix) }
            for key in mine.keys { s.inherited[key] = nil }
            return mine.flatMap { key, fds in fds.map { (key: String(key.dropFirst(prefix.count)), fd: $0) } }
        }
    }
}
