import Configuration
import Nftables
import Foundation
import Packet

/// The nftables table a config implies. A pure function of the config: the same
/// config always gives the same table, printable without root (`plan`, the
/// golden files in nft/) and comparable with what the kernel holds (`audit`).
public enum DesiredTable {
    public static let name = "sixgate"

    /// The table's comment also records the routing protocol number, so that a
    /// change of `controller.route_protocol` still finds the routes of the old one.
    static func comment(routeProtocol: Int) -> String {
        "sixgate: managed by sixgatectl; its routes carry protocol \(routeProtocol); hand edits are reverted by apply"
    }

    static func routeProtocol(inComment comment: String?) -> UInt8? {
        guard let c = comment, let r = c.range(of: "routes carry protocol ") else { return nil }
        return UInt8(c[r.upperBound...].prefix { $0.isNumber })
    }

    /// `retiring`, `retiringPools`: older prefixes and pools during a
    /// renumbering, which keep the rules of their kind (anti-spoofing, who
    /// may use the translator, replies and masquerade) until they go.
    public static func table(for config: Config, retiring: [NAT64Prefix] = [], retiringPools: [IPv4Prefix] = []) -> NftTable {
        var t = NftTable(name: name, comment: comment(routeProtocol: config.controller.routeProtocol))
        var specs: [(chain: String, spec: RuleSpec)] = []
        let nat = config.nat64, sbf = config.sixbedfour
        let dev6 = nat.device, dev4 = nat.device4 ?? nat.device
        let sixbedfourPrefix = sbf.enabled ? sbf.routerPrefix : nil

        // Sets hold what can grow large (client lists, mappings), so a config with
        // thousands of entries is still a handful of rules.
        var clients = config.gateway.clients.map(IPPrefix.v6)
        if let p = sixbedfourPrefix { clients.append(.v6(p)) }
        let eam4 = nat.eam.map { IPPrefix.v4($0.ipv4) }
        let eam6 = nat.eam.map { IPPrefix.v6($0.ipv6) }
        let allow6 = config.dns64Allow.filter { if case .v6 = $0 { true } else { false } }
        let allow4 = config.dns64Allow.filter { if case .v4 = $0 { true } else { false } }

        // Anti-spoofing, before conntrack sees the packet.
        let prefixes = ([config.prefix] + retiring).map { IPPrefix.v6($0.prefix) }
        let pools = nat.enabled ? [nat.pool4].compactMap { $0 } + retiringPools : []
        if nat.enabled {
            for prefix in prefixes {
                specs.append(("prerouting", RuleSpec([.iifname(dev6, equal: false), .saddr(prefix)], counter: "spoofed_nat64_prefix", .drop,
                                                     comment: "only the translator sends from the NAT64 prefix")))
            }
            for pool in pools {
                specs.append(("prerouting", RuleSpec([.iifname(dev4, equal: false), .saddr(.v4(pool))], counter: "spoofed_pool4", .drop,
                                                     comment: "only the translator sends from the dynamic pool")))
            }
            if !eam4.isEmpty {
                specs.append(("prerouting", RuleSpec([.iifname(dev4, equal: false), .saddrIn(set: "eam4", .ipv4)], counter: "spoofed_eam4", .drop,
                                                     comment: "mapped IPv4 addresses belong to IPv6 servers behind the translator")))
            }
        }
        if let p = sixbedfourPrefix {
            specs.append(("prerouting", RuleSpec([.iifname(sbf.device, equal: false), .saddr(.v6(p))], counter: "spoofed_6bed4", .drop,
                                                 comment: "only 6bed4 peers send from the 6bed4 prefix")))
        }

        // Services on the gateway itself.
        if config.dns64.enabled {
            let ports = Array(Set(config.dns64.listen.map(\.port))).sorted()
            for port in ports {
                for proto in [RuleSpec.Transport.udp, .tcp] {
                    if !allow6.isEmpty {
                        specs.append(("input", RuleSpec([.dport(proto, port), .saddrIn(set: "dns64_allow6", .ipv6)], counter: "dns64_allowed", .accept,
                                                        comment: "DNS64 answers its clients (dns64.allow)")))
                    }
                    if !allow4.isEmpty {
                        specs.append(("input", RuleSpec([.dport(proto, port), .saddrIn(set: "dns64_allow4", .ipv4)], counter: "dns64_allowed", .accept,
                                                        comment: "DNS64 answers its clients (dns64.allow)")))
                    }
                    specs.append(("input", RuleSpec([.dport(proto, port), .iifname("lo", equal: false)], counter: "dns64_refused", .drop,
                                                    comment: "DNS64 is not an open resolver: other sources are dropped")))
                }
            }
        }
        if sbf.enabled, let a = sbf.address4 {
            specs.append(("input", RuleSpec([.dport(.udp, sbf.port), .daddr(IPPrefix(host: .v4(a)))], counter: "sixbedfour_udp", .accept,
                                            comment: "6bed4 peers reach the router over UDP")))
        }

        // What the gateway routes for the translator.
        if nat.enabled {
            for prefix in prefixes {
                specs.append(("forward", RuleSpec([.oifname(dev6), .daddr(prefix), .saddrIn(set: "clients6", .ipv6)], counter: "nat64_clients", .accept,
                                                  comment: "the gateway's clients use the NAT64")))
                if !eam4.isEmpty {
                    specs.append(("forward", RuleSpec([.oifname(dev6), .daddr(prefix), .saddrIn(set: "eam6", .ipv6)], counter: "eam_outbound", .accept,
                                                      comment: "mapped IPv6 servers answer and reach IPv4 with their mapped addresses")))
                }
                if config.mux.contains(where: config.routedInKernel) {
                    specs.append(("forward", RuleSpec([.oifname(dev6), .daddr(prefix), .ctStatusDNAT], counter: "mux_kernel_answers", .accept,
                                                      comment: "backends answer the clients that a tcp [[mux]] sent them in the kernel")))
                }
                specs.append(("forward", RuleSpec([.oifname(dev6), .daddr(prefix)], counter: "nat64_refused", .drop,
                                                  comment: "the NAT64 serves only the gateway's clients: it is not an open translator")))
            }
            if !eam4.isEmpty {
                specs.append(("forward", RuleSpec([.oifname(dev4), .daddrIn(set: "eam4", .ipv4)], counter: "eam_inbound", .accept,
                                                  comment: "IPv4 clients reach IPv6-only servers through the mappings")))
            }
            for pool in pools {
                specs.append(("forward", RuleSpec([.oifname(dev4), .daddr(.v4(pool)), .ctStateEstablishedOrRelated], counter: "pool4_return", .accept,
                                                  comment: "replies to flows of IPv6 clients")))
                specs.append(("forward", RuleSpec([.oifname(dev4), .daddr(.v4(pool))], counter: "pool4_unsolicited", .drop,
                                                  comment: "nothing reaches the dynamic pool unasked")))
            }
            for dev in Set([dev6, dev4]).sorted() {
                specs.append(("forward", RuleSpec([.iifname(dev)], counter: "nat64_translated", .accept,
                                                  comment: "translated packets leave the translator")))
            }
        }
        if sbf.enabled {
            specs.append(("forward", RuleSpec([.iifname(sbf.device)], counter: "sixbedfour_forwarded", .accept,
                                              comment: "6bed4 peers reach IPv6 and the NAT64")))
        }
        for pool in pools {
            specs.append(("postrouting", RuleSpec([.oifname(config.gateway.uplink4), .saddr(.v4(pool))], counter: "pool4_masquerade", .masquerade,
                                                  comment: "stateful NAT64: pool addresses leave as the uplink's address")))
        }

        if !config.mux.isEmpty {
            for m in config.mux {
                let daddr = IPPrefix(host: config.accepting(m).address)
                if config.routedInKernel(m), let backend = m.fallback, case .v6(let b) = backend.address {
                    // After the translator: no proxy in the path.
                    specs.append(("mux_dnat", RuleSpec([.daddr(daddr), .dport(.tcp, m.listen.port)], counter: "mux_kernel_connections",
                                                       .dnat(b, port: backend.port),
                                                       comment: "[[mux]] \(m.listen): in the kernel, to its backend")))
                } else {
                    specs.append(("input", RuleSpec([.dport(.tcp, m.listen.port), .daddr(daddr)], counter: "mux_connections", .accept,
                                                    comment: "[[mux]] \(m.listen): connections to the multiplexer")))
                }
            }
            if config.muxRelays {
                specs.append(("mux", RuleSpec([.l4proto(.tcp), .daddr(.v6(config.prefix.prefix)), .socketTransparent], counter: "mux_answers",
                                              .setMark(config.multiplexer.mark),
                                              comment: "backends' answers to the multiplexer: the mark's routing table delivers them to its sockets, "
                                                  + "not to the translator")))
            }
        }

        var chains = [
            NftChain(name: "prerouting", kind: .filter, hook: .prerouting, priority: -300, policy: .accept, comment: "anti-spoofing"),
            NftChain(name: "mux", kind: .filter, hook: .prerouting, priority: -150, policy: .accept, comment: "the multiplexer's transparent sockets"),
            NftChain(name: "mux_dnat", kind: .nat, hook: .prerouting, priority: -100, policy: .accept,
                     comment: "tcp [[mux]] entries on translated addresses, after the translator"),
            NftChain(name: "input", kind: .filter, hook: .input, priority: 0, policy: .accept, comment: "services on the gateway"),
            NftChain(name: "forward", kind: .filter, hook: .forward, priority: 0, policy: .accept, comment: "translated and 6bed4 traffic"),
            NftChain(name: "postrouting", kind: .nat, hook: .postrouting, priority: 100, policy: .accept, comment: "masquerade of the dynamic pool"),
        ]
        for i in chains.indices {
            chains[i].rules = specs.filter { $0.chain == chains[i].name }.map(\.spec.rule)
        }
        t.chains = chains.filter { !$0.rules.isEmpty }

        var seen = Set<String>()
        for s in specs.map(\.spec) {
            if let c = s.counter, seen.insert(c).inserted { t.counters.append(NftCounter(name: c, comment: s.comment)) }
        }
        let used = Set(specs.flatMap(\.spec.matches).compactMap { m -> String? in
            switch m {
            case .saddrIn(let s, _), .daddrIn(let s, _): s
            default: nil
            }
        })
        let sets = [
            NftSet(name: "clients6", keyType: .ipv6, comment: "gateway.clients and the 6bed4 prefix", elements: clients),
            NftSet(name: "dns64_allow6", keyType: .ipv6, comment: "dns64.allow, IPv6", elements: allow6),
            NftSet(name: "dns64_allow4", keyType: .ipv4, comment: "dns64.allow, IPv4", elements: allow4),
            NftSet(name: "eam4", keyType: .ipv4, comment: "IPv4 sides of nat64.eam", elements: eam4),
            NftSet(name: "eam6", keyType: .ipv6, comment: "IPv6 sides of nat64.eam", elements: eam6),
        ]
        t.sets = sets.filter { used.contains($0.name) }
        return t
    }
}
