import Configuration
import Nftables
import Netlink
import Packet
import TCBPF

/// What the controller observes before it decides: the links and addresses of
/// the namespace it manages.
public struct Environment: Sendable, Equatable {
    public var links: [LinkInfo]
    public var addresses: [InterfaceAddress]

    public init(links: [LinkInfo], addresses: [InterfaceAddress]) {
        self.links = links
        self.addresses = addresses
    }

    public func link(_ name: String) -> LinkInfo? { links.first { $0.name == name } }
}

/// A TUN device the controller creates and keeps up.
public struct DesiredLink: Sendable, Equatable, Codable {
    public var name: String
    public var mtu: Int
    public var multiQueue: Bool
}

public struct SysctlSetting: Sendable, Equatable, Codable {
    public var key: String
    public var value: String
}

public enum DesiredStateError: Error, Sendable, Equatable, CustomStringConvertible {
    case missingInterface(key: String, name: String)
    case foreignLink(key: String, name: String, kind: String)

    public var key: String {
        switch self {
        case .missingInterface(let key, _), .foreignLink(let key, _, _): key
        }
    }

    /// What is wrong, in the namespace `namespace` (nil: the current one).
    public func problem(in namespace: String?) -> String {
        let place = namespace.map { "in network namespace \($0)" } ?? "here"
        return switch self {
        case .missingInterface(_, let name): "interface \"\(name)\" does not exist \(place)"
        case .foreignLink(_, let name, let kind):
            "\"\(name)\" already exists \(place) as a \(kind) device that sixgate did not create (it has no alias \"sixgate\")"
        }
    }

    public func fix(in namespace: String?) -> String {
        switch self {
        case .missingInterface: "Name an existing interface (see `ip\(namespace.map { " -n \($0)" } ?? "") link`), or create it first"
        case .foreignLink: "Choose another name, or delete the device if it is a leftover"
        }
    }

    public var description: String { "\(key): \(problem(in: nil)). \(fix(in: nil))" }
}

/// Everything the kernel must hold for a config: a pure function of the config
/// and the observed environment, so it can be computed and printed without root.
public struct DesiredState: Sendable, Equatable {
    /// The alias that marks links sixgate created, so that it removes only those.
    public static let linkAlias = "sixgate"
    /// The transmit queue of a TUN device is where packets wait for the
    /// userspace reader. The kernel's 500 is used up in 2 ms at 250,000
    /// packets per second, less than a reader may wait for a CPU on a busy
    /// gateway; 2000 rides that out, at the price of at most 2000 packets of
    /// delay when the reader cannot keep up at all.
    public static let tunQueueLength = 2000

    public var table: NftTable
    public var links: [DesiredLink]
    public var addresses: [InterfaceAddress]
    public var routes: [OwnedRoute]
    /// The multiplexer's: its public addresses (in the kernel's local table)
    /// and the table its backends' answers look up.
    public var localRoutes: [OwnedLocalRoute]
    public var rules: [OwnedRule]
    public var sysctls: [SysctlSetting]
    public var routeProtocol: UInt8
    /// The kernel datapath's program, unless `nat64.datapath` is `tun`.
    public var kernelPath: KernelPathWish?

    public static func isOwned(_ link: LinkInfo) -> Bool { link.kind == "tun" && link.alias == linkAlias }

