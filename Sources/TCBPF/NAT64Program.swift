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
/// this is released; pinned, they outlive it.
public final class NAT64Program: @unchecked Sendable {
    private let object: OpaquePointer
    public let programFD: Int32
    public let maps: NAT64Maps
    /// The maps that were already pinned and that this program uses.
    private let reused: Set<String>

    /// Loads the program and makes its maps (empty: it translates nothing
    /// until configured). With `reusingMapsIn`, each map pinned there that
    /// fits this program's definition is the one it uses, contents and all.
    public init(reusingMapsIn directory: String? = nil) throws(BPFError) {
        _ = Self.quiet
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
        var reused: Set<String> = []
        if let directory {
            var map = bpf_object__next_map(object, nil)
            while let m = map {
                let name = String(cString: bpf_map__name(m))
                if let fd = Self.pinnedMap(directory + "/" + name, fitting: m) {
                    if bpf_map__reuse_fd(m, fd) == 0 { reused.insert(name) }
                    close(fd)
                }
                map = bpf_object__next_map(object, m)
            }
        }
        let loaded = bpf_object__load(object)
        guard loaded == 0 else {
            let text = String(cString: log)
            bpf_object__close(object)
            throw BPFError("loading the tc-BPF translator", loaded, log: text)
        }
        self.object = object
        self.reused = reused
        programFD = bpf_program__fd(bpf_object__find_program_by_name(object, "nat64"))
        maps = NAT64Maps(Dictionary(uniqueKeysWithValues: NAT64Maps.names.map { ($0, dup(bpf_object__find_map_fd_by_name(object, $0))) }))
    }

    deinit { bpf_object__close(object) }

    /// libbpf prints what it tells its callers (a missing qdisc, say): its
    /// errors reach the operator through ours.
    static let quiet: Void = { libbpf_set_print(nil) }()

    /// The descriptor of the map pinned at `path` when its type, sizes and
    /// flags are those `map` is defined with (a map of an older program that
    /// this one cannot use is not reused, and its pin is replaced).
    private static func pinnedMap(_ path: String, fitting map: OpaquePointer) -> Int32? {
        let fd = bpf_obj_get(path)
        guard fd >= 0 else { return nil }
        var info = bpf_map_info()
        var size = UInt32(MemoryLayout<bpf_map_info>.size)
        guard bpf_obj_get_info_by_fd(fd, &info, &size) == 0, info.type == bpf_map__type(map).rawValue, info.key_size == bpf_map__key_size(map),
              info.value_size == bpf_map__value_size(map), info.max_entries == bpf_map__max_entries(map), info.map_flags == bpf_map__map_flags(map)
        else {
            close(fd)
            return nil
        }
        return fd
    }

    /// The program's tag: a hash of its instructions (the maps it uses left
    /// out), so two loads of the same program have the same one.
    public var tag: String { Self.info(programFD)?.tag ?? "" }

    /// The kernel's id and tag of the program behind `fd`.
    public static func info(_ fd: Int32) -> (id: UInt32, tag: String)? {
        var info = bpf_prog_info()
        var size = UInt32(MemoryLayout<bpf_prog_info>.size)
        guard bpf_obj_get_info_by_fd(fd, &info, &size) == 0 else { return nil }
        let tag = withUnsafeBytes(of: info.tag) { $0.map { String(format: "%02x", $0) }.joined() }
        return (info.id, tag)
    }

    /// Pins the program as `nat64` in `directory`, and each map under its
    /// name, but the reused ones, which are pinned there already. Each pin is
    /// made beside and renamed over the old one: a reader never finds none.
    public func pin(in directory: String) throws(BPFError) {
        var fds = [(Self.programPin, programFD)]
        for name in NAT64Maps.names where !reused.contains(name) { fds.append((name, bpf_object__find_map_fd_by_name(object, name))) }
        for (name, fd) in fds {
            // bpffs refuses names with a dot.
            let path = directory + "/" + name, fresh = path + "_new"
            unlink(fresh)
            guard bpf_obj_pin(fd, fresh) == 0 else { throw BPFError("pinning \(path)", Int32(errno)) }
            guard rename(fresh, path) == 0 else { throw BPFError("pinning \(path)", Int32(errno)) }
        }
    }

