import Common
import Configuration
import Foundation
import Glibc
import Packet
import Synchronization
import Translator

/// What sixgatectl asks sixgated over the control socket, named for what the
/// daemon then does.
public enum ControlCommand: String, Codable, Sendable, CaseIterable {
    /// Its parts, their state and counters (`sixgatectl status`).
    case status
    /// Take the config file that `sixgatectl apply` has just made the kernel
    /// state equal, restarting the parts it changes.
    case takeConfig = "take-config"
    /// Stop every part cleanly and start it again with the config the daemon
    /// runs (`sixgatectl reload`).
    case restartParts = "restart-parts"
    /// Fail a part as if it had crashed, for tests of supervision.
    case injectFault = "inject-fault"
}

/// One request: one JSON object per line each way, one request per
/// connection. `protocolVersion` changes whenever a request or answer changes
/// meaning; the daemon refuses another version, naming both, rather than
/// misread it (an older sixgatectl left beside a newer daemon).
public struct ControlRequest: Codable, Sendable {
    public static let protocolVersion = 2

    public var protocolVersion: Int
    /// The sending sixgatectl's version, for the refusal's message.
    public var sender: String
    public var command: ControlCommand
    /// The part a command is about (`injectFault`).
    public var part: String?
    /// The config file a command is about (`takeConfig`), as an absolute path.
    public var config: String?

    public init(_ command: ControlCommand, part: String? = nil, config: String? = nil) {
        protocolVersion = Self.protocolVersion
        sender = SixgateVersion.string
        self.command = command
        self.part = part
        self.config = config
    }

    /// A request the daemon cannot take, and what to say instead.
    public enum Refusal: Error, CustomStringConvertible {
        case notJSON
        case version(sender: String, protocolVersion: Int?)
        case unknownCommand(String)

        public var description: String {
            switch self {
            case .notJSON:
                "a request is one JSON object on one line"
            case .version(let sender, let theirs):
                "\(sender) speaks control protocol \(theirs ?? 1), this sixgated (\(SixgateVersion.string)) speaks "
                    + "\(ControlRequest.protocolVersion): use the sixgatectl installed with it"
            case .unknownCommand(let command):
                "unknown command \(command)"
            }
        }
    }

    /// Reads one request line, checking its protocol version before anything
    /// else: an older request may not even decode.
    public static func decode(_ line: Data) -> Result<ControlRequest, Refusal> {
        struct Envelope: Decodable {
            var protocolVersion: Int?
            var sender: String?
            var command: String?
        }
        guard let envelope = try? JSONDecoder().decode(Envelope.self, from: line) else { return .failure(.notJSON) }
        guard envelope.protocolVersion == protocolVersion else {
            return .failure(.version(sender: "sixgatectl " + (envelope.sender ?? "(an older version)"), protocolVersion: envelope.protocolVersion))
        }
        guard let request = try? JSONDecoder().decode(ControlRequest.self, from: line) else { return .failure(.unknownCommand(envelope.command ?? "")) }
        return .success(request)
    }
}

/// The daemon's answer to `status`.
public struct DaemonStatus: Codable, Sendable, Equatable {
    public var version: String
    public var config: String
    public var prefix: String
    /// Seconds since the daemon started.
    public var uptime: Int
    public var parts: [PartStatus]
    /// When the last `sixgatectl apply` reached the daemon, and what it did.
    public var lastApply: String?
    /// A renumbering under way: the older prefixes still translated, and
    /// the older pools whose hosts keep their addresses. Optional, so that a
    /// newer sixgatectl reads the status of a daemon from before them.
    public var retiring: [Retiring<String>]?
    public var retiringPools: [Retiring<String>]?

    public init(version: String, config: String, prefix: String, uptime: Int, parts: [PartStatus], lastApply: String? = nil,
                retiring: [Retiring<String>]? = nil, retiringPools: [Retiring<String>]? = nil) {
        self.version = version
        self.config = config
        self.prefix = prefix
        self.uptime = uptime
        self.parts = parts
        self.lastApply = lastApply
        self.retiring = retiring
        self.retiringPools = retiringPools
    }
}

/// Where a part is in its life. In JSON, one string ("starting", "serving",
/// "failed: why"), as scripts read it.
public enum PartState: Sendable, Equatable, Codable, CustomStringConvertible {
    case starting
    case serving
    case failed(String)

