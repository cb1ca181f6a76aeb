import Foundation

/// Every key the config file may hold, with its type, default and meaning. The
/// loader refuses keys not listed here, suggests the nearest listed one, and the
/// README's config reference is printed from this table (`sixgatectl reference`),
/// so the three cannot drift apart.
public enum Schema {
    public struct Key: Sendable {
        public let name: String
        public let type: String
        public let defaultValue: String
        public let doc: String
    }

    public struct Table: Sendable {
        /// Dotted name; "" is the top level. `isArray` tables are written [[name]].
        public let name: String
        public let isArray: Bool
        public let doc: String
        public let keys: [Key]
    }

    public static let tables: [Table] = [
        Table(name: "", isArray: false, doc: "Top level.", keys: [
            Key(name: "prefix", type: "IPv6 prefix", defaultValue: "64:ff9b::/96",
                doc: "The one NAT64 prefix (RFC 6052: /32, /40, /48, /56, /64 or /96). The translator, "
                    + "DNS64 and the PREF64 of 6bed4 router advertisements all use it."),
        ]),
        Table(name: "gateway", isArray: false, doc: "The machine's interfaces and the networks it serves.", keys: [
            Key(name: "uplink4", type: "interface", defaultValue: "required",
                doc: "The IPv4 uplink: masquerade target of the dynamic pool, and where 6bed4 peers arrive."),
            Key(name: "inside6", type: "interface", defaultValue: "required", doc: "The IPv6-only side, where the clients are."),
            Key(name: "clients", type: "IPv6 prefixes", defaultValue: "required",
                doc: "The client prefixes this gateway serves: forwarding rules and the default DNS64 access list."),
        ]),
        Table(name: "nat64", isArray: false, doc: "The translator.", keys: [
            Key(name: "enabled", type: "bool", defaultValue: "true", doc: "Run the translator."),
            Key(name: "datapath", type: "auto|kernel|tun", defaultValue: "auto",
                doc: "`kernel`: a tc-BPF program on the TUN device translates the common packets in the kernel, "
                    + "the userspace translator the rest; it fails, saying why, where the program cannot load or attach. `tun`: "
                    + "the userspace translator alone. `auto`: `kernel` where it can run, else `tun`; `status` says which runs and why."),
            Key(name: "device", type: "interface", defaultValue: "sg-nat64", doc: "TUN device of the translator; both families unless `device4` is set."),
            Key(name: "device4", type: "interface", defaultValue: "none", doc: "A separate TUN device for the IPv4 side."),
            Key(name: "mtu", type: "integer", defaultValue: "1500", doc: "MTU of the TUN device(s), 1280 to 65535."),
            Key(name: "lowest_ipv6_mtu", type: "integer", defaultValue: "1280", doc: "The smallest MTU assumed on the IPv6 side (RFC 7915), 1280 to `mtu`."),
            Key(name: "address4", type: "IPv4 address", defaultValue: "none", doc: "The translator's own IPv4 address, source of the errors it sends."),
            Key(name: "address6", type: "IPv6 address", defaultValue: "prefix + address4", doc: "The translator's own IPv6 address."),
            Key(name: "pool4", type: "IPv4 prefix", defaultValue: "none",
                doc: "Dynamic pool: IPv6 hosts get an address from it, masqueraded to the uplink. Without it, only `eam` translates."),
            Key(name: "pool_idle_timeout", type: "duration", defaultValue: "2h", doc: "A pool address idle this long returns to the pool."),
            Key(name: "pool_per_client", type: "integer", defaultValue: "4",
                doc: "Pool addresses one client may hold at once (0: no limit), so that a client using many source addresses "
                    + "cannot take the pool from the others. Its new hosts beyond that are counted (`pool_client_limit`) "
                    + "and answered with ICMPv6 destination unreachable, administratively prohibited."),
            Key(name: "pool_client_length", type: "integer", defaultValue: "64",
                doc: "The prefix length that makes a client for `pool_per_client`: its hosts share a /64 by default (32 to 128)."),
            Key(name: "queues", type: "integer", defaultValue: "0", doc: "TUN queues (one reader each); 0 is one per CPU."),
            Key(name: "udp_zero_checksum", type: "drop|compute", defaultValue: "drop",
                doc: "IPv4 UDP with a zero checksum: drop it, or compute one (never for fragments)."),
            Key(name: "rfc6791_pool", type: "IPv4 prefix", defaultValue: "address4, else 192.0.0.8",
                doc: "Sources for ICMP errors whose IPv6 source cannot be translated (RFC 6791)."),
            Key(name: "icmp_errors_per_second", type: "integer", defaultValue: "100", doc: "Rate limit of the ICMP errors the translator sends."),
        ]),
        Table(name: "nat64.eam", isArray: true, doc: "Explicit address mappings (RFC 7757), one [[nat64.eam]] per mapping; longest prefix wins.", keys: [
            Key(name: "ipv4", type: "IPv4 prefix", defaultValue: "required", doc: "The IPv4 side, e.g. a public address of an IPv6-only server."),
            Key(name: "ipv6", type: "IPv6 prefix", defaultValue: "required", doc: "The IPv6 side; it must hold as many addresses as `ipv4`."),
            Key(name: "name", type: "host name", defaultValue: "none",
                doc: "The server's DNS name: `sixgatectl publish` gives it an A record of the IPv4 side (a /32 only), "
                    + "and DNS64 answers it to its own clients with that A and, for AAAA, the IPv6 side."),
        ]),
        Table(name: "dns64", isArray: false, doc: "The DNS64 server (RFC 6147).", keys: [
            Key(name: "enabled", type: "bool", defaultValue: "true", doc: "Run the DNS64 server."),
            Key(name: "listen", type: "endpoints", defaultValue: "[\"[::]:53\"]", doc: "Addresses to answer on, `address` or `address:port` (`[v6]:port`)."),
            Key(name: "upstreams", type: "endpoints", defaultValue: "required if enabled", doc: "Recursive resolvers to ask, tried in order."),
            Key(name: "allow", type: "prefixes", defaultValue: "gateway.clients + 6bed4 prefix",
                doc: "Clients that get answers; others get REFUSED. Never open by default."),
            Key(name: "exclude", type: "IPv6 prefixes", defaultValue: "[\"::ffff:0:0/96\"]",
                doc: "AAAA records in these ranges count as absent (RFC 6147 §5.1.4)."),
            Key(name: "timeout", type: "duration", defaultValue: "2s", doc: "Time for one upstream attempt."),
            Key(name: "attempts", type: "integer", defaultValue: "3", doc: "Attempts over all upstreams before SERVFAIL."),
            Key(name: "cache_size_mb", type: "integer", defaultValue: "32", doc: "Memory bound of the answer cache; 0 disables it."),
            Key(name: "threads", type: "integer", defaultValue: "0",
                doc: "Threads answering UDP from the cache, each with its own socket, and as many upstream threads that resolve the misses; 0 is one per CPU."),
            Key(name: "udp_steering", type: "cpu|hash", defaultValue: "cpu",
                doc: "Which thread's socket a UDP query goes to: `cpu`, the one numbered (receiving CPU mod threads), "
                    + "so it is answered on the core that took it in (spread the NIC's receive queues over the CPUs, "
                    + "RSS or RPS); `hash`, by client address and port, for a NIC with one receive queue."),
            Key(name: "tcp_idle_timeout", type: "duration", defaultValue: "10s", doc: "Idle TCP connections are closed after this (RFC 7766)."),
            Key(name: "edns_udp_size", type: "integer", defaultValue: "1232", doc: "EDNS0 UDP payload size, 512 to 4096."),
            Key(name: "ptr", type: "bool", defaultValue: "true",
                doc: "Answer PTR queries under the prefix's ip6.arpa zone from the IPv4 PTR (RFC 6147 §5.3.1)."),
            Key(name: "max_ttl", type: "duration", defaultValue: "30m",
                doc: "The longest TTL of a synthesised AAAA record (and of `ipv4only.arpa`), at most 1 day. "
                    + "When the prefix changes, the old one is kept this long (or the PREF64 lifetime, if longer)."),
            Key(name: "trust_upstream_ad", type: "bool", defaultValue: "false",
                doc: "Set it only when every upstream is a validating resolver reached over a path nobody can tamper with (the same host, "
                    + "or a protected link). Their AD bit is then passed on, and a synthesised answer to a DO query gets "
                    + "AD when its A records and the absence of AAAA records were both authenticated (RFC 6147 §5.5). Off, "
                    + "no answer carries AD: sixgate does not validate DNSSEC itself. Either way, an AAAA or A answer that failed "
                    + "validation upstream is never synthesised around: the client gets the SERVFAIL, with its Extended DNS Error."),
        ]),
        Table(name: "sixbedfour", isArray: false, doc: "The 6bed4 router (IPv6 over UDP/IPv4).", keys: [
            Key(name: "enabled", type: "bool", defaultValue: "false", doc: "Run the 6bed4 router."),
            Key(name: "address4", type: "IPv4 address", defaultValue: "required if enabled",
                doc: "The router's public IPv4 address; peers' addresses embed it."),
            Key(name: "port", type: "port", defaultValue: "25790", doc: "UDP port of the router."),
            Key(name: "prefix", type: "IPv6 prefix", defaultValue: "required if enabled",
                doc: "6bed4 prefix, /16, /32, /48 or /64, completed to a /64 as the reference router does."),
            Key(name: "netid", type: "integer", defaultValue: "0x0bed", doc: "16-bit filler for completing /16 and /48 prefixes."),
            Key(name: "device", type: "interface", defaultValue: "sg-6bed4", doc: "TUN device of the router."),
            Key(name: "routes", type: "IPv6 prefixes", defaultValue: "[]", doc: "Extra prefixes announced as routes in router advertisements (at most 10)."),
            Key(name: "pref64_lifetime", type: "duration", defaultValue: "30m", doc: "Lifetime of the PREF64 option (RFC 8781), at most 65528s."),
            Key(name: "rs_per_second", type: "integer", defaultValue: "2", doc: "Router solicitations answered per second and source."),
            Key(name: "publish", type: "host name", defaultValue: "none",
                doc: "The DNS name of the 6bed4 service: `sixgatectl publish` gives it an AAAA record of the router's address (the /64's `::`) "
                    + "and an A record of `address4`, from which `6bed4peer --server NAME` finds the router."),
        ]),
        Table(name: "mux", isArray: true, doc: "One public IPv4 address and port shared by IPv6-only servers, one [[mux]] each. The gateway accepts the "
                + "connection, reads the name it is for from its first bytes (the TLS ClientHello's server_name, the HTTP/1 Host) and connects to that name's "
                + "backend from the client's translated address (`prefix` + its IPv4 address), so a backend sees the client as through an explicit mapping, "
                + "with no change of its own; it then moves the bytes both ways. TLS is never terminated: the gateway holds no keys.", keys: [
            Key(name: "listen", type: "IPv4 endpoint", defaultValue: "required",
                doc: "The public address and port, e.g. `203.0.113.20:443`. `apply` makes the address local (on `lo`); it may not be in the pool. "
                    + "With a `[[nat64.eam]]` of this one address (a /32 to a /128), connections arrive translated instead: the gateway takes the "
                    + "mapping's IPv6 side, the multiplexer listens there, and a `tcp` entry becomes a DNAT in the kernel with no proxy in the path."),
            Key(name: "kind", type: "tls-sni|http-host|tcp", defaultValue: "required",
                doc: "What names the backend: the TLS server_name, the HTTP Host, or nothing (`tcp`: every connection to `default`)."),
            Key(name: "default", type: "IPv6 endpoint or \"reject\"", defaultValue: "reject",
                doc: "The backend of a name no route takes, and of a connection that names none; `reject` resets them."),
            Key(name: "name", type: "host name", defaultValue: "none",
                doc: "A `tcp` entry's DNS name, which `publish` gives an A record of `listen`'s address (the others publish their routes' names)."),
            Key(name: "service", type: "SRV service", defaultValue: "none",
                doc: "With `name`: the service `publish` announces it under, e.g. `_xmpp-client._tcp` (an SRV record to `name` and `listen`'s port)."),
        ]),
        Table(name: "mux.route", isArray: true, doc: "A name the [[mux]] above serves, one [[mux.route]] each.", keys: [
            Key(name: "name", type: "host name", defaultValue: "required",
                doc: "`www.example.com`, or `*.example.com` for every name below it (one label or more; "
                    + "not the name itself). An exact name wins over a wildcard, a longer wildcard over a shorter."),
            Key(name: "backend", type: "IPv6 endpoint", defaultValue: "required",
                doc: "Where its connections go, e.g. `[2001:db8:2::10]:443`. `apply` refuses a backend whose route "
                    + "leaves by the IPv4 uplink or into one of sixgate's devices, and warns of one that has none yet."),
        ]),
        Table(name: "multiplexer", isArray: false, doc: "Limits of every [[mux]], and how its backends' answers come back to it.", keys: [
            Key(name: "max_connections", type: "integer", defaultValue: "10000",
                doc: "Connections open at once; past it new ones are reset and counted (`over_limit`)."),
            Key(name: "peek_timeout", type: "duration", defaultValue: "5s",
                doc: "A connection that has not named its backend by then is reset and counted (`peek_timeouts`): "
                    + "a client sending its ClientHello a byte at a time holds nothing for long."),
            Key(name: "max_peek", type: "integer", defaultValue: "16384",
                doc: "The most bytes read before the name must be known (1024 to 65536); more is reset and counted (`invalid`)."),
            Key(name: "idle_timeout", type: "duration", defaultValue: "5m", doc: "A connection with no byte either way for this long is reset."),
            Key(name: "threads", type: "integer", defaultValue: "0",
                doc: "Threads, sharing the listening sockets (a new connection wakes one idle thread) "
                    + "and each relaying the connections it accepted; 0 is one per CPU."),
            Key(name: "mark", type: "integer", defaultValue: "0x5347",
                doc: "The packet mark nftables gives the backends' answers to the multiplexer's connections, "
                    + "so that a routing rule delivers them to it rather than to the translator."),
            Key(name: "table", type: "integer", defaultValue: "5347", doc: "The routing table that mark looks up: it holds one `local` route. Not 253 to 255."),
        ]),
        Table(name: "controller", isArray: false, doc: "sixgatectl and sixgated.", keys: [
            Key(name: "route_protocol", type: "integer", defaultValue: "164", doc: "Routing protocol number that marks the routes sixgate owns (5 to 254)."),
            Key(name: "manage_forwarding", type: "bool", defaultValue: "true", doc: "Set the forwarding sysctls of the gateway's interfaces."),
            Key(name: "state_dir", type: "path", defaultValue: "/var/lib/sixgate",
                doc: "Persistent state: the prefix history, the dynamic pool's mappings, what the last apply made, its lock. "
                    + "A network namespace other than the host's keeps its own in `netns/NAME/` below it. Refused when every user may write to it."),
            Key(name: "bpf_dir", type: "path", defaultValue: "/sys/fs/bpf",
                doc: "A bpffs (mounted by `apply` when it is none) where the kernel datapath's program and maps are pinned, "
                    + "in `sixgate/<netns>-<hash>/`: one directory per network namespace and `state_dir`."),
            Key(name: "control_socket", type: "path", defaultValue: "/run/sixgate/control.sock", doc: "Unix socket between sixgatectl and sixgated."),
            Key(name: "metrics", type: "endpoint", defaultValue: "off", doc: "Prometheus endpoint, e.g. `[::1]:9164`."),
            Key(name: "log_level", type: "debug|info|notice|warning|error", defaultValue: "info", doc: "Least severe log level written."),
        ]),
    ]