    /// `retiring`, `retiringPools`: older prefixes and pools still owed to
    /// clients (`PrefixHistory`); they keep their routes and rules beside
    /// the config's.
    public init(config: Config, environment: Environment, retiring: [NAT64Prefix] = [], retiringPools: [IPv4Prefix] = []) throws(DesiredStateError) {
        for (key, name) in [("gateway.uplink4", config.gateway.uplink4), ("gateway.inside6", config.gateway.inside6)] where environment.link(name) == nil {
            throw .missingInterface(key: key, name: name)
        }
        let nat = config.nat64, sbf = config.sixbedfour
        let dev4 = nat.device4 ?? nat.device
        var links: [(key: String, link: DesiredLink)] = []
        var routes: [OwnedRoute] = []
        var addresses: [InterfaceAddress] = []
        var sysctls: [SysctlSetting] = []
        // IPv4 and IPv6 routes as `ip route add` makes them: the kernel stores an
        // IPv6 metric of 0 as 1024, so 1024 is what is asked for.
        func route(_ p: IPPrefix, _ dev: String) -> OwnedRoute {
            OwnedRoute(destination: p, device: dev, metric: { if case .v4 = p { 0 } else { 1024 } }())
        }

        if nat.enabled {
            links.append(("nat64.device", DesiredLink(name: nat.device, mtu: nat.mtu, multiQueue: true)))
            if let d = nat.device4 { links.append(("nat64.device4", DesiredLink(name: d, mtu: nat.mtu, multiQueue: true))) }
            for p in [config.prefix] + retiring { routes.append(route(.v6(p.prefix), nat.device)) }
            for pool in [nat.pool4].compactMap({ $0 }) + retiringPools { routes.append(route(.v4(pool), dev4)) }
            // Mappings are routed as merged blocks: thousands of adjacent /32s
            // become a few routes.
            for p in IntervalMath.normalize(nat.eam.map { .v4($0.ipv4) }) { routes.append(route(p, dev4)) }
            if config.controller.manageForwarding {
                sysctls.append(SysctlSetting(key: "net.ipv4.conf.\(config.gateway.uplink4).forwarding", value: "1"))
                sysctls.append(SysctlSetting(key: "net.ipv4.conf.\(dev4).forwarding", value: "1"))
            }
        }
        if sbf.enabled, let p = sbf.routerPrefix {
            links.append(("sixbedfour.device", DesiredLink(name: sbf.device, mtu: 1280, multiQueue: false)))
            routes.append(route(.v6(p), sbf.device))
            // The router's own addresses (6bed4 spec §3.3): P:: answers pings, fe80:: sources RAs.
            addresses.append(InterfaceAddress(device: sbf.device, address: .v6(p.address), length: 128))
            addresses.append(InterfaceAddress(device: sbf.device, address: .v6(IPv6Address(high: 0xFE80_0000_0000_0000, low: 0)), length: 128))
        }
        if config.controller.manageForwarding, nat.enabled || sbf.enabled {
            // IPv6 forwards only when the "all" switch is on; IPv4 per input interface.
            sysctls.insert(SysctlSetting(key: "net.ipv6.conf.all.forwarding", value: "1"), at: 0)
        }
        for (key, l) in links {
            // Only links sixgate marked are its own; a TUN device of another
            // program (tayga, a VPN) with the same name is never taken over.
            if let existing = environment.link(l.name), !Self.isOwned(existing) {
                throw .foreignLink(key: key, name: l.name, kind: existing.kind ?? "physical")
            }
        }
        var localRoutes: [OwnedLocalRoute] = [], rules: [OwnedRule] = []
        if !config.mux.isEmpty {
            // A local route, not an address: the kernel answers ARP for it and
            // delivers it, and it is sixgate's by its protocol number.
            // A translated address arrives as its IPv6 side, which the gateway takes.
            for p in IntervalMath.normalize(config.mux.map { IPPrefix(host: config.accepting($0).address) }) {
                localRoutes.append(OwnedLocalRoute(destination: p, table: OwnedLocalRoute.localTable))
            }
            if config.muxRelays {
                let m = config.multiplexer
                localRoutes.append(OwnedLocalRoute(destination: .v6(IPv6Prefix(address: IPv6Address(high: 0, low: 0), length: 0)), table: m.table))
                rules.append(OwnedRule(ipv6: true, mark: m.mark, table: m.table, priority: OwnedRule.muxPriority))
            }
        }
        self.localRoutes = localRoutes
        self.rules = rules
        self.table = DesiredTable.table(for: config, retiring: retiring, retiringPools: retiringPools)
        self.links = links.map(\.link)
        self.addresses = addresses
        self.routes = routes
        self.sysctls = sysctls.reduce(into: []) { if !$0.contains($1) { $0.append($1) } }
        self.routeProtocol = UInt8(config.controller.routeProtocol)
        self.kernelPath = nat.enabled && nat.datapath != .tun
            ? KernelPathWish(datapath: nat.datapath, devices: [nat.device] + (nat.device4.map { [$0] } ?? []), prefix: config.prefix,
                             eam: Set(nat.eam.map { NAT64Maps.Mapping(ipv4: $0.ipv4, ipv6: $0.ipv6) }), lowestIPv6MTU: nat.lowestIPv6MTU,
                             puntAll: !retiring.isEmpty)
            : nil
    }
}
