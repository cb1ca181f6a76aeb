import DNS64
import Packet

/// The DNS records the outside world needs to reach what a gateway serves,
/// as zone-file lines: the IPv4 address of each named mapping, of each name
/// a multiplexer serves (and the SRV record of a `tcp` one's service), and
/// the 6bed4 service's address. One config says it all, so the zone and the
/// gateway agree.
public enum Publish {
    public struct Record: Sendable, Equatable, CustomStringConvertible {
        /// Absolute, without the final dot.
        public let name: String
        public let type: String
        public let data: String

        public var description: String { "\(name). IN \(type) \(data)" }

        /// The line, with the name relative to `origin` when it lies in it.
        public func line(origin: String?, ttl: Int) -> String {
            var owner = name + "."
            if let origin {
                if name == origin { owner = "@" } else if name.hasSuffix("." + origin) { owner = String(name.dropLast(origin.count + 1)) }
            }
            return "\(owner)\t\(ttl)\tIN\t\(type)\t\(data)"
        }
    }

    public static func records(_ c: Config) -> [Record] {
        var out: [Record] = []
        for e in c.nat64.eam where c.nat64.enabled {
            if let name = e.name { out.append(Record(name: name, type: "A", data: e.ipv4.address.description)) }
        }
        for m in c.mux {
            guard let a = m.address else { continue }
            for r in m.routes { out.append(Record(name: r.name, type: "A", data: a.description)) }
            if let name = m.name {
                out.append(Record(name: name, type: "A", data: a.description))
                if let service = m.service, let domain = name.split(separator: ".", maxSplits: 1).last {
                    out.append(Record(name: "\(service).\(domain)", type: "SRV", data: "0 0 \(m.listen.port) \(name)."))
                }
            }
        }
        // The router's address P:: (it answers pings; spec §3.3) embeds no
        // IPv4 endpoint, so the name's A record gives a peer the router's.
        if c.sixbedfour.enabled, let name = c.sixbedfour.publish, let p = c.sixbedfour.routerPrefix {
            out.append(Record(name: name, type: "AAAA", data: p.address.description))
            if let a = c.sixbedfour.address4 { out.append(Record(name: name, type: "A", data: a.description)) }
        }
        // One A record per name and address: two routes of one name on two ports publish it once.
        return out.reduce(into: []) { if !$0.contains($1) { $0.append($1) } }
    }

    /// The zone-file text: with `zone`, only the records in it, relative to
    /// its `$ORIGIN`.
    public static func zoneText(_ c: Config, zone: String?, ttl: Int = 300) -> String {
        let origin = zone.map { $0.hasSuffix(".") ? String($0.dropLast()) : $0 }?.lowercased()
        let chosen = records(c).filter { r in origin.map { r.name == $0 || r.name.hasSuffix("." + $0) } ?? true }
        let head = ["; the records the outside world needs to reach what this gateway serves (sixgatectl publish)"]
            + (origin.map { ["$ORIGIN \($0)."] } ?? [])
        return (head + chosen.map { $0.line(origin: origin, ttl: ttl) }).joined(separator: "\n") + "\n"
    }
}

extension Config {
    /// What `publish` gives the world, with the IPv6 address that serves
    /// each name for the gateway's own clients.
    public var localNames: LocalNames {
        var names = LocalNames()
        for e in nat64.eam where nat64.enabled {
            if let n = e.name { names.add(n, v4: [e.ipv4.address], v6: [e.ipv6.address]) }
        }
        for m in mux {
            guard let a = m.address else { continue }
            for r in m.routes {
                guard case .v6(let backend) = r.backend.address else { continue }
                names.add(r.name, v4: [a], v6: [backend])
            }
            if let n = m.name, case .v6(let backend)? = m.fallback?.address { names.add(n, v4: [a], v6: [backend]) }
        }
        if sixbedfour.enabled, let n = sixbedfour.publish, let p = sixbedfour.routerPrefix {
            names.add(n, v4: [sixbedfour.address4].compactMap { $0 }, v6: [p.address])
        }
        return names
    }
}