    public static func table(_ name: String) -> Table? { tables.first { $0.name == name } }

    /// Keys allowed directly in each table: its own keys and its sub-tables.
    private static let allowed: [String: [String]] = Dictionary(uniqueKeysWithValues: tables.map { ($0.name, computeAllowedKeys(in: $0.name)) })

    static func allowedKeys(in table: String) -> [String] { allowed[table] ?? [] }

    private static func computeAllowedKeys(in table: String) -> [String] {
        let own = self.table(table)?.keys.map(\.name) ?? []
        let prefix = table.isEmpty ? "" : table + "."
        let subtables = tables.compactMap { t -> String? in
            guard t.name.hasPrefix(prefix), !t.name.isEmpty, t.name != table else { return nil }
            let rest = t.name.dropFirst(prefix.count)
            return rest.contains(".") ? nil : String(rest)
        }
        return own + subtables
    }

    /// The config reference as Markdown, for the README.
    public static func markdownReference() -> String {
        var out = ""
        for t in tables {
            out += t.name.isEmpty ? "#### Top level\n\n" : (t.isArray ? "#### `[[\(t.name)]]`\n\n" : "#### `[\(t.name)]`\n\n")
            out += t.doc + "\n\n| key | type | default | meaning |\n|---|---|---|---|\n"
            for k in t.keys {
                out += "| `\(k.name)` | \(k.type.replacingOccurrences(of: "|", with: "\\|")) | `\(k.defaultValue)` | \(k.doc) |\n"
            }
            out += "\n"
        }
        out += "Durations are written like `90s`, `30m`, `2h`, `1500ms`.\n"
        return out
    }
}
