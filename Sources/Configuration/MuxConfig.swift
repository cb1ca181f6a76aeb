import Foundation
import Mux
import Packet
import TOMLKit

extension Config {
    /// One `[[mux]]`: a public IPv4 address and port shared by IPv6-only
    /// backends.
    public struct MuxEntry: Sendable, Equatable {
        public struct Route: Sendable, Equatable {
            /// A host name, or `*.suffix`.
            public internal(set) var name: String
            public internal(set) var backend: IPEndpoint
        }

        public internal(set) var listen: IPEndpoint
        public internal(set) var kind: MuxKind
        public internal(set) var routes: [Route] = []
        /// Where a name no route takes goes; nil: it is reset.
        public internal(set) var fallback: IPEndpoint?
        /// A `tcp` entry's DNS name, and the SRV service (`_xmpp-client._tcp`)
        /// `publish` announces it under.
        public internal(set) var name: String?
        public internal(set) var service: String?

        /// The IPv4 address clients connect to.
        public var address: IPv4Address? { if case .v4(let a) = listen.address { a } else { nil } }
    }

    /// `[multiplexer]`: limits of every `[[mux]]`, and how the backends'
    /// answers come back to it.
    public struct Multiplexer: Sendable, Equatable {
        public internal(set) var maxConnections = 10_000
        public internal(set) var peekTimeout = Duration.seconds(5)
        public internal(set) var maxPeek = 16 * 1024
        public internal(set) var idleTimeout = Duration.seconds(300)
        public internal(set) var threads = 0
        /// The mark nftables gives the answers of the multiplexer's
        /// backends, and the routing table that mark looks up.
        public internal(set) var mark: UInt32 = 0x5347
        public internal(set) var table: UInt32 = 5347
    }

    /// The IPv6 address the translator maps `m`'s IPv4 address to, when a
    /// mapping of that one address exists: the gateway then owns that IPv6
    /// address, the multiplexer listens on it for translated connections,
    /// and a `tcp` entry is a DNAT in the kernel with no proxy in the path.
    /// Nil: the multiplexer listens on the IPv4 address itself.
    public func translatedAddress(of m: MuxEntry) -> IPv6Address? {
        guard nat64.enabled, let a = m.address,
              let eam = nat64.eam.first(where: { $0.ipv4.length == 32 && $0.ipv4.address == a && $0.ipv6.length == 128 }) else { return nil }
        return eam.ipv6.address
    }

    /// Where the gateway takes `m`'s connections: the mapping's IPv6 side
    /// for a translated address, else `listen` itself.
    public func accepting(_ m: MuxEntry) -> IPEndpoint {
        translatedAddress(of: m).map { IPEndpoint(address: .v6($0), port: m.listen.port) } ?? m.listen
    }

    /// `[[mux]]` entries that the kernel routes alone: `tcp` on a translated address.
    public func routedInKernel(_ m: MuxEntry) -> Bool { m.kind == .tcp && translatedAddress(of: m) != nil }

    /// Some `[[mux]]` needs the multiplexer's process (and its transparent
    /// sockets' rule and routing table).
    public var muxRelays: Bool { mux.contains { !routedInKernel($0) } }

    /// The multiplexer's settings, for sixgated: every entry the kernel does
    /// not route alone.
    public var muxSettings: MuxSettings {
        MuxSettings(listeners: mux.filter { !routedInKernel($0) }.map { m in
            MuxListener(listen: m.listen, bind: accepting(m), kind: m.kind,
                        routes: NameRoutes(m.routes.map { ($0.name, MuxBackend(route: $0.name, endpoint: $0.backend)) },
                                           fallback: m.fallback.map { MuxBackend(route: "default", endpoint: $0) }))
        }, prefix: prefix, maxConnections: multiplexer.maxConnections, peekTimeout: multiplexer.peekTimeout, maxPeek: multiplexer.maxPeek,
                    idleTimeout: multiplexer.idleTimeout, threads: multiplexer.threads > 0 ? multiplexer.threads : ProcessInfo.processInfo.activeProcessorCount)
    }
}

