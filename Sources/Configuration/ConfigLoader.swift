import Foundation
import Packet
import SixBedFour
import TOMLKit

/// Turns a TOML file into the one `Config` value, or into every problem it has.
public enum ConfigLoader {
    public static func load(path: String) throws(ConfigError) -> Config {
        let text: String
        var directory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &directory), directory.boolValue {
            throw ConfigError(diagnostics: [ConfigDiagnostic(file: path, line: nil, key: "", problem: "is a directory, not a config file",
                                                             fix: "Name the file in it, such as \((path as NSString).appendingPathComponent("sixgate.toml"))")])
        }
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(diagnostics: [ConfigDiagnostic(file: path, line: nil, key: "", problem: "cannot be read (\(error.localizedDescription))",
                                                             fix: "Check the path and that the file is readable UTF-8 text")])
        }
        return try parse(text, source: path)
    }

    /// The line of `key` ("gateway.uplink4", "nat64.eam[1].ipv4") in the
    /// file `source`, for a problem found after loading.
    public static func line(of key: String, in source: String) -> Int? {
        guard let text = try? String(contentsOfFile: source, encoding: .utf8) else { return nil }
        var path = ConfigPath.root
        for part in key.split(separator: ".") {
            let name = part.prefix { $0 != "[" }
            path = path.appending(String(name))
            if let open = part.firstIndex(of: "["), let i = Int(part[part.index(after: open)...].prefix { $0 != "]" }) { path = path.appending(i) }
        }
        return SourceLocator(text: text).line(of: path)
    }

    public static func parse(_ text: String, source: String) throws(ConfigError) -> Config {
        if let (line, column, problem) = TextCheck.problem(in: text) {
            let fix = problem.hasPrefix("a }") ? "Write a value there, or close the array with ]" : "Keys are written with A-Z, a-z, 0-9, _ and - (or quoted)"
            throw ConfigError(diagnostics: [ConfigDiagnostic(file: source, line: line, key: "", problem: problem, fix: "\(fix); correct column \(column)")])
        }
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let e as TOMLParseError {
            // toml++ says what it met, not what is missing: a string left open
            // runs into the end of its line.
            let unterminated = e.description.contains("parsing string") && (e.description.contains("control characters") || e.description.contains("end of"))
            throw ConfigError(diagnostics: [ConfigDiagnostic(
                file: source, line: e.source.begin.line, key: "",
                problem: unterminated ? "a string is not closed: its closing quote is missing" : "TOML syntax error: \(e.description)",
                fix: unterminated ? "End the string with a \" on the same line" : "Correct the syntax at column \(e.source.begin.column)")])
        } catch {
            throw ConfigError(diagnostics: [ConfigDiagnostic(file: source, line: nil, key: "", problem: "TOML error: \(error)", fix: "Correct the file")])
        }
        let r = Reader(source: source, text: text)
        let config = decode(root, r)
        Validation(config: config, reader: r).run()
        guard r.diagnostics.isEmpty else {
            throw ConfigError(diagnostics: r.diagnostics.sorted { ($0.line ?? 0, $0.key) < ($1.line ?? 0, $1.key) })
        }
        return config
    }

    /// Reads each section with its defaults. Problems are recorded in `r`; the
    /// returned value is only meaningful when there were none.
    static func decode(_ root: TOMLTable, _ r: Reader) -> Config {
        let top = ConfigPath.root
        r.checkKeys(root, top)
        var prefix = NAT64Prefix.wellKnown
        if let p = r.value(root, "prefix", top, example: "\"64:ff9b::/96\" or \"2001:db8:64::/96\"",
                           { s in Result { () throws(AddressParseError) in try IPv6Prefix.parse(s) } }) {
            do throws(NAT64Prefix.Invalid) {
                prefix = try NAT64Prefix(p)
            } catch {
                let fix = switch error {
                case .length: "Use a /32, /40, /48, /56, /64 or /96 (a /96 is the usual choice)"
                case .nonZeroUOctet:
                    "Clear bits 64-71, the 9th byte of the address, e.g. "
                        + "\(IPv6Prefix(address: IPv6Address(high: p.address.high, low: p.address.low & 0x00FF_FFFF_FFFF_FFFF), length: 96))"
                }
                r.report(top.appending("prefix"), error.description, fix: fix)
            }
        }
        return Config(source: r.source, prefix: prefix,
                      gateway: decodeGateway(root, r), nat64: decodeNAT64(root, r),
                      dns64: decodeDNS64(root, r), sixbedfour: decodeSixBedFour(root, r),
                      controller: decodeController(root, r), mux: decodeMux(root, r), multiplexer: decodeMultiplexer(root, r))
    }

    static func decodeGateway(_ root: TOMLTable, _ r: Reader) -> Config.Gateway {
        let path = ConfigPath.root.appending("gateway")
        var g = Config.Gateway(uplink4: "", inside6: "", clients: [])
        guard let t = r.table(root, "gateway", .root) else {
            if root["gateway"] == nil {
                r.report(path, "the [gateway] section is missing", fix: "Add [gateway] with uplink4, inside6 and clients")
            }
            return g
        }
        r.checkKeys(t, path)
        for key in ["uplink4", "inside6"] where t[key] == nil {
            r.report(path.appending(key), "is required", fix: "Name the interface, e.g. \(key) = \"\(key == "uplink4" ? "eth0" : "eth1")\"")
        }
        g.uplink4 = r.interface(t, "uplink4", path) ?? ""
        g.inside6 = r.interface(t, "inside6", path) ?? ""
        if t["clients"] == nil {
            r.report(path.appending("clients"), "is required", fix: "List the IPv6 client prefixes, e.g. clients = [\"2001:db8:1::/64\"]")
        }
        g.clients = r.values(t, "clients", path, example: "2001:db8:1::/64", parseIPv6Prefix) ?? []
        return g
    }

    static func decodeNAT64(_ root: TOMLTable, _ r: Reader) -> Config.NAT64 {
        var n = Config.NAT64()
        let path = ConfigPath.root.appending("nat64")
        guard let t = r.table(root, "nat64", .root) else { return n }
        r.checkKeys(t, path)
        n.enabled = r.bool(t, "enabled", path) ?? n.enabled
        n.datapath = r.choice(t, "datapath", path) ?? n.datapath
        n.device = r.interface(t, "device", path) ?? n.device
        n.device4 = r.interface(t, "device4", path)
        n.mtu = r.int(t, "mtu", path, in: 1280...65535) ?? n.mtu
        n.lowestIPv6MTU = r.int(t, "lowest_ipv6_mtu", path, in: 1280...65535) ?? n.lowestIPv6MTU
        n.address4 = r.value(t, "address4", path, example: "192.0.2.1", parseIPv4)
        n.address6 = r.value(t, "address6", path, example: "2001:db8::64", parseIPv6)
        n.pool4 = r.value(t, "pool4", path, example: "192.0.2.128/25", parseIPv4Prefix)
        n.poolIdleTimeout = r.duration(t, "pool_idle_timeout", path) ?? n.poolIdleTimeout
        n.poolPerClient = r.int(t, "pool_per_client", path, in: 0...65536) ?? n.poolPerClient
        n.poolClientLength = r.int(t, "pool_client_length", path, in: 32...128) ?? n.poolClientLength
        n.queues = r.int(t, "queues", path, in: 0...256) ?? n.queues
        n.udpZeroChecksum = r.choice(t, "udp_zero_checksum", path) ?? n.udpZeroChecksum
        n.rfc6791Pool = r.value(t, "rfc6791_pool", path, example: "192.0.2.254/32", parseIPv4Prefix)
        n.icmpErrorsPerSecond = r.int(t, "icmp_errors_per_second", path, in: 0...100_000) ?? n.icmpErrorsPerSecond
        for (p, e) in r.tables(t, "eam", path, fix: "Write each mapping as [[nat64.eam]] with ipv4 and ipv6") {
            for key in ["ipv4", "ipv6"] where e[key] == nil {
                r.report(p.appending(key), "is required", fix: "Give both sides of the mapping")
            }
            let v4 = r.value(e, "ipv4", p, example: "198.51.100.10/32", parseIPv4Prefix)
            let v6 = r.value(e, "ipv6", p, example: "2001:db8:2::10/128", parseIPv6Prefix)
            let name = r.hostName(e, "name", p)
            if let name, let v4, v4.length != 32 {
                r.report(p.appending("name"), "names \(name) but \(v4) is not one address", fix: "Give names to /32 mappings only")
            }
            if let v4, let v6 { n.eam.append(Config.EAMEntry(ipv4: v4, ipv6: v6, name: name)) }
        }
        return n
    }

    static func decodeDNS64(_ root: TOMLTable, _ r: Reader) -> Config.DNS64 {
        var d = Config.DNS64()
        let path = ConfigPath.root.appending("dns64")
        guard let t = r.table(root, "dns64", .root) else {
            if d.enabled {
                r.report(path, "DNS64 is enabled by default but has no upstreams", fix: "Add [dns64] with upstreams = [\"…\"], or enabled = false")
            }
            return d
        }
        r.checkKeys(t, path)
        d.enabled = r.bool(t, "enabled", path) ?? d.enabled
        let endpoint = { (s: String) in Result { () throws(AddressParseError) in try IPEndpoint.parse(s, defaultPort: 53) } }
        d.listen = r.values(t, "listen", path, example: "[2001:db8:1::1]:53", endpoint) ?? d.listen
        d.upstreams = r.values(t, "upstreams", path, example: "[2001:db8:53::53]:53", endpoint) ?? d.upstreams
        if d.enabled, t["upstreams"] == nil {
            r.report(path.appending("upstreams"), "is required while DNS64 is enabled",
                     fix: "List resolvers, e.g. upstreams = [\"2001:db8:2::53\"], or set enabled = false")
        }
        d.allow = r.values(t, "allow", path, example: "2001:db8:1::/64", { s in Result { () throws(AddressParseError) in try IPPrefix.parse(s) } })
        d.exclude = r.values(t, "exclude", path, example: "::ffff:0:0/96", parseIPv6Prefix) ?? d.exclude
        d.timeout = r.duration(t, "timeout", path, max: .seconds(60)) ?? d.timeout
        d.attempts = r.int(t, "attempts", path, in: 1...10) ?? d.attempts
        d.cacheSizeMB = r.int(t, "cache_size_mb", path, in: 0...65536) ?? d.cacheSizeMB
        d.threads = r.int(t, "threads", path, in: 0...256) ?? d.threads
        d.udpSteering = r.choice(t, "udp_steering", path) ?? d.udpSteering
        d.tcpIdleTimeout = r.duration(t, "tcp_idle_timeout", path, max: .seconds(3600)) ?? d.tcpIdleTimeout
        d.ednsUDPSize = r.int(t, "edns_udp_size", path, in: 512...4096) ?? d.ednsUDPSize
        d.answerPTR = r.bool(t, "ptr", path) ?? d.answerPTR
        d.maxTTL = r.duration(t, "max_ttl", path, max: .seconds(86400)) ?? d.maxTTL
        d.trustUpstreamAD = r.bool(t, "trust_upstream_ad", path) ?? d.trustUpstreamAD
        return d
    }

    static func decodeSixBedFour(_ root: TOMLTable, _ r: Reader) -> Config.SixBedFour {
        var s = Config.SixBedFour()
        let path = ConfigPath.root.appending("sixbedfour")
        guard let t = r.table(root, "sixbedfour", .root) else { return s }
        r.checkKeys(t, path)
        s.enabled = r.bool(t, "enabled", path) ?? s.enabled
        s.address4 = r.value(t, "address4", path, example: "192.0.2.1", parseIPv4)
        s.port = r.int(t, "port", path, in: 1...65535).map(UInt16.init) ?? s.port
        s.prefix = r.value(t, "prefix", path, example: "2001:db8:6b::/48", parseIPv6Prefix)
        s.netID = r.int(t, "netid", path, in: 0...0xFFFF).map(UInt16.init) ?? s.netID
        s.device = r.interface(t, "device", path) ?? s.device
        s.routes = r.values(t, "routes", path, example: "2001:db8:2::/48", parseIPv6Prefix) ?? s.routes
        s.pref64Lifetime = r.duration(t, "pref64_lifetime", path, max: .seconds(65528)) ?? s.pref64Lifetime
        s.rsPerSecond = r.int(t, "rs_per_second", path, in: 1...1000) ?? s.rsPerSecond
        s.publish = r.hostName(t, "publish", path)
        if s.enabled {
            for key in ["address4", "prefix"] where t[key] == nil {
                r.report(path.appending(key), "is required while 6bed4 is enabled",
                         fix: key == "prefix" ? "Give the 6bed4 prefix, e.g. prefix = \"2001:db8:6b::/48\""
                                              : "Give the router's public IPv4 address, e.g. address4 = \"192.0.2.1\"")
            }
        }
        if let p = s.prefix, let a = s.address4 {
            do throws(SixBedFourPrefix.Invalid) {
                s.routerPrefix = try SixBedFourPrefix.complete(p, routerAddress: a, netID: s.netID)
            } catch {
                r.report(path.appending("prefix"), error.description, fix: "Use a prefix of length /16, /32, /48 or /64")
            }
        }
        return s
    }

    static func decodeController(_ root: TOMLTable, _ r: Reader) -> Config.Controller {
        var c = Config.Controller()
        let path = ConfigPath.root.appending("controller")
        guard let t = r.table(root, "controller", .root) else { return c }
        r.checkKeys(t, path)
        // 0-4 are the kernel's own (unspec, redirect, kernel, boot, static); 255 is reserved.
        c.routeProtocol = r.int(t, "route_protocol", path, in: 5...254) ?? c.routeProtocol
        if let name = Config.Controller.knownRouteProtocols[c.routeProtocol] {
            // sixgate deletes every route of its number that it does not want: a
            // number another daemon uses would cost that daemon its routes.
            r.report(path.appending("route_protocol"), "\(c.routeProtocol) is the protocol number of \(name)",
                     fix: "Pick a number no routing software on this host uses, such as the default 164")
        }
        c.manageForwarding = r.bool(t, "manage_forwarding", path) ?? c.manageForwarding
        c.stateDir = r.string(t, "state_dir", path) ?? c.stateDir
        c.bpfDir = r.string(t, "bpf_dir", path) ?? c.bpfDir
        c.controlSocket = r.string(t, "control_socket", path) ?? c.controlSocket
        c.metrics = r.value(t, "metrics", path, example: "[::1]:9164",
                            { s in Result { () throws(AddressParseError) in try IPEndpoint.parse(s, defaultPort: 9164) } })
        c.logLevel = r.choice(t, "log_level", path) ?? c.logLevel
        for (key, value) in [("state_dir", c.stateDir), ("bpf_dir", c.bpfDir), ("control_socket", c.controlSocket)] where !value.hasPrefix("/") {
            r.report(path.appending(key), "\"\(value)\" is not an absolute path", fix: "Write a path starting with /")
        }
        return c
    }

    static func parseIPv4(_ s: String) -> Result<IPv4Address, AddressParseError> {
        IPv4Address(s).map { .success($0) } ?? .failure(.malformedAddress(s))
    }

    static func parseIPv6(_ s: String) -> Result<IPv6Address, AddressParseError> {
        IPv6Address(s).map { .success($0) } ?? .failure(.malformedAddress(s))
    }

    static func parseIPv4Prefix(_ s: String) -> Result<IPv4Prefix, AddressParseError> {
        Result { () throws(AddressParseError) in try IPv4Prefix.parse(s) }
    }

    static func parseIPv6Prefix(_ s: String) -> Result<IPv6Prefix, AddressParseError> {
        Result { () throws(AddressParseError) in try IPv6Prefix.parse(s) }
    }
}
