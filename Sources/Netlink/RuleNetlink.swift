import CNetlink
import Glibc
import Packet

/// A policy routing rule sixgate owns: packets of `family` carrying `mark`
/// look up `table` first. The multiplexer's rule sends its backends'
/// answers, marked by nftables as belonging to its transparent sockets, to a
/// table whose only route makes them local.
public struct OwnedRule: Sendable, Hashable, Codable, CustomStringConvertible {
    public var ipv6: Bool
    public var mark: UInt32
    public var table: UInt32
    /// Lower runs first; the main table's rule is 32766.
    public var priority: UInt32

    public init(ipv6: Bool, mark: UInt32, table: UInt32, priority: UInt32) {
        self.ipv6 = ipv6
        self.mark = mark
        self.table = table
        self.priority = priority
    }

    /// Before the main table's rule (32766), after the local table's (0).
    public static let muxPriority: UInt32 = 1000

    public var description: String { "\(ipv6 ? "-6" : "-4") rule priority \(priority) fwmark 0x\(String(mark, radix: 16)) lookup \(table)" }
}

/// A `local` route in a table of sixgate's own: what looks the table up is
/// delivered to this host, through `lo`.
public struct OwnedLocalRoute: Sendable, Hashable, Codable, CustomStringConvertible {
    public var destination: IPPrefix
    public var table: UInt32

    public init(destination: IPPrefix, table: UInt32) {
        self.destination = destination
        self.table = table
    }

    /// The kernel's table of local addresses.
    public static let localTable: UInt32 = 255

    public var description: String { "local \(destination) dev lo table \(table == Self.localTable ? "local" : "\(table)")" }
}

extension RouteNetlink {
    // MARK: - Rules

    /// The rules of both families carrying `protocol` (FRA_PROTOCOL); rules
    /// of other owners never appear.
    public func rules(protocol proto: UInt8) throws -> [OwnedRule] {
        var cache: OpaquePointer?
        let rc = rtnl_rule_alloc_cache(socket, AF_UNSPEC, &cache)
        guard rc >= 0, let cache else { throw netlinkError("list rules", rc) }
        defer { nl_cache_free(cache) }
        var result: [OwnedRule] = []
        var object = nl_cache_get_first(cache)
        while let rule = object {
            object = nl_cache_get_next(rule)
            var owner: UInt8 = 0
            guard rtnl_rule_get_protocol(rule, &owner) == 0, owner == proto else { continue }
            result.append(OwnedRule(ipv6: rtnl_rule_get_family(rule) == AF_INET6, mark: rtnl_rule_get_mark(rule),
                                    table: rtnl_rule_get_table(rule), priority: rtnl_rule_get_prio(rule)))
        }
        return result
    }

    /// Adds the rule (EEXIST when the same rule is there), or deletes
    /// exactly it, its protocol included.
    public func addRule(_ r: OwnedRule, protocol proto: UInt8) throws { try change(rule: r, proto, add: true) }
    public func deleteRule(_ r: OwnedRule, protocol proto: UInt8) throws { try change(rule: r, proto, add: false) }

    private func change(rule r: OwnedRule, _ proto: UInt8, add: Bool) throws {
        let operation = "\(add ? "add" : "delete") \(r) proto \(proto)"
        let rule = try makeRule(r, protocol: proto, operation: operation)
        defer { rtnl_rule_put(rule) }
        let rc = add ? rtnl_rule_add(socket, rule, NLM_F_CREATE | NLM_F_EXCL) : rtnl_rule_delete(socket, rule, 0)
        if rc < 0 { throw netlinkError(operation, rc) }
    }

    private func makeRule(_ r: OwnedRule, protocol proto: UInt8, operation: String) throws -> OpaquePointer {
        guard let rule = rtnl_rule_alloc() else { throw SystemError(operation, code: ENOMEM) }
        rtnl_rule_set_family(rule, r.ipv6 ? AF_INET6 : AF_INET)
        rtnl_rule_set_prio(rule, r.priority)
        rtnl_rule_set_mark(rule, r.mark)
        rtnl_rule_set_mask(rule, 0xFFFF_FFFF)
        rtnl_rule_set_table(rule, r.table)
        rtnl_rule_set_action(rule, UInt8(FR_ACT_TO_TBL))
        _ = rtnl_rule_set_protocol(rule, proto)
        return rule
    }

    // MARK: - Local routes

    /// The `local` routes carrying `protocol` (nil: any), of every table (nil) or of `table`.
    public func localRoutes(table: UInt32? = nil, protocol proto: UInt8?) throws -> [OwnedLocalRoute] {
        var cache: OpaquePointer?
        let rc = rtnl_route_alloc_cache(socket, AF_UNSPEC, 0, &cache)
        guard rc >= 0, let cache else { throw netlinkError("list routes", rc) }
        defer { nl_cache_free(cache) }
        var result: [OwnedLocalRoute] = []
        var object = nl_cache_get_first(cache)
        while let route = object {
            object = nl_cache_get_next(route)
            let t = rtnl_route_get_table(route)
            guard table.map({ $0 == t }) ?? true, proto.map({ $0 == rtnl_route_get_protocol(route) }) ?? true, rtnl_route_get_type(route) == UInt8(RTN_LOCAL),
                  let destination = prefix(of: rtnl_route_get_dst(route)) else { continue }
            result.append(OwnedLocalRoute(destination: destination, table: t))
        }
        return result
    }

    public func addLocalRoute(_ r: OwnedLocalRoute, protocol proto: UInt8) throws { try change(local: r, proto, add: true) }
    public func deleteLocalRoute(_ r: OwnedLocalRoute, protocol proto: UInt8) throws { try change(local: r, proto, add: false) }

    private func change(local r: OwnedLocalRoute, _ proto: UInt8, add: Bool) throws {
        let operation = "\(add ? "add" : "delete") route \(r) proto \(proto)"
        let route = try makeLocalRoute(r, protocol: proto, operation: operation)
        defer { rtnl_route_put(route) }
        let rc = add ? rtnl_route_add(socket, route, NLM_F_CREATE | NLM_F_EXCL) : rtnl_route_delete(socket, route, 0)
        if rc < 0 { throw netlinkError(operation, rc) }
    }

    private func makeLocalRoute(_ r: OwnedLocalRoute, protocol proto: UInt8, operation: String) throws -> OpaquePointer {
        let index = try ifindex(of: "lo", operation: operation)
        guard let route = rtnl_route_alloc() else { throw SystemError(operation, code: ENOMEM) }
        var ok = false
        defer { if !ok { rtnl_route_put(route) } }
        let (family, bytes, length) = r.destination.netlinkParts
        let dst = try makeAddress(family: family, bytes: bytes, prefixLength: length, operation: operation)
        defer { nl_addr_put(dst) }
        _ = rtnl_route_set_family(route, UInt8(family))
        let rc = rtnl_route_set_dst(route, dst)
        if rc < 0 { throw netlinkError(operation, rc) }
        rtnl_route_set_table(route, r.table)
        rtnl_route_set_scope(route, UInt8(RT_SCOPE_HOST.rawValue))
        _ = rtnl_route_set_type(route, UInt8(RTN_LOCAL))
        rtnl_route_set_protocol(route, proto)
        guard let nh = rtnl_route_nh_alloc() else { throw SystemError(operation, code: ENOMEM) }
        rtnl_route_nh_set_ifindex(nh, index)
        rtnl_route_add_nexthop(route, nh)
        ok = true
        return route
    }
}