extension ConfigLoader {
    static func decodeMultiplexer(_ root: TOMLTable, _ r: Reader) -> Config.Multiplexer {
        let path = ConfigPath.root.appending("multiplexer")
        var m = Config.Multiplexer()
        guard let t = r.table(root, "multiplexer", .root) else { return m }
        r.checkKeys(t, path)
        m.maxConnections = r.int(t, "max_connections", path, in: 1...1_000_000) ?? m.maxConnections
        m.peekTimeout = r.duration(t, "peek_timeout", path, max: .seconds(300)) ?? m.peekTimeout
        m.maxPeek = r.int(t, "max_peek", path, in: 1024...65536) ?? m.maxPeek
        m.idleTimeout = r.duration(t, "idle_timeout", path) ?? m.idleTimeout
        m.threads = r.int(t, "threads", path, in: 0...256) ?? m.threads
        m.mark = r.int(t, "mark", path, in: 1...Int(UInt32.max)).map(UInt32.init) ?? m.mark
        m.table = r.int(t, "table", path, in: 1...Int(Int32.max)).map(UInt32.init) ?? m.table
        for (key, value) in [("table", Int(m.table))] where [253, 254, 255].contains(value) {
            r.report(path.appending(key), "\(value) is one of the kernel's own tables (default, main, local)",
                     fix: "Pick a table number no other software uses")
        }
        return m
    }

    static func decodeMux(_ root: TOMLTable, _ r: Reader) -> [Config.MuxEntry] {
        r.tables(root, "mux", .root, fix: "Write each shared address as [[mux]] with listen, kind and its [[mux.route]]s").compactMap { p, t in
            for key in ["listen", "kind"] where t[key] == nil {
                r.report(p.appending(key), "is required", fix: key == "listen" ? "Give the public IPv4 address and port, e.g. listen = \"203.0.113.20:443\""
                                                                                : "Say what names the backend: kind = \"tls-sni\", \"http-host\" or \"tcp\"")
            }
            let listen = r.value(t, "listen", p, example: "203.0.113.20:443") { s in
                Result { () throws(AddressParseError) in
                    let e = try IPEndpoint.parse(s, defaultPort: 0)
                    guard case .v4 = e.address, e.port != 0 else { throw .malformedAddress(s) }
                    return e
                }
            }
            let kind: MuxKind? = r.choice(t, "kind", p)
            let fallback = r.string(t, "default", p).flatMap { $0 == "reject" ? nil : backend($0, at: p.appending("default"), r) }
            let routes = r.tables(t, "route", p, fix: "Write each route as [[mux.route]] with name and backend").compactMap { q, rt -> Config.MuxEntry.Route? in
                for key in ["name", "backend"] where rt[key] == nil {
                    r.report(q.appending(key), "is required", fix: "Give both the name and the backend of the route")
                }
                let name = r.string(rt, "name", q).flatMap { routeName($0, at: q.appending("name"), r) }
                let target = r.string(rt, "backend", q).flatMap { backend($0, at: q.appending("backend"), r) }
                guard let name, let target else { return nil }
                return .init(name: name, backend: target)
            }
            let name = r.hostName(t, "name", p)
            let service = r.string(t, "service", p)
            if let service {
                let labels = service.split(separator: ".", omittingEmptySubsequences: false)
                if labels.count != 2 || !labels.allSatisfy({ $0.count > 1 && $0.hasPrefix("_") && HostName.normalized($0.dropFirst().utf8) != nil })
                    || !["_tcp"].contains(labels.last.map(String.init) ?? "") {
                    r.report(p.appending("service"), "\(service.quotedForMessage) is not an SRV service", fix: "Write it like \"_xmpp-client._tcp\"")
                }
            }
            guard let listen, let kind else { return nil }
            return Config.MuxEntry(listen: listen, kind: kind, routes: routes, fallback: fallback, name: name, service: service)
        }
    }

