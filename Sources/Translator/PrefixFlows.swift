import Foundation
import Packet
import Synchronization

/// Which NAT64 prefix each flow uses while the prefix is being renumbered: a
/// flow that started on the retiring prefix must keep it until the deadline,
/// or its IPv6 end would see replies from an address it never talked to.
///
/// Shared by the engines of all queues and kept across datapath restarts, like
/// the pool. A fixed table allocated once: recording and looking up a flow
/// allocate nothing. It is consulted only during a transition: one lock per
/// packet, shared by the queues, costs some throughput then, for a few
/// minutes, and nothing otherwise. Open addressing with a
/// bounded window: when the window of a new flow is full, the flow seen least
/// recently gives way; a flow the table lost falls back to the engine's rule
/// for unknown flows.
public final class PrefixFlows: Sendable {
    /// A flow as seen from the IPv6 side: `local4` is the IPv4 form of the
    /// IPv6-side host (a pool or a mapped address), `remote4` the IPv4 peer.
    /// ICMP echoes use their identifier as `localPort`. A fragment key (the
    /// fragments after the first carry no ports) holds the IP identification
    /// in `localPort`, and `fragment` keeps it apart from port keys.
    public struct Key: Hashable, Sendable {
        public var local4: IPv4Address
        public var remote4: IPv4Address
        public var localPort: UInt16
        public var remotePort: UInt16
        public var proto: UInt8
        public var fragment: Bool

        public init(local4: IPv4Address, remote4: IPv4Address, localPort: UInt16, remotePort: UInt16, proto: UInt8, fragment: Bool = false) {
            self.local4 = local4
            self.remote4 = remote4
            self.localPort = localPort
            self.remotePort = remotePort
            self.proto = proto
            self.fragment = fragment
        }
    }

    private struct Slot {
        var key: Key
        var prefix: NAT64Prefix
        var lastSeen: UInt64
        var used: Bool
    }

    private struct State {
        var slots: [Slot]
        var count = 0
        /// A flow was added or changed its prefix since the last save (a
        /// flow only seen again is not worth a write).
        var changed = false
    }

    /// How many slots a key may occupy from its hash on: a lookup reads at
    /// most this many.
    static let window = 8

    public let capacity: Int
    private let mask: Int
    /// Makes the slot of a flow unpredictable from outside, so that crafted
    /// flows cannot all crowd into the windows of established ones.
    private let seed: UInt64
    private let state: Mutex<State>

    /// `capacity` is rounded up to a power of two.
    public init(capacity: Int = 65536) {
        var n = Self.window
        while n < capacity { n <<= 1 }
        self.capacity = n
        mask = n - 1
        seed = UInt64.random(in: 0...UInt64.max)
        let empty = Slot(key: Key(local4: IPv4Address(rawValue: 0), remote4: IPv4Address(rawValue: 0), localPort: 0, remotePort: 0, proto: 0),
                         prefix: .wellKnown, lastSeen: 0, used: false)
        state = Mutex(State(slots: [Slot](repeating: empty, count: n)))
    }

    public var count: Int { state.withLock { $0.count } }

    private func home(_ k: Key) -> Int {
        // A multiply-xorshift mix (splitmix64's finalizer) of the packed key.
        var h = (UInt64(k.local4.rawValue) << 32 | UInt64(k.remote4.rawValue)) ^ seed
        h ^= (UInt64(k.localPort) << 32 | UInt64(k.remotePort) << 16 | UInt64(k.proto) << 1 | (k.fragment ? 1 : 0)) &* 0x9E37_79B9_7F4A_7C15
        h = (h ^ h >> 30) &* 0xBF58_476D_1CE4_E5B9
        h = (h ^ h >> 27) &* 0x94D0_49BB_1331_11EB
        return Int(truncatingIfNeeded: h ^ h >> 31) & mask
    }

    /// The prefix recorded for `key`, if any.
    public func prefix(for key: Key) -> NAT64Prefix? {
        state.withLock { s in find(&s, key).map { s.slots[$0].prefix } }
    }