    public var description: String {
        switch self {
        case .starting: "starting"
        case .serving: "serving"
        case .failed(let why): "failed: \(why)"
        }
    }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        switch text {
        case "starting": self = .starting
        case "serving": self = .serving
        default: self = .failed(text.hasPrefix("failed: ") ? String(text.dropFirst(8)) : text)
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

public struct PartStatus: Codable, Sendable, Equatable {
    public var name: String
    public var state: PartState
    /// Lines that say what the part does, e.g. which datapath and why.
    public var detail: [String]
    public var counters: [String: Int]
    /// The part's own process under `sixgated run`, while one runs.
    public var pid: Int32?

    public init(name: String, state: PartState, detail: [String] = [], counters: [String: Int] = [:], pid: Int32? = nil) {
        self.name = name
        self.state = state
        self.detail = detail
        self.counters = counters
        self.pid = pid
    }

    /// A part's counters, from their names and values.
    public static func counters(_ fields: [(String, Int)]) -> [String: Int] {
        Dictionary(fields, uniquingKeysWith: { $1 })
    }
}

public struct ControlError: Error, CustomStringConvertible {
    public let path: String
    public let what: String
    /// The errno of a failed connect: ECONNREFUSED means nobody listens (a
    /// socket file left by a daemon that died), not a daemon that is stuck.
    public let code: Int32

    public var description: String { "control socket \(path): \(what)" }

    public init(path: String, what: String, code: Int32 = 0) {
        self.path = path
        self.what = what
        self.code = code
    }
}

/// The daemon's end: a root-only Unix socket, served by one thread (requests
/// are rare and small). `answer` maps a request to the JSON line sent back.
public final class ControlServer: Sendable {
    public let path: String
    private let fd: Int32

    /// Binds `path`. A socket file left by a dead daemon is replaced; one that
    /// a live daemon answers on is not (the second daemon fails instead).
    public init(path: String) throws(ControlError) {
        self.path = path
        if (try? ControlClient.connect(path)).map({ close($0) }) != nil {
            throw ControlError(path: path, what: "another sixgated answers on it")
        }
        unlink(path)
        let directory = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ControlError(path: path, what: String(cString: strerror(errno))) }
        // Root-only from the moment it exists: the umask covers bind, chmod the rest.
        let old = umask(0o177)
        let bound = ControlClient.withAddress(path) { bind(fd, $0, $1) }
        umask(old)
        guard bound == 0, chmod(path, 0o600) == 0, listen(fd, 16) == 0 else {
            let e = errno
            close(fd)
            throw ControlError(path: path, what: String(cString: strerror(e)))
        }
        self.fd = fd
    }

    /// Serves requests on a thread of its own until the process ends.
    public func start(answer: @escaping @Sendable (ControlRequest) -> Data) {
        acceptConnections(on: fd, thread: "sixgate-control") { c in
            let reply: Data
            switch ControlClient.readLine(c).map(ControlRequest.decode) ?? .failure(.notJSON) {
            case .success(let request):
                reply = answer(request)
            case .failure(let refusal):
                reply = (try? JSONEncoder().encode(["error": refusal.description])) ?? Data()
            }
            ControlClient.writeAll(c, reply + Data("\n".utf8))
        }
    }

    /// Removes the socket file (at a clean stop).
    public func remove() {
        // Wakes the accepting thread, which then ends.
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        unlink(path)
    }
}

/// Accepts connections on the listening `fd` on a thread of its own and
/// hands each to `handle` on a thread of its own, so that a client that is
/// slow, or stuck, never delays another. Each connection has `deadline` for
/// everything (not per read): then it is shut down, which ends `handle`'s
/// reads and writes, and closed. Beyond `limit` connections at once, new
/// ones are closed at once. Ends when `fd` is shut down.
public func acceptConnections(on fd: Int32, thread name: String, deadline: Duration = .seconds(5), limit: Int = 512,
                              _ handle: @escaping @Sendable (Int32) -> Void) {
    let active = Mutex(0)
    let thread = Thread {
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            // Not inherited by a daemon that re-executes itself (reload).
            _ = fcntl(c, F_SETFD, FD_CLOEXEC)
            guard active.withLock({ n in n < limit ? { n += 1; return true }() : false }) else {
                close(c)
                continue
            }
            let connection = Connection(c)
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(deadline.components.seconds * 1000))) { connection.cutOff() }
            let worker = Thread {
                handle(c)
                connection.close()
                active.withLock { $0 -= 1 }
            }
            worker.name = name
            worker.start()
        }
    }
    thread.name = name
    thread.start()
}

/// An accepted connection that its deadline may cut off while its handler
/// runs: the descriptor is shut down, never closed, from outside, so that a
/// number reused by another open is never touched.
private final class Connection: Sendable {
    private let fd: Int32
    private let open = Mutex(true)

    init(_ fd: Int32) { self.fd = fd }

    func cutOff() { open.withLock { if $0 { shutdown(fd, Int32(SHUT_RDWR)) } } }

    func close() {
        open.withLock {
            $0 = false
            Glibc.close(fd)
        }
    }
}

