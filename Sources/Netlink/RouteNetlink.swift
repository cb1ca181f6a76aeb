import CNetlink
import Glibc
import Packet

/// A route the controller owns: main table, no gateway, straight onto `device`.
/// Ownership is the routing-protocol number, which callers pass separately so that
/// one value describes the route whoever installs it.
///
/// The kernel stores an IPv6 route added with metric 0 as metric 1024, and reports
/// it so: desired IPv6 routes should name a non-zero metric to compare equal.
public struct OwnedRoute: Sendable, Hashable, Codable, CustomStringConvertible {
    public var destination: IPPrefix
    public var device: String
    public var metric: UInt32

    public init(destination: IPPrefix, device: String, metric: UInt32) {
        self.destination = destination
        self.device = device
        self.metric = metric
    }

    public var description: String { "\(destination) dev \(device) metric \(metric)" }
}

/// One network device as the kernel reports it.
public struct LinkInfo: Sendable, Hashable, Codable {
    public var name: String
    public var index: Int32
    /// Administratively up (IFF_UP), whether or not it has carrier.
    public var isUp: Bool
    public var mtu: Int
    /// IFLA_INFO_KIND: "tun" (also for TAP), "veth", "dummy"…; nil for devices
    /// without one, such as loopback and most physical NICs.
    public var kind: String?
    /// IFLA_IFALIAS; sixgate marks the links it creates with it.
    public var alias: String?

    public init(name: String, index: Int32, isUp: Bool, mtu: Int, kind: String?, alias: String? = nil) {
        self.name = name
        self.index = index
        self.isUp = isUp
        self.mtu = mtu
        self.kind = kind
        self.alias = alias
    }
}

/// An address configured on a device, kept as address plus length because a
/// prefix would lose the host part.
public struct InterfaceAddress: Sendable, Hashable, Codable, CustomStringConvertible {
    public var device: String
    public var address: IPAddress
    public var length: Int

    public init(device: String, address: IPAddress, length: Int) {
        self.device = device
        self.address = address
        self.length = length
    }

    public var description: String { "\(address)/\(length) dev \(device)" }
}

/// Routes, links, addresses and TUN devices of one network namespace, through a
/// libnl-route socket opened inside that namespace.
///
/// Not Sendable: a libnl socket carries sequence numbers and a receive buffer
/// that must not be shared between threads. Use one instance per thread.
public final class RouteNetlink {
    /// Kept because opening /dev/net/tun binds the device to the namespace of the
    /// opening thread, so `createTun` has to enter it again.
    public let namespace: String?
    let socket: OpaquePointer

    public init(namespace: String?) throws {
        self.namespace = namespace
        socket = try NetworkNamespace.run(in: namespace) { () throws(SystemError) -> OpaquePointer in
            guard let s = nl_socket_alloc() else { throw SystemError("allocate rtnetlink socket", code: ENOMEM) }
            let rc = nl_connect(s, NETLINK_ROUTE)
            if rc < 0 {
                nl_socket_free(s)
                throw netlinkError("connect rtnetlink socket", rc)
            }
            return s
        }
    }

    deinit { nl_socket_free(socket) }

    // MARK: - Routes

    /// Main-table unicast routes of both families carrying `protocol`. Routes of
    /// other owners never appear, so reconcile cannot mistake them for its own.
    /// A route of the main table, with what tells whose it is.
    public struct LiveRoute: Sendable, Hashable {
        public var route: OwnedRoute
        public var proto: UInt8
        /// RTN_UNICAST; others (blackhole, unreachable, …) are never sixgate's.
        public var unicast: Bool
    }