    /// The prefix `key` keeps: the recorded one when `keeps` still takes it,
    /// else `otherwise`. With `record`, the answer is recorded as seen `now`.
    func resolve(_ key: Key, now: UInt64, otherwise: NAT64Prefix, record: Bool = true, keeps: (NAT64Prefix) -> Bool) -> NAT64Prefix {
        state.withLock { s in
            if let i = find(&s, key) {
                let p = s.slots[i].prefix
                if keeps(p) {
                    if record { s.slots[i].lastSeen = now }
                    return p
                }
                if record {
                    s.slots[i].prefix = otherwise
                    s.changed = true
                    s.slots[i].lastSeen = now
                }
                return otherwise
            }
            if record { insert(&s, key, otherwise, now: now) }
            return otherwise
        }
    }

    /// Records that `key` uses `prefix`, seen `now`.
    public func record(_ key: Key, prefix: NAT64Prefix, now: UInt64) {
        state.withLock { s in
            if let i = find(&s, key) {
                if s.slots[i].prefix != prefix { s.changed = true }
                s.slots[i].prefix = prefix
                s.slots[i].lastSeen = now
            } else {
                insert(&s, key, prefix, now: now)
            }
        }
    }

    /// Entries are only ever replaced, never removed, so the first free slot
    /// of the window ends the search.
    private func find(_ s: inout State, _ key: Key) -> Int? {
        let h = home(key)
        for j in 0..<Self.window {
            let i = (h + j) & mask
            if !s.slots[i].used { return nil }
            if s.slots[i].key == key { return i }
        }
        return nil
    }

    private func insert(_ s: inout State, _ key: Key, _ prefix: NAT64Prefix, now: UInt64) {
        let h = home(key)
        var victim = h
        for j in 0..<Self.window {
            let i = (h + j) & mask
            if !s.slots[i].used {
                victim = i
                s.count += 1
                break
            }
            if s.slots[i].lastSeen < s.slots[victim].lastSeen { victim = i }
        }
        s.slots[victim] = Slot(key: key, prefix: prefix, lastSeen: now, used: true)
        s.changed = true
    }

    // MARK: - State file

    /// Writes the table to `path` when a flow was added or changed since the
    /// last time (`StateFile.replace`).
    public func save(to path: String) throws {
        // One save at a time: two would write the same temporary file.
        try saving.withLock { _ in try write(to: path) }
    }

    private let saving = Mutex(())

    private func write(to path: String) throws {
        let entries = state.withLock { s -> [Slot]? in
            defer { s.changed = false }
            return s.changed ? s.slots.filter(\.used) : nil
        }
        guard let entries else { return }
        var text = "# sixgate prefix flows: local4 remote4 local-port remote-port proto kind(p=ports f=fragment) prefix last-seen\n"
        for e in entries {
            let k = e.key
            text += "\(k.local4) \(k.remote4) \(k.localPort) \(k.remotePort) \(k.proto) \(k.fragment ? "f" : "p") \(e.prefix) \(e.lastSeen)\n"
        }
        do {
            try StateFile.replace(path, with: text)
        } catch {
            state.withLock { $0.changed = true }
            throw error
        }
    }

    /// Adds the flows saved in `path` whose prefix is one of `prefixes` (a
    /// prefix no longer current nor retiring has nothing left to keep). A
    /// missing or unreadable file, or a line that does not parse, is skipped:
    /// a lost flow falls back to the rule for unknown flows. A time after `now`
    /// (a clock set back) is taken as `now`, so that the entry can still age.
    public func load(from path: String, now: UInt64, accepting prefixes: [NAT64Prefix]) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
        var entries: [(Key, NAT64Prefix, UInt64)] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let f = line.split(separator: " ")
            guard f.count == 8, let local4 = IPv4Address(f[0]), let remote4 = IPv4Address(f[1]), let lp = UInt16(f[2]),
                  let rp = UInt16(f[3]), let proto = UInt8(f[4]), f[5] == "p" || f[5] == "f",
                  let v6 = try? IPv6Prefix.parse(f[6]), let prefix = try? NAT64Prefix(v6), prefixes.contains(prefix),
                  let seen = UInt64(f[7]) else { continue }
            let key = Key(local4: local4, remote4: remote4, localPort: lp, remotePort: rp, proto: proto, fragment: f[5] == "f")
            entries.append((key, prefix, min(seen, now)))
        }
        state.withLock { s in
            for (key, prefix, seen) in entries {
                if let i = find(&s, key) {
                    // The newer sighting wins, whether it is the table's or the file's.
                    if s.slots[i].lastSeen <= seen { s.slots[i] = Slot(key: key, prefix: prefix, lastSeen: seen, used: true) }
                } else {
                    insert(&s, key, prefix, now: seen)
                }
            }
        }
    }
}
