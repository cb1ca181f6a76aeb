import Foundation
import Packet

/// The difference between the live system and a desired state, with what is
/// needed to repair it. Computing it changes nothing.
public struct Plan: Sendable {
    public let desired: DesiredState
    public let drift: [Drift]
    let nft: NftDiff
    let liveRoutes: [OwnedRoute]
    let environment: Environment
    let sysctlValues: [String: String]

    public var isEmpty: Bool { drift.isEmpty }
}

/// Plans, applies, audits and removes sixgate's kernel state in one network
/// namespace. It looks only at what sixgate owns: the `inet sixgate` table,
/// routes with its protocol number, links with its alias or its names, and the
/// sysctls the config asks for.
public final class Reconciler {
    public let namespace: String?
    private let rtnl: RouteNetlink
    private let nfnl: NetfilterSocket
    private let sysctl: Sysctl

    public init(namespace: String?) throws {
        self.namespace = namespace
        rtnl = try RouteNetlink(namespace: namespace)
        nfnl = try NetfilterSocket(namespace: namespace)
        sysctl = Sysctl(namespace: namespace)
    }

    public func observe() throws -> Environment {
        Environment(links: try rtnl.links(), addresses: try rtnl.addresses(),
                    kernelTranslator: FileManager.default.fileExists(atPath: "/sys/module/jool_siit"))
    }

    public func plan(_ config: Config) throws -> Plan {
        let environment = try observe()
        let desired = try DesiredState(config: config, environment: environment)
        return try plan(desired, environment: environment)
    }

    func plan(_ desired: DesiredState, environment: Environment) throws -> Plan {
        var drift: [Drift] = []
        for want in desired.links {
            guard let live = environment.link(want.name) else {
                drift.append(Drift("link", .missing, want.name, "tun\(want.multiQueue ? " multi-queue" : ""), mtu \(want.mtu), up"))
                continue
            }
            var wrong: [String] = []
            if !live.isUp { wrong.append("down, wants up") }
            if live.mtu != want.mtu { wrong.append("mtu \(live.mtu), wants \(want.mtu)") }
            if live.alias != DesiredState.linkAlias { wrong.append("not marked as sixgate's") }
            if !wrong.isEmpty { drift.append(Drift("link", .changed, want.name, wrong.joined(separator: "; "))) }
        }
        for live in environment.links where live.alias == DesiredState.linkAlias && !desired.links.contains(where: { $0.name == live.name }) {
            drift.append(Drift("link", .extra, live.name))
        }
        for a in desired.addresses where !environment.addresses.contains(a) {
            drift.append(Drift("address", .missing, a.description))
        }
        var values: [String: String] = [:]
        for s in desired.sysctls {
            // A sysctl of a link that is still to be created reads as absent.
            let value = (try? sysctl.read(s.key)) ?? "absent"
            values[s.key] = value
            if value != s.value { drift.append(Drift("sysctl", .changed, s.key, "\(value), wants \(s.value)")) }
        }
        let liveRoutes = try rtnl.routes(protocol: desired.routeProtocol)
        let live = Set(liveRoutes), wanted = Set(desired.routes)
        for r in desired.routes where !live.contains(r) {
            drift.append(Drift("route", .missing, r.description, "ip route add \(r.destination) dev \(r.device) metric \(r.metric) proto \(desired.routeProtocol)"))
        }
        for r in liveRoutes where !wanted.contains(r) {
            drift.append(Drift("route", .extra, r.description, "ip route del \(r.destination) dev \(r.device) metric \(r.metric) proto \(desired.routeProtocol)"))
        }
        let nft = NftDiff(live: try nfnl.readTable(desired.table.name), desired: desired.table)
        drift += nft.drift
        return Plan(desired: desired, drift: drift, nft: nft, liveRoutes: liveRoutes, environment: environment, sysctlValues: values)
    }

    /// Makes the live system equal the plan's desired state. Links come first,
    /// so routes and sysctls have their devices; the nftables change is one
    /// transaction and is sent only when there is one. Returns what changed.
    @discardableResult
    public func apply(_ plan: Plan) throws -> [Drift] {
        let desired = plan.desired
        for want in desired.links {
            let live = plan.environment.link(want.name)
            if live == nil { try rtnl.createTun(name: want.name, multiQueue: want.multiQueue) }
            if live == nil || live?.isUp == false || live?.mtu != want.mtu || live?.alias != DesiredState.linkAlias {
                try rtnl.setLink(name: want.name, up: true, mtu: want.mtu, alias: DesiredState.linkAlias)
            }
        }
        for live in plan.environment.links where live.alias == DesiredState.linkAlias && !desired.links.contains(where: { $0.name == live.name }) {
            try rtnl.deleteLink(name: live.name)
        }
        for a in desired.addresses where !plan.environment.addresses.contains(a) {
            try rtnl.addAddress(device: a.device, address: a.address, length: a.length)
        }
        for s in desired.sysctls where plan.sysctlValues[s.key] != s.value {
            try sysctl.write(s.key, s.value)
        }
        let live = Set(plan.liveRoutes), wanted = Set(desired.routes)
        // Links may have been created above: resolve devices afresh.
        let links = try rtnl.links()
        try RouteBatch.run(.delete, plan.liveRoutes.filter { !wanted.contains($0) }, protocol: desired.routeProtocol, links: links, namespace: namespace)
        try RouteBatch.run(.add, desired.routes.filter { !live.contains($0) }, protocol: desired.routeProtocol, links: links, namespace: namespace)
        if !plan.nft.isEmpty {
            let batch = NftBatch(table: desired.table.name, firstSeq: nfnl.nextSeq())
            plan.nft.write(to: batch)
            try nfnl.send(batch)
        }
        return plan.drift
    }

    /// Removes the table, the routes carrying `routeProtocol` and the links
    /// marked as sixgate's, and nothing else. Forwarding sysctls stay as they
    /// are: other routing on the host may depend on them.
    @discardableResult
    public func remove(routeProtocol: UInt8, table: String = DesiredTable.name) throws -> [Drift] {
        var removed: [Drift] = []
        if try nfnl.readTable(table) != nil {
            let batch = NftBatch(table: table, firstSeq: nfnl.nextSeq())
            batch.deleteTable()
            try nfnl.send(batch)
            removed.append(Drift("nft", .extra, "table inet \(table)"))
        }
        // Routes of a link go with it; delete them first so that each is reported.
        let routes = try rtnl.routes(protocol: routeProtocol)
        try RouteBatch.run(.delete, routes, protocol: routeProtocol, links: try rtnl.links(), namespace: namespace)
        removed += routes.map { Drift("route", .extra, $0.description) }
        for l in try rtnl.links() where l.alias == DesiredState.linkAlias {
            try rtnl.deleteLink(name: l.name)
            removed.append(Drift("link", .extra, l.name))
        }
        return removed
    }
}