    /// The name of the program's pin.
    public static let programPin = "nat64"

    /// The id and tag of the program pinned in `directory`, or nil when
    /// none is; an error when it cannot be read (no CAP_BPF, say).
    public static func pinned(in directory: String) throws(BPFError) -> (id: UInt32, tag: String)? {
        let fd = bpf_obj_get(directory + "/" + programPin)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw BPFError("opening the pinned program \(directory)/\(programPin)", Int32(errno))
        }
        defer { close(fd) }
        guard let info = info(fd) else { throw BPFError("reading the pinned program \(directory)/\(programPin)", Int32(errno)) }
        return info
    }

    /// Attaches the program pinned in `directory` to the egress of each device.
    public static func attachPinned(in directory: String, ifindexes: [Int32]) throws(BPFError) {
        let fd = bpf_obj_get(directory + "/" + programPin)
        guard fd >= 0 else { throw BPFError("opening the pinned program \(directory)/\(programPin)", Int32(errno)) }
        defer { close(fd) }
        for i in ifindexes { try attach(fd, ifindex: i) }
    }

    /// A bpffs at `path`, mounted when there is none (systemd mounts
    /// /sys/fs/bpf at boot; a namespace made by `ip netns exec` has none).
    public static func mountBPFFS(_ path: String) throws(BPFError) {
        var fs = statfs()
        if statfs(path, &fs) == 0, UInt32(truncatingIfNeeded: fs.f_type) == 0xCAFE_4A11 { return }
        mkdir(path, 0o700)
        guard mount("bpf", path, "bpf", 0, "mode=0700") == 0 else { throw BPFError("mount -t bpf bpf \(path)", Int32(errno)) }
    }

    /// Linux 5.13 is the first whose `bpf_skb_change_proto` takes every kind
    /// of super-packet (UDP ones before it fail, after the program has begun
    /// to rewrite them: they could only be dropped).
    public static let minimumKernel = (5, 13)

    /// The running kernel's version, from uname.
    static var kernel: (Int, Int)? {
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        return numbers.count == 2 ? (numbers[0], numbers[1]) : nil
    }

    /// Whether the program runs here, by loading it once: its tag when it
    /// does, what stops it when it does not.
    public static func trialTag() throws(BPFError) -> String {
        if let k = kernel, k < minimumKernel {
            throw BPFError("it needs Linux \(minimumKernel.0).\(minimumKernel.1) or later, and this is \(k.0).\(k.1)", ENOSYS)
        }
        return try NAT64Program().tag
    }

    // MARK: - Attaching

    /// sixgate's filter on a device's egress: one handle and priority, so
    /// that attaching again replaces it and detaching finds it.
    static let handle: UInt32 = 0x5147, priority: UInt32 = 0x5147

    /// Calls `body` with our hook on the egress of `ifindex` and our
    /// filter's options (`programFD` 0 to find it rather than attach it).
    static func withFilter<R>(_ ifindex: Int32, programFD: Int32 = 0,
                              _ body: (UnsafeMutablePointer<bpf_tc_hook>, UnsafeMutablePointer<bpf_tc_opts>) throws(BPFError) -> R) throws(BPFError) -> R {
        _ = quiet
        return try withZeroed(bpf_tc_hook.self) { (hook) throws(BPFError) -> R in
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

    /// Attaches the program behind `programFD` to the egress of device
    /// `ifindex` (a clsact qdisc is added when there is none), replacing an
    /// earlier one of ours.
    static func attach(_ programFD: Int32, ifindex: Int32) throws(BPFError) {
        try withFilter(ifindex, programFD: programFD) { (hook, opts) throws(BPFError) in
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

    /// The id of the program our filter on the egress of `ifindex` runs,
    /// or nil when there is no such filter.
    public static func attached(ifindex: Int32) -> UInt32? {
        try? withFilter(ifindex) { hook, opts in bpf_tc_query(hook, opts) == 0 ? opts.pointee.prog_id : nil }
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