    /// The routes of the main table, of every protocol: one dump.
    public func mainRoutes() throws -> [LiveRoute] {
        let names = try Dictionary(links().map { ($0.index, $0.name) }, uniquingKeysWith: { a, _ in a })
        var cache: OpaquePointer?
        let rc = rtnl_route_alloc_cache(socket, AF_UNSPEC, 0, &cache)
        guard rc >= 0, let cache else { throw netlinkError("list routes", rc) }
        defer { nl_cache_free(cache) }

        var result: [LiveRoute] = []
        var object = nl_cache_get_first(cache)
        while let route = object {
            object = nl_cache_get_next(route)
            guard rtnl_route_get_table(route) == UInt32(RT_TABLE_MAIN.rawValue),
                  let destination = prefix(of: rtnl_route_get_dst(route)) else { continue }
            var device = ""
            if rtnl_route_get_nnexthops(route) > 0, let nh = rtnl_route_nexthop_n(route, 0) {
                let index = rtnl_route_nh_get_ifindex(nh)
                device = names[index] ?? "if\(index)"
            }
            result.append(LiveRoute(route: OwnedRoute(destination: destination, device: device, metric: rtnl_route_get_priority(route)),
                                    proto: rtnl_route_get_protocol(route), unicast: rtnl_route_get_type(route) == UInt8(RTN_UNICAST)))
        }
        return result
    }

    public func routes(protocol proto: UInt8) throws -> [OwnedRoute] {
        try mainRoutes().filter { $0.proto == proto && $0.unicast }.map(\.route)
    }

    /// Adds the route; fails with EEXIST when the same route is already there.
    public func addRoute(_ r: OwnedRoute, protocol proto: UInt8) throws {
        let operation = "add route \(r.destination) dev \(r.device) metric \(r.metric) proto \(proto)"
        let route = try makeRoute(r, protocol: proto, operation: operation)
        defer { rtnl_route_put(route) }
        let rc = rtnl_route_add(socket, route, NLM_F_CREATE | NLM_F_EXCL)
        if rc < 0 { throw netlinkError(operation, rc) }
    }

    /// Deletes exactly this route: the protocol is part of the match, so a route
    /// of another owner with the same destination stays.
    public func deleteRoute(_ r: OwnedRoute, protocol proto: UInt8) throws {
        let operation = "delete route \(r.destination) dev \(r.device) metric \(r.metric) proto \(proto)"
        let route = try makeRoute(r, protocol: proto, operation: operation)
        defer { rtnl_route_put(route) }
        let rc = rtnl_route_delete(socket, route, 0)
        if rc < 0 { throw netlinkError(operation, rc) }
    }

    private func makeRoute(_ r: OwnedRoute, protocol proto: UInt8, operation: String) throws -> OpaquePointer {
        let index = try ifindex(of: r.device, operation: operation)
        guard let route = rtnl_route_alloc() else { throw SystemError(operation, code: ENOMEM) }
        var ok = false
        defer { if !ok { rtnl_route_put(route) } }

        let (family, bytes, length) = r.destination.netlinkParts
        let dst = try makeAddress(family: family, bytes: bytes, prefixLength: length, operation: operation)
        defer { nl_addr_put(dst) }
        _ = rtnl_route_set_family(route, UInt8(family))
        let rc = rtnl_route_set_dst(route, dst)
        if rc < 0 { throw netlinkError(operation, rc) }
        rtnl_route_set_table(route, UInt32(RT_TABLE_MAIN.rawValue))
        rtnl_route_set_scope(route, UInt8(RT_SCOPE_LINK.rawValue))
        _ = rtnl_route_set_type(route, UInt8(RTN_UNICAST))
        rtnl_route_set_protocol(route, proto)
        rtnl_route_set_priority(route, r.metric)

        guard let nh = rtnl_route_nh_alloc() else { throw SystemError(operation, code: ENOMEM) }
        rtnl_route_nh_set_ifindex(nh, index)
        rtnl_route_add_nexthop(route, nh) // the route owns the nexthop from here on
        ok = true
        return route
    }

    // MARK: - Shared helpers

    /// The index of device `name`, or a SystemError naming `operation` (which
    /// names the device) with ENODEV when it does not exist.
    func ifindex(of name: String, operation: String) throws -> Int32 {
        try validateDeviceName(name, operation: operation)
        var link: OpaquePointer?
        let rc = rtnl_link_get_kernel(socket, 0, name, &link)
        guard rc >= 0, let link else { throw netlinkError(operation, rc) }
        defer { rtnl_link_put(link) }
        return rtnl_link_get_ifindex(link)
    }

