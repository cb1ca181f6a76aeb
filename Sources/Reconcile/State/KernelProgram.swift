import Common
import Netlink
import Foundation
import Glibc
import Packet
import TCBPF
import Translator

/// What the kernel datapath needs of the controller for a config: the
/// program on the egress of these devices, told this.
public struct KernelPathWish: Sendable, Equatable {
    /// `kernel` or `auto`: whether a program that cannot load is an error.
    public var datapath: Datapath
    /// The translator's device, then its IPv4 device when it has one.
    public var devices: [String]
    public var prefix: NAT64Prefix
    public var eam: Set<NAT64Maps.Mapping>
    public var lowestIPv6MTU: Int
    /// A renumbering runs: every packet is the userspace translator's, which
    /// knows which prefix each flow keeps (the apply at its end clears it).
    public var puntAll: Bool

    /// The maps' settings, with the devices' indexes from `links`; nil while
    /// a device is still to be created.
    func settings(_ links: [LinkInfo]) -> NAT64Maps.Settings? {
        let indexes = devices.compactMap { d in links.first { $0.name == d }?.index }
        guard indexes.count == devices.count, let index6 = indexes.first, let index4 = indexes.last else { return nil }
        return NAT64Maps.Settings(prefix: prefix, eam: eam, ifindex6: index6, ifindex4: index4, lowestIPv6MTU: lowestIPv6MTU, puntAll: puntAll)
    }
}

/// The kernel datapath as the controller owns it, like the nftables table:
/// the program and its maps pinned in bpffs, its filter on the egress of the
/// translator's devices, and what the maps are told (the prefix, the EAM,
/// the devices). The pool maps' contents are the daemon's.
public struct KernelProgramPlan: Sendable {
    /// Where the program and the maps are pinned.
    public let directory: String
    let bpfDir: String
    let wish: KernelPathWish?
    /// Why `auto` leaves the kernel datapath out, when it does.
    public let note: String?
    /// Load the program (again), keeping the pinned maps that fit it.
    let load: Bool
    let configure: Bool
    let attach: [String]
    let drift: [Drift]

    static let filter = "egress filter handle 0x5147"

    /// Compares what the kernel holds with `wish` (nil: none of it is
    /// wanted). `inNamespace` runs the tc queries in the managed namespace.
    static func make(_ wish: KernelPathWish?, directory: String, bpfDir: String, links: [LinkInfo],
                     inNamespace: (() throws -> Void) throws -> Void) throws -> KernelProgramPlan {
        var wish = wish, note: String?
        var expected: String?
        if let w = wish {
            do {
                expected = try NAT64Program.trialTag()
            } catch {
                guard w.datapath == .auto else { throw KernelProgramError(reason: "nat64.datapath = kernel, but the tc-BPF program cannot run here: \(error)") }
                note = "nat64.datapath = auto, and the tc-BPF program cannot run here (\(error)): the userspace translator carries everything"
                wish = nil
            }
        }
        var attached: [String: UInt32] = [:]
        try inNamespace {
            for l in links { if let id = NAT64Program.attached(ifindex: l.index) { attached[l.name] = id } }
        }
        guard let wish, let expected else {
            var drift: [Drift] = []
            let detach = links.filter { DesiredState.isOwned($0) && attached[$0.name] != nil }
            for l in detach { drift.append(Drift(.bpf, .extra, "\(l.name) \(filter)")) }
            let unpin = FileManager.default.fileExists(atPath: directory)
            if unpin { drift.append(Drift(.bpf, .extra, "pins \(directory)")) }
            return KernelProgramPlan(directory: directory, bpfDir: bpfDir, wish: nil, note: note, load: false, configure: false,
                                     attach: [], drift: drift)
        }

        var drift: [Drift] = []
        let pinned = try NAT64Program.pinned(in: directory)
        let maps = try? NAT64Maps(pinnedIn: directory)
        var load = false
        if let pinned {
            if pinned.tag != expected {
                drift.append(Drift(.bpf, .changed, "program \(directory)/\(NAT64Program.programPin)", "tag \(pinned.tag), this sixgate's is \(expected)"))
                load = true
            }
        } else {
            drift.append(Drift(.bpf, .missing, "program \(directory)/\(NAT64Program.programPin)", "load, pin and attach the tc-BPF translator"))
            load = true
        }
        if maps == nil, !load {
            drift.append(Drift(.bpf, .missing, "maps in \(directory)"))
            load = true
        }
        var configure = load
        if let maps, let want = wish.settings(links) {
            if let live = maps.settings() {
                let wrong = live.differences(from: want)
                if !wrong.isEmpty { drift.append(Drift(.bpf, .changed, "map config", wrong.joined(separator: "; "))) }
                for m in want.eam.subtracting(live.eam).sorted(by: { $0.description < $1.description }) { drift.append(Drift(.bpf, .missing, "eam \(m)")) }
                for m in live.eam.subtracting(want.eam).sorted(by: { $0.description < $1.description }) { drift.append(Drift(.bpf, .extra, "eam \(m)")) }
                configure = configure || !wrong.isEmpty || live.eam != want.eam
            } else {
                drift.append(Drift(.bpf, .missing, "map config", "prefix \(want.prefix), \(want.eam.count) EAM(s)"))
                configure = true
            }
        } else {
            configure = true
        }
        var attach: [String] = []
        for device in wish.devices {
            switch attached[device] {
            case nil:
                if !load { drift.append(Drift(.bpf, .missing, "\(device) \(filter)", "tc filter of the pinned program")) }
                attach.append(device)
            case let id? where id != pinned?.id:
                if !load { drift.append(Drift(.bpf, .changed, "\(device) \(filter)", "runs program id \(id), not the pinned one (id \(pinned?.id ?? 0))")) }
                attach.append(device)
            default:
                if load { attach.append(device) }
            }
        }
        return KernelProgramPlan(directory: directory, bpfDir: bpfDir, wish: wish, note: note, load: load, configure: configure,
                                 attach: attach, drift: drift)
    }