    /// A backend: an IPv6 address and port, `[2001:db8:2::10]:443`.
    private static func backend(_ s: String, at p: ConfigPath, _ r: Reader) -> IPEndpoint? {
        guard let e = try? IPEndpoint.parse(s, defaultPort: 0), case .v6 = e.address, e.port != 0 else {
            r.report(p, "\(s.quotedForMessage) is not an IPv6 address with a port", fix: "Write it like \"[2001:db8:2::10]:443\"")
            return nil
        }
        return e
    }

    /// A route's name: a host name, or `*.` and one.
    private static func routeName(_ s: String, at p: ConfigPath, _ r: Reader) -> String? {
        let host = s.hasPrefix("*.") ? String(s.dropFirst(2)) : s
        guard !host.contains("*"), let normal = HostName.normalized(host.utf8), normal.contains(".") || !s.hasPrefix("*.") else {
            r.report(p, "\(s.quotedForMessage) is not a host name or a wildcard like \"*.example.com\"",
                     fix: "Write a name like \"www.example.com\" or \"*.example.com\"")
            return nil
        }
        return s.hasPrefix("*.") ? "*." + normal : normal
    }
}

extension Validation {
    /// Each shared address once, in none of the translator's; names once per
    /// address; a `tcp` entry has a default and no names.
    func checkMux() {
        var seen: [IPEndpoint: Int] = [:]
        for (i, m) in config.mux.enumerated() {
            let p = ConfigPath.root.appending("mux").appending(i)
            if let first = seen[m.listen] {
                reader.report(p.appending("listen"), "\(m.listen) is also the listen of mux[\(first)]",
                              fix: "Give each [[mux]] its own address and port, or merge their routes")
            }
            seen[m.listen] = seen[m.listen] ?? i
            if let a = m.address {
                // A mapping of this one address is deliberate: the gateway takes
                // its IPv6 side (translatedAddress). Any other overlap would send
                // the multiplexer's connections to a server.
                if let eam = config.nat64.eam.first(where: { $0.ipv4.contains(a) }), config.translatedAddress(of: m) == nil {
                    reader.report(p.appending("listen"),
                                  config.nat64.enabled ? "\(a) is in the mapping \(eam.ipv4) <-> \(eam.ipv6), which is not of this one address"
                                                       : "\(a) is the IPv4 side of the mapping \(eam.ipv4) <-> \(eam.ipv6), but nat64 is not enabled",
                                  fix: "Map the address alone to an IPv6 address the gateway may take (ipv4 = \"\(a)\", ipv6 = \"2001:db8:2:ff::20\"), "
                                      + "or use an address outside the mappings")
                }
                if let pool = config.nat64.pool4, pool.contains(a) {
                    reader.report(p.appending("listen"), "\(a) is in the dynamic pool \(pool)", fix: "Use an address outside nat64.pool4")
                }
            }
            if m.kind != .tcp, m.name != nil || m.service != nil {
                reader.report(p.appending(m.name != nil ? "name" : "service"),
                              "only a tcp [[mux]] has a name of its own: the others publish their routes' names",
                              fix: "Remove it, or give the names as [[mux.route]]s")
            }
            if m.service != nil, m.name == nil {
                reader.report(p.appending("service"), "an SRV service needs the name it points to", fix: "Add name = \"xmpp.example.com\"")
            }
            if m.kind == .tcp {
                if !m.routes.isEmpty {
                    reader.report(p.appending("route"), "a tcp [[mux]] reads no name, so its routes would never match",
                                  fix: "Remove the routes, and give the backend as default")
                }
                if m.fallback == nil {
                    reader.report(p, "a tcp [[mux]] needs its backend as default", fix: "Add default = \"[2001:db8:2::30]:5222\"")
                }
            } else if m.routes.isEmpty, !reader.reported(under: p.appending("route")) {
                reader.report(p, "has no [[mux.route]]", fix: "Add a [[mux.route]] with name and backend for each name it serves")
            }
            var names: [String: Int] = [:]
            for (j, route) in m.routes.enumerated() {
                if let first = names[route.name] {
                    reader.report(p.appending("route").appending(j).appending("name"), "\(route.name) is also mux[\(i)].route[\(first)]",
                                  fix: "Name each route once; a name goes to one backend")
                }
                names[route.name] = names[route.name] ?? j
            }
        }
    }
}
