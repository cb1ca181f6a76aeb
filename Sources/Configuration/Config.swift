import DNS64
import Packet
import SixBedFour
import Translator

/// The one validated configuration. It is built only by `ConfigLoader`, which
/// refuses anything inconsistent, so everything handed a `Config` may trust it.
///
/// The NAT64 prefix is the single top-level `prefix`: the translator, DNS64 and
/// the 6bed4 router advertisements all read this field, and no section holds a copy.
public struct Config: Sendable, Equatable {
    /// Where the config came from, for messages.
    public internal(set) var source: String
    public internal(set) var prefix: NAT64Prefix
    public internal(set) var gateway: Gateway
    public internal(set) var nat64: NAT64
    public internal(set) var dns64: DNS64
    public internal(set) var sixbedfour: SixBedFour
    public internal(set) var controller: Controller
    public internal(set) var mux: [MuxEntry] = []
    public internal(set) var multiplexer = Multiplexer()

    public struct Gateway: Sendable, Equatable {
        /// The IPv4 uplink: masquerade target, and where 6bed4 peers arrive.
        public internal(set) var uplink4: String
        /// The IPv6-only side, where the clients are.
        public internal(set) var inside6: String
        /// The IPv6 client prefixes this gateway serves (forwarding, DNS64 ACL).
        public internal(set) var clients: [IPv6Prefix]
    }

    public struct EAMEntry: Sendable, Equatable {
        public internal(set) var ipv4: IPv4Prefix
        public internal(set) var ipv6: IPv6Prefix
        /// The DNS name `publish` gives the IPv4 side (a /32 only).
        public internal(set) var name: String?
    }

    public struct NAT64: Sendable, Equatable {
        public internal(set) var enabled = true
        public internal(set) var datapath = Datapath.auto
        /// The TUN device; it carries both families unless `device4` is set.
        public internal(set) var device = "sg-nat64"
        public internal(set) var device4: String?
        public internal(set) var mtu = 1500
        public internal(set) var lowestIPv6MTU = TranslatorDefaults.lowestIPv6MTU
        /// The translator's own addresses, sources of the errors it originates.
        public internal(set) var address4: IPv4Address?
        public internal(set) var address6: IPv6Address?
        /// Dynamic pool for stateful NAT64; nil means SIIT (EAM) only.
        public internal(set) var pool4: IPv4Prefix?
        public internal(set) var poolIdleTimeout = Duration.seconds(7200)
        /// Pool addresses per client (0: unlimited), a client being a prefix of `poolClientLength`.
        public internal(set) var poolPerClient = 4
        public internal(set) var poolClientLength = 64
        /// 0 means one queue per CPU.
        public internal(set) var queues = 0
        public internal(set) var udpZeroChecksum = ZeroChecksumPolicy.drop
        /// RFC 6791 source for ICMP errors from untranslatable IPv6 sources.
        public internal(set) var rfc6791Pool: IPv4Prefix?
        public internal(set) var icmpErrorsPerSecond = 100
        public internal(set) var eam: [EAMEntry] = []

        /// The source of translator-originated IPv6 errors: configured, or the
        /// prefix's image of `address4` (as Tayga derives it).
        public func ownAddress6(prefix: NAT64Prefix) -> IPv6Address? {
            address6 ?? address4.map(prefix.embed)
        }
    }

    public struct DNS64: Sendable, Equatable {
        public internal(set) var enabled = true
        public internal(set) var listen = [IPEndpoint(address: .v6(IPv6Address(high: 0, low: 0)), port: DNS64Defaults.port)]
        public internal(set) var upstreams: [IPEndpoint] = []
        /// nil: the gateway's client prefixes plus the 6bed4 prefix. Never "any".
        public internal(set) var allow: [IPPrefix]?
        public internal(set) var exclude = DNS64Defaults.exclusions
        public internal(set) var timeout = Duration.seconds(2)
        public internal(set) var attempts = 3
        public internal(set) var cacheSizeMB = 32
        public internal(set) var threads = 0
        public internal(set) var udpSteering = UDPSteering.cpu
        public internal(set) var tcpIdleTimeout = Duration.seconds(10)
        public internal(set) var ednsUDPSize = 1232
        public internal(set) var answerPTR = true
        public internal(set) var maxTTL = Duration.seconds(Int64(DNS64Defaults.maxTTL))
        public internal(set) var trustUpstreamAD = false
    }

    public struct SixBedFour: Sendable, Equatable {
        public internal(set) var enabled = false
        /// The router's public IPv4 address (the reference's `-l`).
        public internal(set) var address4: IPv4Address?
        public internal(set) var port = SixBedFourPrefix.defaultPort
        /// As configured; `routerPrefix` is its §4 completion to a /64.
        public internal(set) var prefix: IPv6Prefix?
        public internal(set) var netID = SixBedFourPrefix.defaultNetID
        public internal(set) var routerPrefix: IPv6Prefix?
        public internal(set) var device = "sg-6bed4"
        /// Extra prefixes announced in RAs (the reference's `-R`).
        public internal(set) var routes: [IPv6Prefix] = []
        public internal(set) var pref64Lifetime = Duration.seconds(1800)
        public internal(set) var rsPerSecond = 2
        /// The DNS name `publish` gives the router's address, P:: (spec §3.3).
        public internal(set) var publish: String?
    }

    public struct Controller: Sendable, Equatable {
        /// Marks the routes the controller owns (see README).
        public internal(set) var routeProtocol = defaultRouteProtocol
        public static let defaultRouteProtocol = 164
        public internal(set) var manageForwarding = true
        public internal(set) var stateDir = "/var/lib/sixgate"
        /// Where the kernel datapath's program and maps are pinned (bpffs).
        public internal(set) var bpfDir = "/sys/fs/bpf"
        public internal(set) var controlSocket = "/run/sixgate/control.sock"
        /// Prometheus endpoint; nil keeps it off.
        public internal(set) var metrics: IPEndpoint?
        public internal(set) var logLevel = LogLevel.info
    }

    public enum LogLevel: String, CaseIterable, Sendable {
        case debug, info, notice, warning, error
    }
}

extension Config.Controller {
    /// Routing protocol numbers of rtnetlink.h and iproute2's rt_protos.
    public static let knownRouteProtocols: [Int: String] = [
        8: "gated", 9: "ra (router advertisements)", 10: "mrt", 11: "zebra", 12: "bird", 13: "dnrouted", 14: "xorp",
        15: "ntk", 16: "dhcp", 17: "mrouted", 18: "keepalived", 42: "babel", 99: "openr", 186: "bgp", 187: "isis",
        188: "ospf", 189: "rip", 192: "eigrp",
    ]
}

extension Config {
    /// This config with its state kept in `stateDir` (the controller scopes
    /// it to a network namespace).
    public func withStateDir(_ stateDir: String) -> Config {
        var c = self
        c.controller.stateDir = stateDir
        return c
    }
}

extension Config {
    /// The DNS64 access list in force: the configured one, or the networks this
    /// gateway serves, so that the DNS64 is never an open resolver by default.
    public var dns64Allow: [IPPrefix] {
        if let allow = dns64.allow { return allow }
        var nets = gateway.clients.map(IPPrefix.v6)
        if sixbedfour.enabled, let p = sixbedfour.routerPrefix { nets.append(.v6(p)) }
        return nets
    }
}
