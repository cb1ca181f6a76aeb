import Foundation
import Packet
import Synchronization

/// Stateful NAT64's dynamic pool: each IPv6 host that talks to IPv4 gets the
/// next free pool address, kept while it is used and released after an idle
/// timeout. The mappings are saved to a state file, written atomically, so a
/// restart keeps every host on its address and its connections alive.
///
/// Shared by all queue readers: a lookup takes an uncontended lock and
/// allocates nothing; only a new host costs an insertion.
///
/// When the pool was changed, the hosts that hold an address of the earlier
/// range keep it (their connections live on, masqueraded as before) until
/// that range's deadline; new hosts get addresses of the new range only.
public final class DynamicPool: Sendable {
    public struct Mapping: Sendable, Equatable {
        public let ipv6: IPv6Address
        public let ipv4: IPv4Address
        /// Seconds since 1970, so that the idle time survives a restart.
        public var lastUsed: UInt64
    }

    public let range: IPv4Prefix
    /// Earlier ranges, whose mappings end at their deadline.
    public let retiring: [Retiring<IPv4Prefix>]
    public let idleTimeout: UInt64
    public let stateFile: String?

    private struct State {
        var by6: [IPv6Address: Int] = [:]
        var by4: [IPv4Address: Int] = [:]
        var mappings: [Mapping?] = []
        var free: [Int] = []
        var next: UInt32 = 0
        var dirty = false
        /// The second the pool was last found full. Until a mapping is
        /// released or the second is over, new hosts are refused without
        /// walking the range again: a flood of new sources costs one walk a
        /// second, not one per packet.
        var fullAt: UInt64?
        /// How many addresses each client (its prefix) holds.
        var clients: [IPv6Address: Int] = [:]
    }

    private let state = Mutex(State())
    private let releases = Atomic<UInt64>(0)

    /// A mapping made or released: what a datapath that keeps its own copy
    /// (the kernel's maps) follows.
    public enum Change: Sendable {
        case added(Mapping)
        case released(Mapping)
    }

    private let observer = Mutex<(@Sendable (Change) -> Void)?>(nil)

    /// Calls `body` with every mapping there is, then with every change,
    /// until `observe(nil)`. Called under the pool's lock: it must be quick.
    public func observe(_ body: (@Sendable (Change) -> Void)?) {
        state.withLock { s in
            observer.withLock { $0 = body }
            for m in s.mappings { if let m { body?(.added(m)) } }
        }
    }

    private func notify(_ change: Change) { observer.withLock { $0?(change) } }

    /// Changes whenever a mapping is released, so that engines can tell a
    /// cached mapping is still the pool's without taking its lock.
    public var generation: UInt64 { releases.load(ordering: .acquiring) }
    private let reserved: Set<IPv4Address>

    /// At most `addresses` for one client, a client being the IPv6 prefix of
    /// `length` its hosts share: one that changes its source address at will
    /// (every address of its /64 is its own) cannot take the pool from the
    /// others.
    public struct ClientLimit: Sendable, Equatable {
        public var addresses: Int
        public var length: Int

        public init(addresses: Int, length: Int) {
            self.addresses = addresses
            self.length = length
        }
    }

    public let clientLimit: ClientLimit?

    /// `reserved` are addresses of the range never handed out (the
    /// translator's own address, for instance).
    public init(range: IPv4Prefix, idleTimeout: UInt64, stateFile: String?, reserved: Set<IPv4Address> = [], retiring: [Retiring<IPv4Prefix>] = [],
                clientLimit: ClientLimit? = nil) {
        self.range = range
        self.retiring = retiring
        self.idleTimeout = idleTimeout
        self.stateFile = stateFile
        self.reserved = reserved
        self.clientLimit = clientLimit
    }

    /// The client `host` belongs to, for the limit.
    private func client(_ host: IPv6Address) -> IPv6Address? {
        clientLimit.map { IPv6Prefix(address: host, length: $0.length).address }
    }