    func makeAddress(family: Int32, bytes: [UInt8], prefixLength: Int, operation: String) throws -> OpaquePointer {
        let built = bytes.withUnsafeBytes { nl_addr_build(family, $0.baseAddress, $0.count) }
        guard let built else { throw SystemError(operation, code: ENOMEM) }
        nl_addr_set_prefixlen(built, Int32(prefixLength))
        return built
    }

    func prefix(of addr: OpaquePointer?) -> IPPrefix? {
        guard let addr else { return nil }
        let length = Int(nl_addr_get_prefixlen(addr))
        switch nl_addr_get_family(addr) {
        case AF_INET:
            // A default route has no RTA_DST; libnl then reports a zero-length address.
            let a = address(bytesOf: addr, count: 4).map { IPv4Address(bytes: $0) } ?? IPv4Address(rawValue: 0)
            return (0...32).contains(length) ? .v4(IPv4Prefix(address: a, length: length)) : nil
        case AF_INET6:
            let a = address(bytesOf: addr, count: 16).map { IPv6Address(bytes: $0) } ?? IPv6Address(high: 0, low: 0)
            return (0...128).contains(length) ? .v6(IPv6Prefix(address: a, length: length)) : nil
        default:
            return nil
        }
    }

    func ipAddress(of addr: OpaquePointer?) -> IPAddress? {
        guard let addr else { return nil }
        switch nl_addr_get_family(addr) {
        case AF_INET: return address(bytesOf: addr, count: 4).map { .v4(IPv4Address(bytes: $0)) }
        case AF_INET6: return address(bytesOf: addr, count: 16).map { .v6(IPv6Address(bytes: $0)) }
        default: return nil
        }
    }

    private func address(bytesOf addr: OpaquePointer, count: Int) -> [UInt8]? {
        guard Int(nl_addr_get_len(addr)) == count, let p = nl_addr_get_binary_addr(addr) else { return nil }
        return Array(UnsafeRawBufferPointer(start: p, count: count))
    }
}

extension IPPrefix {
    /// Family, network bytes and length, the way netlink wants a destination.
    var netlinkParts: (Int32, [UInt8], Int) {
        switch self {
        case .v4(let p): (AF_INET, p.address.bytes, p.length)
        case .v6(let p): (AF_INET6, p.address.bytes, p.length)
        }
    }
}

extension IPAddress {
    var netlinkParts: (Int32, [UInt8]) {
        switch self {
        case .v4(let a): (AF_INET, a.bytes)
        case .v6(let a): (AF_INET6, a.bytes)
        }
    }
}

/// Device names go into fixed IFNAMSIZ buffers and /proc paths: refuse what the
/// kernel would refuse, before it truncates or misreads it.
func validateDeviceName(_ name: String, operation: String) throws {
    let bytes = Array(name.utf8)
    guard !bytes.isEmpty, bytes.count < Int(IFNAMSIZ), name != ".", name != "..",
          !bytes.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 0x20 || $0 == 0x7f }) else {
        throw SystemError("\(operation): \"\(name)\" is not a valid device name", code: EINVAL)
    }
}

/// libnl returns negative NLE_* codes, which it has no inverse for: map the ones
/// callers act on back to errno and keep libnl's own text in the operation.
func netlinkError(_ operation: String, _ rc: Int32) -> SystemError {
    let code: Int32 = switch abs(rc) {
    case NLE_PERM: EPERM
    case NLE_NOACCESS: EACCES
    case NLE_EXIST: EEXIST
    case NLE_NODEV: ENODEV
    // libnl folds the kernel's ENOENT and ESRCH (no such route) into this one;
    // ENOENT avoids blaming a device that exists.
    case NLE_OBJ_NOTFOUND: ENOENT
    case NLE_NOADDR: EADDRNOTAVAIL
    case NLE_INVAL: EINVAL
    case NLE_BUSY: EBUSY
    case NLE_RANGE: ERANGE
    case NLE_NOMEM: ENOMEM
    case NLE_OPNOTSUPP: EOPNOTSUPP
    case NLE_AF_NOSUPPORT: EAFNOSUPPORT
    default: EIO
    }
    return SystemError("\(operation) (libnl: \(String(cString: nl_geterror(rc))))", code: code)
}
