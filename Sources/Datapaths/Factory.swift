import Packet
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

    public init(settings: TranslatorSettings, pool: DynamicPool?, flows: PrefixFlows?, device: String, device4: String?, queues: Int) {
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
            // A program an earlier sixgated left attached across a reload
            // would go on translating with maps nobody keeps.
            KernelDatapath.detach(setup)
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
                return DatapathChoice(datapath: try kernel(setup), why: "nat64.datapath = auto, and the tc-BPF program loaded and attached")
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
