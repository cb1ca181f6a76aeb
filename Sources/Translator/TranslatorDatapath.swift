/// What carries translated traffic (two
/// implementations of one contract): the userspace translator on the TUN
/// device(s), or the kernel's tc-BPF program with that translator as its
/// slow path. The daemon serves whichever it was handed through this alone.
public protocol TranslatorDatapath: AnyObject, Sendable {
    /// Attaches to the device(s) and starts translating; says why not.
    func start() throws(DatapathError)
    /// Ends it soon; `stopped` says when it has.
    func stop()
    var stopped: Bool { get }
    /// Why it broke while running (a device deleted, say): its owner stops
    /// it, so that a supervisor restarts it rather than keep a translator
    /// that translates nothing.
    var failure: String? { get }
    var counters: TranslatorCounters { get }
    /// What runs, on what, for `status`: "tun (userspace), 2 queue(s) on sg-nat64".
    var detail: String { get }
    /// Counters beyond the engine's (the kernel's translations and punts),
    /// as name and value.
    var ownCounters: [(String, Int)] { get }
    /// Once a second, from the daemon's housekeeping, before the pool
    /// lets idle mappings go.
    func housekeeping(now: UInt64)
}

extension TranslatorDatapath {
    public var ownCounters: [(String, Int)] { [] }
    public func housekeeping(now: UInt64) {}
}

/// Why a datapath cannot run.
public struct DatapathError: Error, Sendable, CustomStringConvertible {
    public let reason: String

    public init(_ reason: String) { self.reason = reason }

    public var description: String { reason }
}