/// sixgatectl's end.
public enum ControlClient {
    /// Sends `request` to the daemon at `path` and returns its one-line answer.
    static func ask(_ path: String, _ request: ControlRequest, timeout: Int = 10) throws(ControlError) -> Data {
        let fd = try connect(path)
        defer { close(fd) }
        var t = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &t, socklen_t(MemoryLayout<timeval>.size))
        guard let body = try? JSONEncoder().encode(request) else { throw ControlError(path: path, what: "cannot encode the request") }
        writeAll(fd, body + Data("\n".utf8))
        guard let line = readLine(fd) else { throw ControlError(path: path, what: "no answer within \(timeout) s") }
        return line
    }

    /// `ask`, with the answer decoded as `T`. An answer that is only
    /// `{"error": …}` (what the daemon refused, and why) throws that.
    public static func ask<T: Decodable>(_ path: String, _ request: ControlRequest, as type: T.Type, timeout: Int = 10) throws(ControlError) -> T {
        let data = try ask(path, request, timeout: timeout)
        if let refused = try? JSONDecoder().decode([String: String].self, from: data), let error = refused["error"] {
            throw ControlError(path: path, what: error)
        }
        guard let value = try? JSONDecoder().decode(T.self, from: data) else { throw ControlError(path: path, what: "an answer that is not a \(T.self)") }
        return value
    }

    static func connect(_ path: String) throws(ControlError) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ControlError(path: path, what: String(cString: strerror(errno))) }
        guard withAddress(path, { Glibc.connect(fd, $0, $1) }) == 0 else {
            let e = errno
            close(fd)
            throw ControlError(path: path, what: "cannot reach sixgated (\(String(cString: strerror(e))))", code: e)
        }
        return fd
    }

    static func withAddress(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            errno = ENAMETOOLONG
            return -1
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
    }

    /// Bytes up to the first newline (at most 1 MiB); nil on timeout or EOF before it.
    static func readLine(_ fd: Int32) -> Data? {
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while data.count < 1 << 20 {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return nil }
            if let end = chunk[0..<n].firstIndex(of: UInt8(ascii: "\n")) {
                data.append(contentsOf: chunk[0..<end])
                return data
            }
            data.append(contentsOf: chunk[0..<n])
        }
        return nil
    }

    static func writeAll(_ fd: Int32, _ data: Data) {
        data.withUnsafeBytes { p in
            guard let base = p.baseAddress else { return }
            var sent = 0
            while sent < p.count {
                let n = send(fd, base + sent, p.count - sent, Int32(MSG_NOSIGNAL))
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { return }
                sent += n
            }
        }
    }
}

/// The daemon's answer to `reload`: what the new config changes for each
/// part, and whether the daemon restarts itself with it.
public struct ReloadAnswer: Codable, Sendable, Equatable {
    /// Part name to "changed", "unchanged", "started" or "stopped".
    public var parts: [String: String]
    public var restarting: Bool
    public var error: String?

    public init(parts: [String: String], restarting: Bool, error: String? = nil) {
        self.parts = parts
        self.restarting = restarting
        self.error = error
    }

    /// "translator unchanged, dns64 changed, 6bed4 unchanged".
    public var summary: String {
        // The multiplexer only where a config has one.
        (["translator", "dns64", "6bed4"] + (parts["mux"].map { _ in ["mux"] } ?? [])).map { "\($0) \(parts[$0] ?? "unchanged")" }.joined(separator: ", ")
    }

    /// What going from `old` to `new` means for each part: a part changes
    /// when anything it is built from changes (the prefix, its own section,
    /// and for DNS64 the networks its default access list comes from).
    public static func changes(from old: Config, to new: Config) -> [String: String] {
        func verdict(_ wasOn: Bool, _ isOn: Bool, _ same: Bool) -> String {
            switch (wasOn, isOn) {
            case (false, false): "unchanged"
            case (false, true): "started"
            case (true, false): "stopped"
            case (true, true): same ? "unchanged" : "changed"
            }
        }
        let prefix = old.prefix == new.prefix
        return [
            "translator": verdict(old.nat64.enabled, new.nat64.enabled, prefix && old.nat64 == new.nat64 && old.controller.stateDir == new.controller.stateDir),
            "dns64": verdict(old.dns64.enabled, new.dns64.enabled,
                             prefix && old.dns64 == new.dns64 && old.gateway.clients == new.gateway.clients && old.sixbedfour == new.sixbedfour
                                 && old.localNames == new.localNames),
            "6bed4": verdict(old.sixbedfour.enabled, new.sixbedfour.enabled, prefix && old.sixbedfour == new.sixbedfour),
        ].merging(old.mux.isEmpty && new.mux.isEmpty ? [:] : [
            "mux": verdict(!old.mux.isEmpty, !new.mux.isEmpty, prefix && old.mux == new.mux && old.multiplexer == new.multiplexer),
        ]) { a, _ in a }
    }
}
