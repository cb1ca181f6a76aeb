import Glibc
import Packet
import TCBPF
import Translator

/// The datapath that `nat64.datapath` asks for, and why it is the one.
public struct DatapathChoice: Sendable {
    public let datapath: any TranslatorDatapath
    /// For `status`: "nat64.datapath = auto: …".
    public let why: String
}

/// Where a datapath runs: what every implementation is handed.
public struct DatapathSetup: Sendable {
    public var settings: TranslatorSettings
    public var pool: DynamicPool?
    public var flows: PrefixFlows?
    public var device: String
    public var device4: String?
    public var queues: Int
    /// Where `sixgatectl apply` pinned the kernel datapath's program and maps.
    public var pins: String

    /// The device(s) the program is attached to.
    var devices: [String] { [device] + (device4.map { [$0] } ?? []) }

    public init(settings: TranslatorSettings, pool: DynamicPool?, flows: PrefixFlows?, device: String, device4: String?, queues: Int, pins: String) {
        self.pins = pins
        self.settings = settings
        self.pool = pool
        self.flows = flows
        self.device = device
        self.device4 = device4
        self.queues = queues
    }
}

public enum DatapathFactory {
    /// Makes and starts the datapath `wanted` names: `tun`, the userspace
    /// translator; `kernel`, the kernel path, or an error that says why it
    /// cannot run; `auto`, the kernel path when it can run, else `tun`.
    public static func start(_ wanted: Datapath, _ setup: DatapathSetup) throws(DatapathError) -> DatapathChoice {
        let tun = { () throws(DatapathError) -> TunDatapath in
            // A program left attached (the daemon cannot use it: no CAP_BPF,
            // say) would go on translating with pool maps nobody keeps.
            for d in setup.devices {
                let i = Int32(bitPattern: if_nametoindex(d))
                if i > 0 { NAT64Program.detach(ifindex: i) }
            }
            let d = TunDatapath(setup)
            try d.start()
            return d
        }
        switch wanted {
        case .tun:
            return DatapathChoice(datapath: try tun(), why: "nat64.datapath = tun")
        case .kernel:
            do {
                return DatapathChoice(datapath: try kernel(setup), why: "nat64.datapath = kernel")
            } catch {
                throw DatapathError("nat64.datapath = kernel, and \(error.reason)")
            }
        case .auto:
            do {
                return DatapathChoice(datapath: try kernel(setup), why: "nat64.datapath = auto, and the tc-BPF program is attached")
            } catch {
                return DatapathChoice(datapath: try tun(), why: "nat64.datapath = auto, and \(error.reason)")
            }
        }
    }

    static func kernel(_ setup: DatapathSetup) throws(DatapathError) -> KernelDatapath {
        do {
            let d = try KernelDatapath(setup)
            try d.start()
            return d
        } catch {
            throw DatapathError("the kernel datapath cannot run: \(error.reason)")
        }
    }
}
