import CBPF
import Foundation
import Glibc
import Packet

/// The compiled BPF programs, carried by the binary (bpf-embed writes them
/// at build time from bpf/*.bpf.c).
public enum BPFObjects {}

/// Why the kernel refused: the call, errno's text, and the verifier's log
/// when it was the verifier.
public struct BPFError: Error, Sendable, CustomStringConvertible {
    public let call: String
    public let code: Int32
    public let log: String

    init(_ call: String, _ code: Int32, log: String = "") {
        self.call = call
        self.code = abs(code)
        self.log = log
    }

    public var description: String {
        "\(call): \(String(cString: strerror(code)))" + (log.isEmpty ? "" : "; the verifier said: " + log.suffix(600))
    }
}

/// Calls `body` with a libbpf options struct whose every byte is zero,
/// padding included, then set by `body`: libbpf refuses (EINVAL) options
/// with non-zero bytes past the fields it knows, and a Swift value's
/// padding holds whatever was there before.
func withZeroed<T, R>(_: T.Type, _ body: (UnsafeMutablePointer<T>) throws(BPFError) -> R) throws(BPFError) -> R {
    let p = UnsafeMutablePointer<T>.allocate(capacity: 1)
    defer { p.deallocate() }
    UnsafeMutableRawPointer(p).initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<T>.stride)
    return try body(p)
}

/// The tc-BPF translator (bpf/nat64.bpf.c), loaded into the kernel with its
/// maps: the object stays open, and with it the program and the maps, until
/// this is released (or pinned elsewhere).
public final class NAT64Program: @unchecked Sendable {
    private let object: OpaquePointer
    public let programFD: Int32
    let configFD: Int32, eam6FD: Int32, eam4FD: Int32, nonGlobalFD: Int32, pool6FD: Int32, pool4FD: Int32, countersFD: Int32

    /// Loads the program and makes its maps (empty: it translates nothing
    /// until `configure`).
    public init() throws(BPFError) {
        libbpf_set_print(nil)
        guard let bytes = Data(base64Encoded: BPFObjects.nat64) else { throw BPFError("decoding the embedded object", EINVAL) }
        let logSize = 1 << 20
        let log = UnsafeMutablePointer<CChar>.allocate(capacity: logSize)
        defer { log.deallocate() }
        log[0] = 0
        let opened = try withZeroed(bpf_object_open_opts.self) { opts in
            opts.pointee.sz = MemoryLayout<bpf_object_open_opts>.size
            opts.pointee.kernel_log_buf = log
            opts.pointee.kernel_log_size = logSize
            return bytes.withUnsafeBytes { bpf_object__open_mem($0.baseAddress, $0.count, opts) }
        }
        guard let object = opened, libbpf_get_error(UnsafeRawPointer(object)) == 0 else {
            throw BPFError("opening the BPF object", Int32(errno))
        }
        let loaded = bpf_object__load(object)
        guard loaded == 0 else {
            let text = String(cString: log)
            bpf_object__close(object)
            throw BPFError("loading the tc-BPF translator", loaded, log: text)
        }
        func fd(_ name: String) -> Int32 { bpf_object__find_map_fd_by_name(object, name) }
        self.object = object
        programFD = bpf_program__fd(bpf_object__find_program_by_name(object, "nat64"))
        configFD = fd("config")
        eam6FD = fd("eam6")
        eam4FD = fd("eam4")
        nonGlobalFD = fd("nonglobal4")
        pool6FD = fd("pool6")
        pool4FD = fd("pool4")
        countersFD = fd("counters")
    }

    deinit { bpf_object__close(object) }

    // MARK: - Maps

    /// What the program is told: the prefix, the mappings, where results go.
    public struct Settings: Sendable {
        public var prefix: NAT64Prefix
        public var eam: [(ipv4: IPv4Prefix, ipv6: IPv6Prefix)]
        public var ifindex6: Int32
        public var ifindex4: Int32
        public var lowestIPv6MTU: Int
        /// During a renumbering every packet is the userspace translator's.
        public var puntAll: Bool
        /// 14 for BPF_PROG_TEST_RUN's Ethernet frames; 0 on the TUN device.
        public var l3Offset: Int

        public init(prefix: NAT64Prefix, eam: [(ipv4: IPv4Prefix, ipv6: IPv6Prefix)], ifindex6: Int32, ifindex4: Int32,
                    lowestIPv6MTU: Int, puntAll: Bool = false, l3Offset: Int = 0) {
            self.prefix = prefix
            self.eam = eam
            self.ifindex6 = ifindex6
            self.ifindex4 = ifindex4
            self.lowestIPv6MTU = lowestIPv6MTU
            self.puntAll = puntAll
            self.l3Offset = l3Offset
        }

    }

