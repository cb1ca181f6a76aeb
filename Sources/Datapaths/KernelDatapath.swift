import Glibc
import Synchronization
import Packet
import TCBPF
import Translator
import Tun

/// The kernel datapath: the tc-BPF translator on the egress of the TUN
/// device(s) translates the common packets in the kernel and hands them to
/// the stack as if the userspace translator had written them; what it
/// leaves (ICMP errors, fragments, a pool's first packet, …) reaches the TUN
/// queues, where the userspace datapath, its slow path, translates it as
/// ever.
///
/// `sixgatectl apply` loads, pins and attaches the program and tells it the
/// prefix and the EAM; this opens the pinned maps, mirrors the pool's
/// mappings into them (so that a host's packets stay in the kernel from its
/// second packet on) and reads the counters. The program does not depend on
/// the daemon: while the daemon restarts it goes on translating.
public final class KernelDatapath: TranslatorDatapath {
    let slow: TunDatapath
    let maps: NAT64Maps
    let setup: DatapathSetup

    /// Opens the maps of the program pinned in `setup.pins`, which must be
    /// the one on the egress of the device(s).
    public init(_ setup: DatapathSetup) throws(DatapathError) {
        self.setup = setup
        slow = TunDatapath(setup)
        do {
            guard let pinned = try NAT64Program.pinned(in: setup.pins) else {
                throw DatapathError("no tc-BPF program is pinned in \(setup.pins) (sixgatectl apply loads it, or says why it cannot)")
            }
            for device in setup.devices {
                let index = Int32(bitPattern: if_nametoindex(device))
                guard index > 0 else { throw DatapathError("no device \(device) here") }
                guard NAT64Program.attached(ifindex: index) == pinned.id else {
                    throw DatapathError("the program pinned in \(setup.pins) is not the one on the egress of \(device) (sixgatectl apply attaches it)")
                }
            }
            maps = try NAT64Maps(pinnedIn: setup.pins)
        } catch let e as DatapathError {
            throw e
        } catch {
            throw DatapathError("\(error)")
        }
    }

    public var detail: String {
        "kernel (tc-BPF on \(setup.devices.joined(separator: " and "))), its slow path \(slow.detail)"
    }

    /// What can fail comes first, so that a failure leaves nothing behind
    /// and `auto` falls back to a TUN datapath that finds the queues (and
    /// what a reload handed over in them) untouched.
    public func start() throws(DatapathError) {
        try slow.start()
        // A mapping the map cannot take (it is full) only costs speed: that
        // host's packets are the userspace translator's. One the map holds
        // and the pool does not (released while no daemon ran) goes.
        let stale = Mutex(Dictionary(maps.poolMappings().map { ($0.host, $0.address) }, uniquingKeysWith: { a, _ in a }))
        setup.pool?.observe { [maps] change in
            switch change {
            case .added(let m):
                _ = stale.withLock { $0.removeValue(forKey: m.ipv6) }
                try? maps.addPoolMapping(host: m.ipv6, address: m.ipv4, lastUsed: m.lastUsed)
            case .released(let m): maps.removePoolMapping(host: m.ipv6, address: m.ipv4)
            }
        }
        for (host, address) in stale.withLock({ $0 }) { maps.removePoolMapping(host: host, address: address) }
    }

    /// The program stays: it is the controller's, and translates on while
    /// the daemon is away (a reload, a restart).
    public func stop() {
        setup.pool?.observe(nil)
        slow.stop()
    }

    public var stopped: Bool { slow.stopped }
    public var failure: String? { slow.failure }
    public var counters: TranslatorCounters { slow.counters }

    public var ownCounters: [(String, Int)] {
        let values = maps.counters()
        return KernelCounter.allCases.compactMap { c in
            let v = Int(values[c.index])
            // The translations always; a punt once it happened.
            return v > 0 || c == .translated6to4 || c == .translated4to6 ? (c.description, v) : nil
        }
    }

    /// The pool learns when the kernel last translated for each host. (The
    /// end of a renumbering is an apply, which lets the kernel translate
    /// again.)
    public func housekeeping(now: UInt64) {
        setup.pool?.touch(maps.lastUses())
    }
}
