import DNS64
import Foundation
import Packet
import SixBedFour
import Translator

extension Config {
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
                               stateFile: poolStateFile, reserved: Set([nat64.address4].compactMap { $0 }), retiring: retiring)
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
        DNS64Settings(prefix: prefix, exclude: dns64.exclude, allow: dns64Allow, listen: dns64.listen, upstreams: dns64.upstreams,
                      timeout: dns64.timeout, attempts: dns64.attempts, tcpIdleTimeout: dns64.tcpIdleTimeout,
                      ednsUDPSize: dns64.ednsUDPSize, answerPTR: dns64.answerPTR, cacheBytes: dns64.cacheSizeMB << 20,
                      threads: dns64.threads > 0 ? dns64.threads : onlineCPUs, udpSteering: dns64.udpSteering,
                      maxTTL: UInt32(dns64.maxTTL.components.seconds), trustUpstreamAD: dns64.trustUpstreamAD)
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
