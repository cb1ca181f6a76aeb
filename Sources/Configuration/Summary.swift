import Packet

extension Config {
    /// One screen saying what the config means, for `sixgatectl check`.
    public var summary: String {
        var lines: [String] = []
        func row(_ label: String, _ text: String) {
            lines.append(label.padded(to: 12) + text)
        }
        func more(_ text: String) { row("", text) }

        let example = IPv4Address(192, 0, 2, 33)
        let kind = prefix.isWellKnown ? "well-known: private IPv4 addresses are never represented"
                                      : "network-specific: any IPv4 address may be represented"
        row("prefix", "\(prefix) (\(kind))")
        row("gateway", "IPv4 uplink \(gateway.uplink4), IPv6 side \(gateway.inside6)")
        more("serves \(gateway.clients.map(\.description).joined(separator: ", "))")

        if nat64.enabled {
            row("nat64", "datapath \(nat64.datapath.rawValue) on \(nat64.device)\(nat64.device4.map { " + \($0)" } ?? ""), "
                + "MTU \(nat64.mtu), lowest IPv6 MTU \(nat64.lowestIPv6MTU)")
            if let pool = nat64.pool4 {
                more("IPv6 hosts -> IPv4: pool \(pool) (\(pool.size) addresses, idle \(nat64.poolIdleTimeout.humanReadable)), "
                     + "masqueraded to \(gateway.uplink4)")
            } else {
                more("no dynamic pool: only the mappings below translate")
            }
            more("IPv4 clients -> IPv6: \(nat64.eam.count) explicit mapping\(nat64.eam.count == 1 ? "" : "s")")
            for e in nat64.eam.prefix(4) { more("  \(e.ipv4) <-> \(e.ipv6)") }
            if nat64.eam.count > 4 { more("  … and \(nat64.eam.count - 4) more") }
            let own4 = nat64.address4?.description ?? "none", own6 = nat64.ownAddress6(prefix: prefix)?.description ?? "none"
            more("own addresses \(own4) / \(own6); errors from \(nat64.rfc6791Pool?.description ?? nat64.address4?.description ?? "192.0.0.8"); "
                 + "zero UDP checksum: \(nat64.udpZeroChecksum.rawValue)")
        } else {
            row("nat64", "off")
        }

        if dns64.enabled {
            row("dns64", "listens on \(dns64.listen.map(\.description).joined(separator: ", "))")
            more("asks \(dns64.upstreams.map(\.description).joined(separator: ", ")) (timeout \(dns64.timeout.humanReadable), \(dns64.attempts) attempts)")
            more("answers \(dns64Allow.map(\.description).joined(separator: ", "))\(dns64.allow == nil ? " (gateway's own networks)" : ""); others get REFUSED")
            if prefix.isWellKnown {
                more("synthesises AAAA from A with \(prefix), except for non-global IPv4 addresses (RFC 6052 §3.1)")
            } else {
                more("synthesises AAAA from A with \(prefix): \(example) becomes \(prefix.embed(example))")
            }
            more("treats AAAA in \(dns64.exclude.map(\.description).joined(separator: ", ")) as absent")
        } else {
            row("dns64", "off")
        }

        if sixbedfour.enabled, let a = sixbedfour.address4, let p = sixbedfour.routerPrefix {
            row("6bed4", "router \(a):\(sixbedfour.port) on \(sixbedfour.device), peers under \(p)")
            more("advertises PREF64 \(prefix) (lifetime \(sixbedfour.pref64Lifetime.humanReadable))"
                 + (sixbedfour.routes.isEmpty ? "" : " and routes \(sixbedfour.routes.map(\.description).joined(separator: ", "))"))
        } else {
            row("6bed4", "off")
        }

        for (i, m) in mux.enumerated() {
            let how = routedInKernel(m) ? "in the kernel" : translatedAddress(of: m).map { "by \(m.kind.rawValue) on \($0)" } ?? "by \(m.kind.rawValue)"
            let targets = m.kind == .tcp ? ["to \(m.fallback.map(\.description) ?? "nothing")"]
                : m.routes.map { "\($0.name) -> \($0.backend)" } + [m.fallback.map { "others -> \($0)" } ?? "others reset"]
            row(i == 0 ? "mux" : "", "\(m.listen) \(how): " + targets.joined(separator: ", "))
        }
        if !mux.isEmpty {
            more("backends see clients under \(prefix); at most \(multiplexer.maxConnections) connections, named within \(multiplexer.peekTimeout)")
        }
        row("controller", "nft table inet sixgate; routes marked proto \(controller.routeProtocol); state in \(controller.stateDir)")
        more("control socket \(controller.controlSocket); metrics \(controller.metrics?.description ?? "off"); log level \(controller.logLevel.rawValue)")
        return lines.joined(separator: "\n")
    }
}

extension String {
    func padded(to width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}

extension Duration {
    /// "2h", "30m", "90s", "1500ms": the units the config file is written in.
    public var humanReadable: String {
        let ms = components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
        for (unit, size) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] where ms >= size && ms % size == 0 {
            return "\(ms / size)\(unit)"
        }
        return "\(ms)ms"
    }
}
