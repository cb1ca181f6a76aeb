import CBPF
import Glibc
import Packet

/// The translator's maps (bpf/nat64_maps.h), each by a descriptor of its
/// own: those of a program just loaded, or those pinned in bpffs, which the
/// daemon opens while the controller owns the program.
public final class NAT64Maps: @unchecked Sendable {
    /// The maps' names, in the object and in the pin directory.
    public static let names = ["config", "eam6", "eam4", "nonglobal4", "pool6", "pool4", "counters"]

    let config: Int32, eam6: Int32, eam4: Int32, nonGlobal: Int32, pool6: Int32, pool4: Int32, counterFD: Int32

    /// Takes the descriptors (by name), which it closes when released.
    init(_ fds: [String: Int32]) {
        config = fds["config"] ?? -1
        eam6 = fds["eam6"] ?? -1
        eam4 = fds["eam4"] ?? -1
        nonGlobal = fds["nonglobal4"] ?? -1
        pool6 = fds["pool6"] ?? -1
        pool4 = fds["pool4"] ?? -1
        counterFD = fds["counters"] ?? -1
    }

    /// Opens the maps pinned in `directory`.
    public convenience init(pinnedIn directory: String) throws(BPFError) {
        var fds: [String: Int32] = [:]
        for name in Self.names {
            let fd = bpf_obj_get(directory + "/" + name)
            guard fd >= 0 else {
                let e = errno
                for fd in fds.values { close(fd) }
                throw BPFError("opening the pinned map \(directory)/\(name)", e)
            }
            fds[name] = fd
        }
        self.init(fds)
    }

    deinit {
        for fd in [config, eam6, eam4, nonGlobal, pool6, pool4, counterFD] where fd >= 0 { close(fd) }
    }

    // MARK: - What the program is told

    /// An explicit address mapping (RFC 7757).
    public struct Mapping: Hashable, Sendable, CustomStringConvertible {
        public var ipv4: IPv4Prefix
        public var ipv6: IPv6Prefix

        public init(ipv4: IPv4Prefix, ipv6: IPv6Prefix) {
            self.ipv4 = ipv4
            self.ipv6 = ipv6
        }

        public var description: String { "\(ipv4) \(ipv6)" }
    }

    /// What the program is told: the prefix, the mappings, where results go.
    public struct Settings: Sendable, Equatable {
        public var prefix: NAT64Prefix
        public var eam: Set<Mapping>
        public var ifindex6: Int32
        public var ifindex4: Int32
        public var lowestIPv6MTU: Int
        /// During a renumbering every packet is the userspace translator's.
        public var puntAll: Bool
        /// 14 for BPF_PROG_TEST_RUN's Ethernet frames; 0 on the TUN device.
        public var l3Offset: Int

        public init(prefix: NAT64Prefix, eam: Set<Mapping>, ifindex6: Int32, ifindex4: Int32,
                    lowestIPv6MTU: Int, puntAll: Bool = false, l3Offset: Int = 0) {
            self.prefix = prefix
            self.eam = eam
            self.ifindex6 = ifindex6
            self.ifindex4 = ifindex4
            self.lowestIPv6MTU = lowestIPv6MTU
            self.puntAll = puntAll
            self.l3Offset = l3Offset
        }

        /// What differs from `wanted`, in words, for an audit.
        public func differences(from wanted: Settings) -> [String] {
            var d: [String] = []
            if prefix != wanted.prefix { d.append("prefix \(prefix), wants \(wanted.prefix)") }
            if ifindex6 != wanted.ifindex6 || ifindex4 != wanted.ifindex4 {
                d.append("devices \(ifindex6)/\(ifindex4), wants ifindex \(wanted.ifindex6)/\(wanted.ifindex4)")
            }
            if lowestIPv6MTU != wanted.lowestIPv6MTU { d.append("lowest IPv6 MTU \(lowestIPv6MTU), wants \(wanted.lowestIPv6MTU)") }
            if puntAll != wanted.puntAll {
                d.append(puntAll ? "leaves every packet to userspace, wants the renumbering over"
                                 : "translates, wants every packet left to userspace during the renumbering")
            }
            if l3Offset != wanted.l3Offset { d.append("L3 offset \(l3Offset), wants \(wanted.l3Offset)") }
            return d
        }
    }