    /// Fills the maps from `settings`, the config last: the program starts
    /// translating once all it needs is there. Again with other settings,
    /// it changes the config in place (the EAM entries are only added to).
    public func configure(_ s: Settings) throws(BPFError) {
        for e in s.eam {
            var value = nat64_eam()
            withUnsafeMutableBytes(of: &value.ipv6) { $0.copyBytes(from: e.ipv6.address.bytes) }
            withUnsafeMutableBytes(of: &value.ipv4) { $0.copyBytes(from: e.ipv4.address.bytes) }
            value.ipv6_len = UInt32(e.ipv6.length)
            value.ipv4_len = UInt32(e.ipv4.length)
            var k6 = nat64_lpm6(prefixlen: UInt32(e.ipv6.length), addr: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
            withUnsafeMutableBytes(of: &k6.addr) { $0.copyBytes(from: e.ipv6.address.bytes) }
            try update(eam6FD, &k6, &value, "the EAM map (IPv6)")
            var k4 = nat64_lpm4(prefixlen: UInt32(e.ipv4.length), addr: (0, 0, 0, 0))
            withUnsafeMutableBytes(of: &k4.addr) { $0.copyBytes(from: e.ipv4.address.bytes) }
            try update(eam4FD, &k4, &value, "the EAM map (IPv4)")
        }
        if s.prefix.isWellKnown {
            for block in IPv4Address.nonGlobalBlocks {
                var k = nat64_lpm4(prefixlen: UInt32(block.length), addr: (0, 0, 0, 0))
                withUnsafeMutableBytes(of: &k.addr) { $0.copyBytes(from: block.address.bytes) }
                var one: UInt8 = 1
                try update(nonGlobalFD, &k, &one, "the non-global blocks")
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
        try update(configFD, &zero, &c, "the config map")
    }

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
        try update(pool6FD, &k6, &e, "the pool map (IPv6)")
        try update(pool4FD, &k4, &e, "the pool map (IPv4)")
    }

    public func removePoolMapping(host: IPv6Address, address: IPv4Address) {
        var k6 = nat64_pool_entry().ipv6
        withUnsafeMutableBytes(of: &k6) { $0.copyBytes(from: host.bytes) }
        var k4 = address.rawValue.bigEndian
        _ = bpf_map_delete_elem(pool6FD, &k6)
        _ = bpf_map_delete_elem(pool4FD, &k4)
    }

    /// When the program last translated for each host of the pool maps,
    /// either way (each direction stamps its own map's entry), in seconds
    /// since 1970: read in batches, a few calls for the whole pool.
    public func lastUses() -> [IPv6Address: UInt64] {
        var stamps: [IPv6Address: UInt64] = [:]
        for (fd, keySize) in [(pool6FD, 16), (pool4FD, 4)] {
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

    /// The counters, summed over the CPUs, indexed by `nat64_counter`.
    public func counters() -> [UInt64] {
        let cpus = max(1, Int(libbpf_num_possible_cpus()))
        var values = [UInt64](repeating: 0, count: cpus)
        return (0..<Int(NAT64_COUNTERS.rawValue)).map { i in
            var key = UInt32(i)
            guard bpf_map_lookup_elem(countersFD, &key, &values) == 0 else { return 0 }
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

    // MARK: - Attaching

    /// sixgate's filter on a device's egress: one handle and priority, so
    /// that attaching again replaces it and detaching finds it.
    static let handle: UInt32 = 0x5147, priority: UInt32 = 0x5147

    /// Calls `body` with our hook on the egress of `ifindex` and our
    /// filter's options (`programFD` 0 to find it rather than attach it).
    static func withFilter<R>(_ ifindex: Int32, programFD: Int32 = 0,
                              _ body: (UnsafeMutablePointer<bpf_tc_hook>, UnsafeMutablePointer<bpf_tc_opts>) throws(BPFError) -> R) throws(BPFError) -> R {
        try withZeroed(bpf_tc_hook.self) { (hook) throws(BPFError) -> R in
            hook.pointee.sz = MemoryLayout<bpf_tc_hook>.size
            hook.pointee.ifindex = ifindex
            hook.pointee.attach_point = BPF_TC_EGRESS
            return try withZeroed(bpf_tc_opts.self) { (opts) throws(BPFError) -> R in
                opts.pointee.sz = MemoryLayout<bpf_tc_opts>.size
                opts.pointee.prog_fd = programFD
                opts.pointee.handle = handle
                opts.pointee.priority = priority
                return try body(hook, opts)
            }
        }
    }

    /// Attaches the program to the egress of device `ifindex` (a clsact
    /// qdisc is added when there is none), replacing an earlier one of ours.
    public func attach(ifindex: Int32) throws(BPFError) {
        try Self.withFilter(ifindex, programFD: programFD) { (hook, opts) throws(BPFError) in
            let created = bpf_tc_hook_create(hook)
            guard created == 0 || created == -EEXIST else { throw BPFError("adding the clsact qdisc", created) }
            opts.pointee.flags = UInt32(BPF_TC_F_REPLACE.rawValue)
            let attached = bpf_tc_attach(hook, opts)
            guard attached == 0 else { throw BPFError("attaching to tc egress", attached) }
        }
    }

    /// Removes our filter from the egress of device `ifindex`, if it is there.
    public static func detach(ifindex: Int32) {
        try? withFilter(ifindex) { hook, opts in _ = bpf_tc_detach(hook, opts) }
    }

    // MARK: - Running it without a network (BPF_PROG_TEST_RUN)

    /// What the program did with one frame.
    public struct TestRun: Sendable, Equatable {
        /// TC_ACT_OK (0, punted), TC_ACT_SHOT (2) or TC_ACT_REDIRECT (7, translated).
        public var verdict: UInt32
        public var frame: [UInt8]

        /// Translated, and handed to the stack.
        public var translated: Bool { verdict == UInt32(TC_ACT_REDIRECT) }
        /// Left to the userspace translator.
        public var punted: Bool { verdict == UInt32(TC_ACT_OK) }
    }

    /// Runs the program once on `frame`, an Ethernet frame (the program must
    /// be configured with `l3Offset` 14). `gsoSize` makes it a super-packet.
    public func testRun(_ frame: [UInt8], gsoSize: UInt32 = 0) throws(BPFError) -> TestRun {
        var out = [UInt8](repeating: 0, count: frame.count + 256)
        var ctx = __sk_buff()
        ctx.gso_size = gsoSize
        ctx.gso_segs = gsoSize > 0 ? UInt32((frame.count + Int(gsoSize) - 1) / Int(gsoSize)) : 0
        let (r, opts) = try withZeroed(bpf_test_run_opts.self) { opts in
            opts.pointee.sz = MemoryLayout<bpf_test_run_opts>.size
            let r = frame.withUnsafeBytes { input in
                out.withUnsafeMutableBytes { output in
                    withUnsafeMutableBytes(of: &ctx) { c in
                        opts.pointee.data_in = input.baseAddress
                        opts.pointee.data_size_in = UInt32(input.count)
                        opts.pointee.data_out = output.baseAddress
                        opts.pointee.data_size_out = UInt32(output.count)
                        opts.pointee.ctx_in = UnsafeRawPointer(c.baseAddress)
                        opts.pointee.ctx_size_in = UInt32(c.count)
                        opts.pointee.repeat = 1
                        return bpf_prog_test_run_opts(programFD, opts)
                    }
                }
            }
            return (r, opts.pointee)
        }
        guard r == 0 else { throw BPFError("BPF_PROG_TEST_RUN", Int32(errno)) }
        return TestRun(verdict: opts.retval, frame: Array(out.prefix(Int(opts.data_size_out))))
    }
}

/// The program's counters (`nat64_counter`): what it translated, and why
/// it left the others to the userspace translator.
public enum KernelCounter: CaseIterable, Sendable, CustomStringConvertible {
    case translated6to4, translated4to6
    case disabled, renumbering, notIP, headers, fragment, hopLimit, unsupportedProtocol, checksum, destination, source, policy, hairpin, size, error

    /// Its index in the counters map.
    public var index: Int {
        let c: nat64_counter = switch self {
        case .translated6to4: NAT64_TRANSLATED_6TO4
        case .translated4to6: NAT64_TRANSLATED_4TO6
        case .disabled: NAT64_PUNT_DISABLED
        case .renumbering: NAT64_PUNT_RENUMBERING
        case .notIP: NAT64_PUNT_NOT_IP
        case .headers: NAT64_PUNT_HEADERS
        case .fragment: NAT64_PUNT_FRAGMENT
        case .hopLimit: NAT64_PUNT_HOP_LIMIT
        case .unsupportedProtocol: NAT64_PUNT_PROTOCOL
        case .checksum: NAT64_PUNT_CHECKSUM
        case .destination: NAT64_PUNT_DESTINATION
        case .source: NAT64_PUNT_SOURCE
        case .policy: NAT64_PUNT_POLICY
        case .hairpin: NAT64_PUNT_HAIRPIN
        case .size: NAT64_PUNT_SIZE
        case .error: NAT64_PUNT_ERROR
        }
        return Int(c.rawValue)
    }

    /// Its name in `status` and Prometheus.
    public var description: String {
        switch self {
        case .translated6to4: "kernel_6to4"
        case .translated4to6: "kernel_4to6"
        case .disabled: "punt.disabled"
        case .renumbering: "punt.renumbering"
        case .notIP: "punt.not_ip"
        case .headers: "punt.headers"
        case .fragment: "punt.fragment"
        case .hopLimit: "punt.hop_limit"
        case .unsupportedProtocol: "punt.protocol"
        case .checksum: "punt.checksum"
        case .destination: "punt.destination"
        case .source: "punt.source"
        case .policy: "punt.policy"
        case .hairpin: "punt.hairpin"
        case .size: "punt.size"
        case .error: "punt.error"
        }
    }
}