    public var count: Int { state.withLock { $0.by6.count } }

    /// Whether `a` is an address of the pool: of its range, or of an earlier
    /// range whose mappings are still kept.
    public func owns(_ a: IPv4Address, now: UInt64) -> Bool {
        range.contains(a) || retiring.contains { $0.value.contains(a) && $0.isActive(at: now) }
    }


    /// The pool address of `host`, allocating one if it has none; nil when the
    /// pool is exhausted or the host's client holds its limit.
    public func address(for host: IPv6Address, now: UInt64) -> IPv4Address? { try? allocate(for: host, now: now).get() }

    /// The pool address of `host`, allocating one if it has none, or why
    /// there is none.
    public func allocate(for host: IPv6Address, now: UInt64) -> Result<IPv4Address, DropReason> {
        state.withLock { s in
            if let i = s.by6[host], var m = s.mappings[i] {
                if m.lastUsed != now {
                    // The state file needs the time of use too, but not every second.
                    if now &- m.lastUsed >= 60 { s.dirty = true }
                    m.lastUsed = now
                    s.mappings[i] = m
                }
                return .success(m.ipv4)
            }
            let client = client(host)
            if let client, let limit = clientLimit, s.clients[client, default: 0] >= limit.addresses { return .failure(.poolClientLimit) }
            guard let a = nextFree(&s, now: now) else { return .failure(.poolExhausted) }
            if let client { s.clients[client, default: 0] += 1 }
            let m = Mapping(ipv6: host, ipv4: a, lastUsed: now)
            let i: Int
            if let slot = s.free.popLast() {
                i = slot
                s.mappings[i] = m
            } else {
                i = s.mappings.count
                s.mappings.append(m)
            }
            s.by6[host] = i
            s.by4[a] = i
            s.dirty = true
            notify(.added(m))
            return .success(a)
        }
    }

    /// The pool address `host` holds, without allocating one.
    public func existingAddress(for host: IPv6Address) -> IPv4Address? {
        state.withLock { s in s.by6[host].flatMap { s.mappings[$0]?.ipv4 } }
    }

    /// The host that holds pool address `a`, for traffic coming back.
    public func host(for a: IPv4Address, now: UInt64) -> IPv6Address? {
        state.withLock { s in
            guard let i = s.by4[a], var m = s.mappings[i] else { return nil }
            if m.lastUsed != now {
                if now &- m.lastUsed >= 60 { s.dirty = true }
                m.lastUsed = now
                s.mappings[i] = m
            }
            return m.ipv6
        }
    }

    /// Releases mappings idle longer than the timeout, and those of an
    /// earlier range once its deadline has passed.
    public func expire(now: UInt64) {
        state.withLock { s in
            for (i, m) in s.mappings.enumerated() {
                guard let m, isIdle(m, now: now) || (!retiring.isEmpty && !owns(m.ipv4, now: now)) else { continue }
                release(&s, at: i, m)
            }
        }
    }

    /// Without overflow, whatever a state file says.
    private func isIdle(_ m: Mapping, now: UInt64) -> Bool { now > m.lastUsed && now - m.lastUsed > idleTimeout }

    private func release(_ s: inout State, at i: Int, _ m: Mapping) {
        releases.add(1, ordering: .releasing)
        s.by6[m.ipv6] = nil
        s.by4[m.ipv4] = nil
        s.mappings[i] = nil
        s.free.append(i)
        s.dirty = true
        s.fullAt = nil
        if let c = client(m.ipv6) { s.clients[c] = s.clients[c].flatMap { $0 > 1 ? $0 - 1 : nil } }
        notify(.released(m))
    }

    /// Each host was used when its value says (by a datapath that
    /// translates without asking the pool), if that is later than the pool
    /// knows.
    public func touch(_ uses: [IPv6Address: UInt64]) {
        state.withLock { s in
            for (host, when) in uses {
                guard let i = s.by6[host], var m = s.mappings[i], when > m.lastUsed else { continue }
                if when &- m.lastUsed >= 60 { s.dirty = true }
                m.lastUsed = when
                s.mappings[i] = m
            }
        }
    }