    /// Makes the maps hold `s` and nothing else, the config last: the
    /// program translates with a mapping only once it is complete, and
    /// never with one that is gone.
    public func configure(_ s: Settings) throws(BPFError) {
        let tries = eamTries(), live = tries.v6.intersection(tries.v4)
        for m in tries.v6.union(tries.v4).subtracting(s.eam) {
            var k6 = Self.key6(m.ipv6), k4 = Self.key4(m.ipv4)
            _ = bpf_map_delete_elem(eam6, &k6)
            _ = bpf_map_delete_elem(eam4, &k4)
        }
        for m in s.eam.subtracting(live) {
            var value = nat64_eam()
            withUnsafeMutableBytes(of: &value.ipv6) { $0.copyBytes(from: m.ipv6.address.bytes) }
            withUnsafeMutableBytes(of: &value.ipv4) { $0.copyBytes(from: m.ipv4.address.bytes) }
            value.ipv6_len = UInt32(m.ipv6.length)
            value.ipv4_len = UInt32(m.ipv4.length)
            var k6 = Self.key6(m.ipv6), k4 = Self.key4(m.ipv4)
            try update(eam6, &k6, &value, "the EAM map (IPv6)")
            try update(eam4, &k4, &value, "the EAM map (IPv4)")
        }
        // The blocks are a constant: written whole, or emptied.
        for block in IPv4Address.nonGlobalBlocks {
            var k = Self.key4(block)
            if s.prefix.isWellKnown {
                var one: UInt8 = 1
                try update(nonGlobal, &k, &one, "the non-global blocks")
            } else {
                _ = bpf_map_delete_elem(nonGlobal, &k)
            }
        }
        var c = nat64_config()
        withUnsafeMutableBytes(of: &c.prefix) { $0.copyBytes(from: s.prefix.prefix.address.bytes) }
        c.prefix_len = UInt32(s.prefix.length)
        c.flags = (s.prefix.isWellKnown ? UInt32(NAT64_WELL_KNOWN) : 0) | (s.puntAll ? UInt32(NAT64_PUNT_ALL) : 0)
        c.ifindex6 = UInt32(bitPattern: s.ifindex6)
        c.ifindex4 = UInt32(bitPattern: s.ifindex4)
        c.lowest_ipv6_mtu = UInt32(s.lowestIPv6MTU)
        c.l3_offset = UInt32(s.l3Offset)
        c.enabled = 1
        var zero: UInt32 = 0
        try update(config, &zero, &c, "the config map")
    }

    /// What the maps hold, or nil before the config was written.
    public func settings() -> Settings? {
        var zero: UInt32 = 0
        var c = nat64_config()
        guard bpf_map_lookup_elem(config, &zero, &c) == 0, c.enabled != 0 else { return nil }
        let address = withUnsafeBytes(of: c.prefix) { IPv6Address(bytes: Array($0)) }
        guard let prefix = try? NAT64Prefix(IPv6Prefix(address: address, length: Int(c.prefix_len))) else { return nil }
        let tries = eamTries()
        return Settings(prefix: prefix, eam: tries.v6.intersection(tries.v4), ifindex6: Int32(bitPattern: c.ifindex6), ifindex4: Int32(bitPattern: c.ifindex4),
                        lowestIPv6MTU: Int(c.lowest_ipv6_mtu), puntAll: c.flags & UInt32(NAT64_PUNT_ALL) != 0, l3Offset: Int(c.l3_offset))
    }

    /// The mappings each EAM trie holds: one that only one of them holds
    /// is half a mapping, which `settings` leaves out and `configure` mends.
    func eamTries() -> (v6: Set<Mapping>, v4: Set<Mapping>) {
        var seen: [Set<Mapping>] = []
        for (fd, keySize) in [(eam6, MemoryLayout<nat64_lpm6>.size), (eam4, MemoryLayout<nat64_lpm4>.size)] {
            var found = Set<Mapping>()
            Self.forEachKey(fd, keySize: keySize) { key in
                var v = nat64_eam()
                guard key.withUnsafeBytes({ bpf_map_lookup_elem(fd, $0.baseAddress, &v) }) == 0 else { return }
                let v6 = withUnsafeBytes(of: v.ipv6) { IPv6Address(bytes: Array($0)) }
                let v4 = withUnsafeBytes(of: v.ipv4) { IPv4Address(bytes: Array($0)) }
                found.insert(Mapping(ipv4: IPv4Prefix(address: v4, length: Int(v.ipv4_len)), ipv6: IPv6Prefix(address: v6, length: Int(v.ipv6_len))))
            }
            seen.append(found)
        }
        return (seen[0], seen[1])
    }

