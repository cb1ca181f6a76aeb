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
/// ever. The pool's mappings are mirrored into the program's maps, so that
/// a host's packets stay in the kernel from its second packet on.
public final class KernelDatapath: TranslatorDatapath {
    let slow: TunDatapath
    let program: NAT64Program
    let setup: DatapathSetup
    let ifindexes: [Int32]
    /// What the program was told; `puntAll` is cleared when a renumbering ends.
    private let told: Mutex<NAT64Program.Settings>

    /// Linux 5.13 is the first whose `bpf_skb_change_proto` takes every kind
    /// of super-packet (UDP ones before it fail, after the program has begun
    /// to rewrite them: they could only be dropped).
    static let minimumKernel = (5, 13)

    /// The running kernel's version, from uname.
    static var kernel: (Int, Int)? {
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        return numbers.count == 2 ? (numbers[0], numbers[1]) : nil
    }

    /// Loads the program and fills its maps; attaches nothing yet.
    public init(_ setup: DatapathSetup) throws(DatapathError) {
        if let k = Self.kernel, k < Self.minimumKernel {
            throw DatapathError("it needs Linux \(Self.minimumKernel.0).\(Self.minimumKernel.1) or later, and this is \(k.0).\(k.1)")
        }
        self.setup = setup
        slow = TunDatapath(setup)
        let index6 = Int32(bitPattern: if_nametoindex(setup.device))
        let index4 = setup.device4.map { Int32(bitPattern: if_nametoindex($0)) } ?? index6
        guard index6 > 0, index4 > 0 else { throw DatapathError("no device \(setup.device)\(setup.device4.map { " or \($0)" } ?? "") here") }
        ifindexes = index4 == index6 ? [index6] : [index6, index4]
        let s = setup.settings
        let told = NAT64Program.Settings(
            prefix: s.prefix, eam: s.eam.entries.map { ($0.ipv4, $0.ipv6) }, ifindex6: index6, ifindex4: index4,
            lowestIPv6MTU: s.lowestIPv6MTU, puntAll: !s.retiring.isEmpty)
        self.told = Mutex(told)
        do {
            program = try NAT64Program()
            try program.configure(told)
        } catch {
            throw DatapathError("\(error)")
        }
    }

    public var detail: String {
        "kernel (tc-BPF on \(setup.device)\(setup.device4.map { " and \($0)" } ?? "")), its slow path \(slow.detail)"
    }

    /// What can fail comes first, so that a failure leaves nothing behind
    /// and `auto` falls back to a TUN datapath that finds the queues (and
    /// what a reload handed over in them) untouched.
    public func start() throws(DatapathError) {
        // A mapping the map cannot take (it is full) only costs speed: that
        // host's packets are the userspace translator's.
        setup.pool?.observe { [program] change in
            switch change {
            case .added(let m): try? program.addPoolMapping(host: m.ipv6, address: m.ipv4, lastUsed: m.lastUsed)
            case .released(let m): program.removePoolMapping(host: m.ipv6, address: m.ipv4)
            }
        }
        do {
            for i in ifindexes { try program.attach(ifindex: i) }
            // What the program punts waits in the queues meanwhile.
            try slow.start()
        } catch {
            detach()
            throw DatapathError("\(error)")
        }
    }

    private func detach() {
        Self.detach(setup)
        setup.pool?.observe(nil)
    }

    /// Removes sixgate's program from the device(s) of `setup`, if attached.
    static func detach(_ setup: DatapathSetup) {
        for device in [setup.device] + (setup.device4.map { [$0] } ?? []) {
            let i = Int32(bitPattern: if_nametoindex(device))
            if i > 0 { NAT64Program.detach(ifindex: i) }
        }
    }

    /// Before a handover (a reload re-executes the daemon) the program stays
    /// attached and keeps translating, with the maps it has, until the next
    /// program replaces it: userspace may be away, the kernel is not.
    public func stop() {
        if Handover.isArmed {
            setup.pool?.observe(nil)
        } else {
            detach()
        }
        slow.stop()
    }

    public var stopped: Bool { slow.stopped }
    public var failure: String? { slow.failure }
    public var counters: TranslatorCounters { slow.counters }

    public var ownCounters: [(String, Int)] {
        let values = program.counters()
        return KernelCounter.allCases.compactMap { c in
            let v = Int(values[c.index])
            // The translations always; a punt once it happened.
            return v > 0 || c == .translated6to4 || c == .translated4to6 ? (c.description, v) : nil
        }
    }

    /// The pool learns when the kernel last translated for each host; once
    /// a renumbering is over (without a restart) the kernel takes its share
    /// of the traffic back.
    public func housekeeping(now: UInt64) {
        setup.pool?.touch(program.lastUses())
        let end = setup.settings.retiring.map(\.until).max() ?? 0
        let over = told.withLock { t -> NAT64Program.Settings? in
            guard t.puntAll, now >= end else { return nil }
            t.puntAll = false
            return t
        }
        if let over { try? program.configure(over) }
    }
}
