import Configuration
import Netlink
import DNS64
import Foundation
import Packet
import SixBedFour
import Translator

extension Config {
    /// This config as it applies in the network namespace `namespace` (nil:
    /// the caller's). A namespace other than the host's keeps its state in
    /// `state_dir/netns/NAME`: two gateways on one host never share a prefix
    /// history, a pool or a lock, and `remove` in one leaves the other's.
    public func scoped(to namespace: String?) throws -> Config {
        withStateDir(try Self.stateDirectory(controller.stateDir, namespace: namespace))
    }

    /// The state directory of the namespace `namespace` under `stateDir`;
    /// an error for a `stateDir` everyone may write to.
    public static func stateDirectory(_ stateDir: String, namespace: String?) throws -> String {
        var st = stat()
        if stat(stateDir, &st) == 0, st.st_mode & S_IWOTH != 0 { throw StateDirError(path: stateDir) }
        guard let key = try NetworkNamespace.stateKey(namespace) else { return stateDir }
        return (stateDir as NSString).appendingPathComponent("netns/" + key)
    }

    /// What the translator is handed from the one config: the prefix, the
    /// mappings and the policies, nothing it would have to re-check.
    public var translatorSettings: TranslatorSettings {
        TranslatorSettings(
            prefix: prefix,
            eam: EAMTable(nat64.eam.map { EAMTable.Entry(ipv4: $0.ipv4, ipv6: $0.ipv6) }),
            own4: nat64.address4, own6: nat64.ownAddress6(prefix: prefix), rfc6791: nat64.rfc6791Pool,
            lowestIPv6MTU: nat64.lowestIPv6MTU, mtu: nat64.mtu, zeroChecksum: nat64.udpZeroChecksum,
            icmpErrorsPerSecond: nat64.icmpErrorsPerSecond)
    }

    /// The state file of the dynamic pool, in the controller's state directory.
    public var poolStateFile: String { (controller.stateDir as NSString).appendingPathComponent("pool4.state") }

    /// During a renumbering, which prefix each flow of the translator uses.
    public var flowStateFile: String { (controller.stateDir as NSString).appendingPathComponent("flows.state") }

    /// The dynamic pool, with the mappings a previous run left (also those
    /// of earlier ranges still kept, `retiring`).
    public func makePool(now: UInt64, retiring: [Retiring<IPv4Prefix>] = []) -> DynamicPool? {
        guard let range = nat64.pool4 else { return nil }
        let pool = DynamicPool(range: range, idleTimeout: UInt64(nat64.poolIdleTimeout.components.seconds),
                               stateFile: poolStateFile, reserved: Set([nat64.address4].compactMap { $0 }), retiring: retiring,
                               clientLimit: nat64.poolPerClient > 0
                                   ? DynamicPool.ClientLimit(addresses: nat64.poolPerClient, length: nat64.poolClientLength) : nil)
        pool.load(now: now)
        return pool
    }

    public var translatorQueues: Int { nat64.queues > 0 ? nat64.queues : onlineCPUs }

    var onlineCPUs: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
}

extension Config {
    /// What the DNS64 server is handed: the one prefix, and the access list in
    /// force (never "any" unless the config says so).
    public var dns64Settings: DNS64Settings {
        var s = DNS64Settings(prefix: prefix, exclude: dns64.exclude, allow: dns64Allow, listen: dns64.listen, upstreams: dns64.upstreams,
                              timeout: dns64.timeout, attempts: dns64.attempts, tcpIdleTimeout: dns64.tcpIdleTimeout,
                              ednsUDPSize: dns64.ednsUDPSize, answerPTR: dns64.answerPTR, cacheBytes: dns64.cacheSizeMB << 20,
                              threads: dns64.threads > 0 ? dns64.threads : onlineCPUs, udpSteering: dns64.udpSteering,
                              maxTTL: UInt32(dns64.maxTTL.components.seconds), trustUpstreamAD: dns64.trustUpstreamAD)
        s.localNames = localNames
        return s
    }
}

extension Config {
    /// What the 6bed4 router is handed; nil when it is not enabled. Its
    /// advertisements carry the one NAT64 prefix as PREF64.
    public var sixBedFourSettings: RouterSettings? {
        let s = sixbedfour
        guard s.enabled, let a = s.address4, let p = s.routerPrefix else { return nil }
        return RouterSettings(endpoint: UDPEndpoint(address: a, port: s.port), prefix: p.address.high,
                              advertisement: ND.Advertisement(prefix: p.address.high, routes: s.routes, pref64: prefix,
                                                              pref64Lifetime: Int(s.pref64Lifetime.components.seconds)),
                              rsPerSecond: s.rsPerSecond)
    }
}

/// A state directory everyone may write to (/tmp, say): anyone could plant
/// a prefix history or pool mappings that apply and the daemon then trust.
public struct StateDirError: Error, CustomStringConvertible {
    public let path: String
    public var description: String {
        "controller.state_dir: \(path) is writable by every user, who could forge sixgate's state there. "
            + "Use a directory only root can write, such as /var/lib/sixgate"
    }
}