    static func key6(_ p: IPv6Prefix) -> nat64_lpm6 {
        var k = nat64_lpm6(prefixlen: UInt32(p.length), addr: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        withUnsafeMutableBytes(of: &k.addr) { $0.copyBytes(from: p.address.bytes) }
        return k
    }

    static func key4(_ p: IPv4Prefix) -> nat64_lpm4 {
        var k = nat64_lpm4(prefixlen: UInt32(p.length), addr: (0, 0, 0, 0))
        withUnsafeMutableBytes(of: &k.addr) { $0.copyBytes(from: p.address.bytes) }
        return k
    }

    /// Calls `body` with every key of map `fd` (an LPM trie has no batches).
    static func forEachKey(_ fd: Int32, keySize: Int, _ body: ([UInt8]) -> Void) {
        var key = [UInt8](repeating: 0, count: keySize), next = key
        var first = true
        while next.withUnsafeMutableBytes({ n in
            first ? bpf_map_get_next_key(fd, nil, n.baseAddress) : key.withUnsafeBytes { bpf_map_get_next_key(fd, $0.baseAddress, n.baseAddress) }
        }) == 0 {
            first = false
            key = next
            body(key)
        }
    }

    // MARK: - The pool

    /// A dynamic pool mapping, in both directions, so that the host's
    /// packets stay in the kernel; `lastUsed` (seconds since 1970) is when
    /// the pool last saw it used, so that its idle time goes on counting.
    public func addPoolMapping(host: IPv6Address, address: IPv4Address, lastUsed: UInt64) throws(BPFError) {
        var e = nat64_pool_entry()
        withUnsafeMutableBytes(of: &e.ipv6) { $0.copyBytes(from: host.bytes) }
        withUnsafeMutableBytes(of: &e.ipv4) { $0.copyBytes(from: address.bytes) }
        let boot = Self.bootNanoseconds(), ago = UInt64(time(nil)) &- min(lastUsed, UInt64(time(nil)))
        e.last_used = boot &- min(boot, ago &* 1_000_000_000)
        var k6 = e.ipv6
        var k4 = address.rawValue.bigEndian
        try update(pool6, &k6, &e, "the pool map (IPv6)")
        try update(pool4, &k4, &e, "the pool map (IPv4)")
    }

    public func removePoolMapping(host: IPv6Address, address: IPv4Address) {
        var k6 = nat64_pool_entry().ipv6
        withUnsafeMutableBytes(of: &k6) { $0.copyBytes(from: host.bytes) }
        var k4 = address.rawValue.bigEndian
        _ = bpf_map_delete_elem(pool6, &k6)
        _ = bpf_map_delete_elem(pool4, &k4)
    }

    /// The pool mappings the maps hold (either way), as (host, address).
    public func poolMappings() -> [(host: IPv6Address, address: IPv4Address)] {
        var all: [IPv6Address: IPv4Address] = [:]
        for (fd, keySize) in [(pool6, 16), (pool4, 4)] {
            Self.forEachEntry(fd, keySize: keySize) { e in
                all[withUnsafeBytes(of: e.ipv6) { IPv6Address(bytes: Array($0)) }] = withUnsafeBytes(of: e.ipv4) { IPv4Address(bytes: Array($0)) }
            }
        }
        return all.map { ($0.key, $0.value) }
    }

    /// When the program last translated for each host of the pool maps,
    /// either way (each direction stamps its own map's entry), in seconds
    /// since 1970: read in batches, a few calls for the whole pool.
    public func lastUses() -> [IPv6Address: UInt64] {
        var stamps: [IPv6Address: UInt64] = [:]
        for (fd, keySize) in [(pool6, 16), (pool4, 4)] {
            Self.forEachEntry(fd, keySize: keySize) { e in
                let host = withUnsafeBytes(of: e.ipv6) { IPv6Address(bytes: Array($0)) }
                stamps[host] = max(stamps[host] ?? 0, e.last_used)
            }
        }
        let boot = Self.bootNanoseconds(), now = UInt64(time(nil))
        return stamps.mapValues { now &- (boot &- min($0, boot)) / 1_000_000_000 }
    }

    /// Calls `body` with every value of the pool map `fd`.
    private static func forEachEntry(_ fd: Int32, keySize: Int, _ body: (nat64_pool_entry) -> Void) {
        let batch = 1024
        var keys = [UInt8](repeating: 0, count: keySize * batch)
        var values = [nat64_pool_entry](repeating: nat64_pool_entry(), count: batch)
        // A hash map's position: a bucket number.
        var position: UInt64 = 0, next: UInt64 = 0
        var first = true
        while true {
            var count = UInt32(batch)
            let r = keys.withUnsafeMutableBytes { k in
                values.withUnsafeMutableBytes { v in
                    first ? bpf_map_lookup_batch(fd, nil, &next, k.baseAddress, v.baseAddress, &count, nil)
                        : bpf_map_lookup_batch(fd, &position, &next, k.baseAddress, v.baseAddress, &count, nil)
                }
            }
            // The last batch comes with ENOENT, and its entries.
            for i in 0..<Int(min(count, UInt32(batch))) { body(values[i]) }
            guard r == 0 else { return }
            position = next
            first = false
        }
    }

    // MARK: - Counters

    /// The counters, summed over the CPUs, indexed by `nat64_counter`.
    public func counters() -> [UInt64] {
        let cpus = max(1, Int(libbpf_num_possible_cpus()))
        var values = [UInt64](repeating: 0, count: cpus)
        return (0..<Int(NAT64_COUNTERS.rawValue)).map { i in
            var key = UInt32(i)
            guard bpf_map_lookup_elem(counterFD, &key, &values) == 0 else { return 0 }
            return values.reduce(0, &+)
        }
    }

    private func update<K: BitwiseCopyable, V: BitwiseCopyable>(_ fd: Int32, _ key: inout K, _ value: inout V, _ what: String) throws(BPFError) {
        let r = bpf_map_update_elem(fd, &key, &value, UInt64(BPF_ANY))
        guard r == 0 else { throw BPFError("writing \(what)", Int32(errno)) }
    }

    static func bootNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_BOOTTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
