import Packet

/// Checks that need more than one key: the prefix policy, overlaps, names that
/// must differ. Values that failed to parse were reported already and are absent
/// here, so no problem is reported twice.
struct Validation {
    let config: Config
    let reader: Reader

    private let nat64 = ConfigPath.root.appending("nat64")
    private var eamPath: ConfigPath { nat64.appending("eam") }
    /// False when `prefix` was refused: the default standing in for it is
    /// not the operator's, and nothing is checked against it.
    private var prefixRead: Bool { !reader.reported(ConfigPath.root.appending("prefix")) }

    func run() {
        checkEAMs()
        checkIPv4Overlaps()
        checkIPv6Overlaps()
        checkDevices()
        checkMisc()
        checkMux()
    }

    /// RFC 6052 §3.1 and RFC 7757 §3.2: mappings behind the well-known prefix must
    /// be global, and both sides of a mapping must hold the same number of addresses.
    private func checkEAMs() {
        for (i, e) in config.nat64.eam.enumerated() {
            let p = eamPath.appending(i)
            if prefixRead, !config.prefix.canRepresent(e.ipv4) {
                reader.report(p.appending("ipv4"),
                              "\(e.ipv4) holds non-global IPv4 addresses, which RFC 6052 §3.1 forbids with the well-known prefix 64:ff9b::/96",
                              fix: "Use a network-specific prefix for `prefix` (e.g. 2001:db8:64::/96 from your own space), or map only global addresses")
            }
            if 32 - e.ipv4.length != 128 - e.ipv6.length {
                reader.report(p, "\(e.ipv4) holds \(32 - e.ipv4.length) host bits but \(e.ipv6) holds \(128 - e.ipv6.length)",
                              fix: "Make both sides the same size, e.g. a /\(e.ipv4.length) with a /\(96 + e.ipv4.length)")
            }
        }
    }

    private func checkIPv4Overlaps() {
        var ranges: [(ConfigPath, IPv4Prefix)] = []
        if let p = config.nat64.pool4 { ranges.append((nat64.appending("pool4"), p)) }
        if let p = config.nat64.rfc6791Pool { ranges.append((nat64.appending("rfc6791_pool"), p)) }
        for (i, e) in config.nat64.eam.enumerated() { ranges.append((eamPath.appending(i).appending("ipv4"), e.ipv4)) }
        reportOverlaps(ranges, fix: "Change one of them so that no IPv4 address belongs to both")

        // The gateway's own addresses must not be handed out by the pool or a mapping.
        var own: [(ConfigPath, IPv4Address)] = []
        if let a = config.nat64.address4 { own.append((nat64.appending("address4"), a)) }
        if config.sixbedfour.enabled, let a = config.sixbedfour.address4 { own.append((ConfigPath.root.appending("sixbedfour").appending("address4"), a)) }
        for (path, a) in own {
            for (other, range) in ranges where other.description != "nat64.rfc6791_pool" && range.contains(a) {
                reader.report(path, "\(a) lies inside \(other) (\(range))",
                              fix: "Give the gateway an address outside the pool and the mappings")
            }
        }
    }

    private func checkIPv6Overlaps() {
        var ranges: [(ConfigPath, IPv6Prefix)] = prefixRead ? [(ConfigPath.root.appending("prefix"), config.prefix.prefix)] : []
        for (i, e) in config.nat64.eam.enumerated() { ranges.append((eamPath.appending(i).appending("ipv6"), e.ipv6)) }
        let clients = ConfigPath.root.appending("gateway").appending("clients")
        for (i, c) in config.gateway.clients.enumerated() {
            if prefixRead, c.overlaps(config.prefix.prefix) {
                reader.report(clients.appending(i), "\(c) overlaps the NAT64 prefix \(config.prefix)",
                              fix: "Client networks and the NAT64 prefix must be disjoint; choose another prefix for one of them")
            }
        }
        let sbf = config.sixbedfour
        if sbf.enabled, let p = sbf.routerPrefix {
            let path = ConfigPath.root.appending("sixbedfour").appending("prefix")
            ranges.append((path, p))
            for c in config.gateway.clients where c.overlaps(p) {
                reader.report(path, "completes to \(p), which overlaps the client prefix \(c)",
                              fix: "6bed4 peers need a prefix of their own; choose one outside gateway.clients")
            }
        }
        reportOverlaps(ranges, fix: "Change one of them so that no IPv6 address belongs to both")
    }

    /// Reports each range that overlaps an earlier-starting one. A sweep over the
    /// ranges sorted by start, so that 10,000 mappings cost n log n, not n².
    private func reportOverlaps<P: Overlapping>(_ ranges: [(ConfigPath, P)], fix: String) {
        let sorted = ranges.enumerated().sorted { ($0.element.1.range.lowerBound, $0.offset) < ($1.element.1.range.lowerBound, $1.offset) }
        var widest: (path: ConfigPath, range: P)?
        for (_, (path, range)) in sorted {
            if let w = widest, range.range.lowerBound <= w.range.range.upperBound {
                reader.report(path, "\(range) overlaps \(w.path) (\(w.range))", fix: fix)
                if range.range.upperBound > w.range.range.upperBound { widest = (path, range) }
            } else {
                widest = (path, range)
            }
        }
    }

    /// A translator device named like an uplink would take the uplink over.
    private func checkDevices() {
        var names: [(ConfigPath, String)] = [
            (ConfigPath.root.appending("gateway").appending("uplink4"), config.gateway.uplink4),
            (ConfigPath.root.appending("gateway").appending("inside6"), config.gateway.inside6),
        ]
        if config.nat64.enabled {
            names.append((nat64.appending("device"), config.nat64.device))
            if let d = config.nat64.device4 { names.append((nat64.appending("device4"), d)) }
        }
        if config.sixbedfour.enabled { names.append((ConfigPath.root.appending("sixbedfour").appending("device"), config.sixbedfour.device)) }
        for (j, (path, name)) in names.enumerated() where !name.isEmpty {
            // uplink4 and inside6 may be one interface (a one-armed gateway).
            for (other, otherName) in names[..<j] where otherName == name && j >= 2 {
                reader.report(path, "\"\(name)\" is also \(other)", fix: "Give each device sixgate creates a name of its own")
            }
        }
    }

    private func checkMisc() {
        if config.nat64.lowestIPv6MTU > config.nat64.mtu {
            reader.report(nat64.appending("lowest_ipv6_mtu"), "\(config.nat64.lowestIPv6MTU) is larger than mtu \(config.nat64.mtu)",
                          fix: "Lower lowest_ipv6_mtu to at most mtu")
        }
        if let allow = config.dns64.allow, allow.isEmpty, config.dns64.enabled {
            reader.report(ConfigPath.root.appending("dns64").appending("allow"), "is empty, so every client would be refused",
                          fix: "List the client prefixes, or remove the key to allow gateway.clients")
        }
        if config.sixbedfour.routes.count > 10 {
            reader.report(ConfigPath.root.appending("sixbedfour").appending("routes"), "has \(config.sixbedfour.routes.count) prefixes",
                          fix: "Announce at most 10 routes, as reference peers accept no more")
        }
    }
}

/// A prefix as the closed range of addresses it holds (Packet gives both
/// families one).
protocol Overlapping: CustomStringConvertible {
    var range: ClosedRange<UInt128> { get }
}

extension IPv4Prefix: Overlapping {}
extension IPv6Prefix: Overlapping {}