    /// Walks the range from where the last allocation stopped, so a released
    /// address is reused as late as possible. Expires idle mappings once when
    /// nothing is free.
    private func nextFree(_ s: inout State, now: UInt64) -> IPv4Address? {
        if s.fullAt == now { return nil }
        let size = range.size
        for attempt in 0..<2 {
            for _ in 0..<size {
                let a = IPv4Address(rawValue: range.address.rawValue &+ s.next)
                s.next = UInt32((UInt64(s.next) + 1) % size)
                if s.by4[a] == nil, !reserved.contains(a) { return a }
            }
            if attempt == 0 {
                for (i, m) in s.mappings.enumerated() {
                    if let m, isIdle(m, now: now) { release(&s, at: i, m) }
                }
            }
        }
        s.fullAt = now
        return nil
    }

    public var mappings: [Mapping] { state.withLock { $0.mappings.compactMap { $0 } } }

    // MARK: - State file

    /// Writes the mappings when they changed (`StateFile.replace`).
    public func save() throws {
        guard let stateFile else { return }
        // One save at a time: the housekeeping timer and a signal may both ask.
        try saving.withLock { _ in try write(to: stateFile) }
    }

    private let saving = Mutex(())

    private func write(to stateFile: String) throws {
        let (text, dirty): (String, Bool) = state.withLock { s in
            let lines = s.mappings.compactMap { $0 }.map { "\($0.ipv6) \($0.ipv4) \($0.lastUsed)\n" }
            let d = s.dirty
            s.dirty = false
            return ("# sixgate dynamic pool: IPv6 host, IPv4 address, last used (seconds since 1970)\n" + lines.joined(), d)
        }
        guard dirty else { return }
        do {
            try StateFile.replace(stateFile, with: text)
        } catch {
            state.withLock { $0.dirty = true }
            throw error
        }
    }

    /// Loads saved mappings that still fit the range, or an earlier range
    /// still kept; lines that do not parse or no longer fit are skipped.
    public func load(now: UInt64) {
        guard let stateFile, let text = try? String(contentsOfFile: stateFile, encoding: .utf8) else { return }
        state.withLock { s in
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                let f = line.split(separator: " ")
                guard f.count == 3, let v6 = IPv6Address(f[0]), let v4 = IPv4Address(f[1]), let t = UInt64(f[2]),
                      owns(v4, now: now), !reserved.contains(v4), s.by6[v6] == nil, s.by4[v4] == nil,
                      !isIdle(Mapping(ipv6: v6, ipv4: v4, lastUsed: t), now: now) else { continue }
                s.by6[v6] = s.mappings.count
                s.by4[v4] = s.mappings.count
                s.mappings.append(Mapping(ipv6: v6, ipv4: v4, lastUsed: t))
                // Mappings made before a limit was set stay; they count against it.
                if let c = client(v6) { s.clients[c, default: 0] += 1 }
            }
        }
    }
}

/// The translator's state files: written to a temporary file, on disk
/// before it is renamed over the old one, so that a crash leaves either the
/// old file or the new one, never neither.
public enum StateFile {
    /// Writes `text` to a new file beside `path` (mode 0600, a name no one
    /// else uses), flushes it, renames it over `path` and flushes the
    /// directory: after a crash the file is the old one or the new one,
    /// whole.
    public static func replace(_ path: String, with text: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) }
        var template = Array((path + ".XXXXXX").utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { throw CocoaError(.fileWriteNoPermission) }
        let temp = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == bytes.count, synced == 0, rename(temp, path) == 0 else {
            unlink(temp)
            throw CocoaError(.fileWriteUnknown)
        }
        let d = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY)
        if d >= 0 {
            fsync(d)
            close(d)
        }
    }
}