    /// Makes the kernel hold the plan: the program and its maps pinned, the
    /// maps told, then the filters. `links` are those that exist now.
    func apply(links: [LinkInfo], inNamespace: (() throws -> Void) throws -> Void) throws {
        guard let wish else {
            _ = try Self.remove(directory: directory, links: links, inNamespace: inNamespace)
            return
        }
        guard load || configure || !attach.isEmpty else { return }
        try NAT64Program.mountBPFFS(bpfDir)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        // Its pins hold the program and the maps once this object is gone.
        if load { try NAT64Program(reusingMapsIn: directory).pin(in: directory) }
        let maps = try NAT64Maps(pinnedIn: directory)
        guard let settings = wish.settings(links) else {
            throw KernelProgramError(reason: "the devices \(wish.devices.joined(separator: ", ")) are not there to attach to")
        }
        if configure { try maps.configure(settings) }
        let indexes = attach.compactMap { d in links.first { $0.name == d }?.index }
        try inNamespace { try NAT64Program.attachPinned(in: directory, ifindexes: indexes) }
    }

    /// `<bpf_dir>/sixgate/<netns inode>-<hash of state_dir>`: two gateways
    /// in two namespaces, or in one with two state directories, never share
    /// a map.
    public static func directory(bpfDir: String, stateDir: String, namespace: String?) throws -> String {
        var st = stat()
        let ns = namespace.map(NetworkNamespace.path) ?? "/proc/thread-self/ns/net"
        guard stat(ns, &st) == 0 else { throw SystemError("stat \(ns)") }
        var hash: UInt32 = 2_166_136_261
        for b in URL(fileURLWithPath: stateDir).standardizedFileURL.path.utf8 { hash = (hash ^ UInt32(b)) &* 16_777_619 }
        return "\(bpfDir)/sixgate/\(st.st_ino)-\(String(format: "%08x", hash))"
    }

    /// Removes the filters from `links` and the pins, and says what went.
    static func remove(directory: String, links: [LinkInfo], inNamespace: (() throws -> Void) throws -> Void) throws -> [Drift] {
        var removed: [Drift] = []
        try inNamespace {
            for l in links where DesiredState.isOwned(l) && NAT64Program.attached(ifindex: l.index) != nil {
                NAT64Program.detach(ifindex: l.index)
                removed.append(Drift(.bpf, .extra, "\(l.name) \(filter)"))
            }
        }
        if FileManager.default.fileExists(atPath: directory) {
            try FileManager.default.removeItem(atPath: directory)
            removed.append(Drift(.bpf, .extra, "pins \(directory)"))
        }
        // sixgate's directory in bpf_dir goes with its last gateway.
        rmdir((directory as NSString).deletingLastPathComponent)
        return removed
    }
}

public struct KernelProgramError: Error, Sendable, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }
}
