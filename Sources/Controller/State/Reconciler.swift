import Foundation
import Glibc
import Packet

/// The difference between the live system and a desired state, with what is
/// needed to repair it. Computing it changes nothing.
public struct Plan: Sendable {
    public let desired: DesiredState
    /// The prefixes the desired state serves; apply saves it in `stateDir`.
    public let prefixes: PrefixHistory
    let stateDir: String
    public let drift: [Drift]
    let nft: NftDiff
    let environment: Environment
    let sysctlValues: [String: String]
    let routesToAdd: [OwnedRoute]
    /// Routes to delete, by the protocol number they carry: normally ours, and
    /// also the previous number after `controller.route_protocol` changed.
    let routesToDelete: [(UInt8, [OwnedRoute])]
    let addressesToAdd: [InterfaceAddress]
    let addressesToDelete: [InterfaceAddress]
    let linksToDelete: [String]
    /// The kernel datapath's program, pins and filters.
    public let kernel: KernelProgramPlan

    public var isEmpty: Bool { drift.isEmpty }
}

/// Plans, applies, audits and removes sixgate's kernel state in one network
/// namespace. It looks only at what sixgate owns: the `inet sixgate` table,
/// routes with its protocol number, links with its alias, and the sysctls the
/// config asks for.
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
        Environment(links: try rtnl.links(), addresses: try rtnl.addresses())
    }

    /// What applying `config` at `now` changes, with the older prefixes still
    /// owed to clients (`PrefixHistory`) kept.
    public func plan(_ config: Config, now: UInt64 = UInt64(time(nil))) throws -> Plan {
        let environment = try observe()
        let prefixes = PrefixHistory.forApplying(config, now: now)
        let desired = try DesiredState(config: config, environment: environment, retiring: prefixes.active(at: now).map(\.value),
                                       retiringPools: prefixes.activePools(at: now).map(\.value))
        let pins = try KernelProgramPlan.directory(bpfDir: config.controller.bpfDir, stateDir: config.controller.stateDir, namespace: namespace)
        return try plan(desired, prefixes: prefixes, stateDir: config.controller.stateDir, bpfDir: config.controller.bpfDir, pins: pins,
                        environment: environment)
    }

    /// Runs `body` in the managed namespace: tc's netlink calls need it.
    private func inNamespace(_ body: () throws -> Void) throws { try NetworkNamespace.run(in: namespace, body) }

    func plan(_ desired: DesiredState, prefixes: PrefixHistory, stateDir: String, bpfDir: String, pins: String, environment: Environment) throws -> Plan {
        var drift: [Drift] = []
        for want in desired.links {
            guard let live = environment.link(want.name) else {
                drift.append(Drift("link", .missing, want.name, "tun\(want.multiQueue ? " multi-queue" : ""), mtu \(want.mtu), up"))
                continue
            }
            var wrong: [String] = []
            if !live.isUp { wrong.append("down, wants up") }
            if live.mtu != want.mtu { wrong.append("mtu \(live.mtu), wants \(want.mtu)") }
            if !wrong.isEmpty { drift.append(Drift("link", .changed, want.name, wrong.joined(separator: "; "))) }
        }
        let wantedLinks = Set(desired.links.map(\.name))
        let linksToDelete = environment.links.filter { DesiredState.isOwned($0) && !wantedLinks.contains($0.name) }.map(\.name)
        for name in linksToDelete { drift.append(Drift("link", .extra, name)) }

        let addressesToAdd = desired.addresses.filter { !environment.addresses.contains($0) }
        for a in addressesToAdd { drift.append(Drift("address", .missing, a.description)) }
        // On links sixgate keeps, addresses it did not ask for are drift, except
        // the link-local /64 the kernel gives every interface itself.
        let addressesToDelete = environment.addresses.filter { a in
            guard wantedLinks.contains(a.device), !desired.addresses.contains(a) else { return false }
            if case .v6(let v6) = a.address, v6.high >> 48 == 0xFE80, a.length == 64 { return false }
            return true
        }
        for a in addressesToDelete { drift.append(Drift("address", .extra, a.description)) }

        var values: [String: String] = [:]
        for s in desired.sysctls {
            let value: String
            do {
                value = try sysctl.read(s.key)
            } catch let e as SystemError where e.code == ENOENT {
                value = "absent"  // the sysctl of a link that is still to be created
            }
            values[s.key] = value
            if value != s.value { drift.append(Drift("sysctl", .changed, s.key, "\(value), wants \(s.value)")) }
        }

        let proto = desired.routeProtocol
        let liveRoutes = try rtnl.routes(protocol: proto)
        let live = Set(liveRoutes), wanted = Set(desired.routes)
        let routesToAdd = desired.routes.filter { !live.contains($0) }
        var routesToDelete = [(proto, liveRoutes.filter { !wanted.contains($0) })]
        for r in routesToAdd {
            drift.append(Drift("route", .missing, r.description, "ip route add \(r.destination) dev \(r.device) metric \(r.metric) proto \(proto)"))
        }
        for r in routesToDelete[0].1 {
            drift.append(Drift("route", .extra, r.description, "ip route del \(r.destination) dev \(r.device) metric \(r.metric) proto \(proto)"))
        }
        let liveTable = try nfnl.readTable(desired.table.name)
        if let old = DesiredTable.routeProtocol(inComment: liveTable?.comment), old != proto {
            let stale = try rtnl.routes(protocol: old)
            routesToDelete.append((old, stale))
            for r in stale { drift.append(Drift("route", .extra, r.description, "ip route del \(r.destination) dev \(r.device) proto \(old) (sixgate's previous protocol number)")) }
        }
        let nft = NftDiff(live: liveTable, desired: desired.table)
        drift += nft.drift
        let kernel = try KernelProgramPlan.make(desired.kernelPath, directory: pins, bpfDir: bpfDir, links: environment.links, inNamespace: inNamespace)
        drift += kernel.drift
        return Plan(desired: desired, prefixes: prefixes, stateDir: stateDir, drift: drift, nft: nft, environment: environment, sysctlValues: values,
                    routesToAdd: routesToAdd, routesToDelete: routesToDelete, addressesToAdd: addressesToAdd,
                    addressesToDelete: addressesToDelete, linksToDelete: linksToDelete, kernel: kernel)
    }

    /// Makes the live system equal the plan's desired state: links first, so
    /// that routes and sysctls have their devices; new routes before old ones
    /// go; the nftables change is one transaction, sent only when there is one.
    @discardableResult
    public func apply(_ plan: Plan) throws -> [Drift] {
        let desired = plan.desired
        for want in desired.links {
            let live = plan.environment.link(want.name)
            if live == nil { try rtnl.createTun(name: want.name, multiQueue: want.multiQueue) }
            if live == nil || live?.isUp == false || live?.mtu != want.mtu {
                // The queue length only when sixgate creates the device: an
                // operator's later choice stays.
                try rtnl.setLink(name: want.name, up: true, mtu: want.mtu,
                                 txQueueLength: live == nil ? DesiredState.tunQueueLength : nil, alias: DesiredState.linkAlias)
            }
        }
        for a in plan.addressesToDelete { try rtnl.deleteAddress(device: a.device, address: a.address, length: a.length) }
        for a in plan.addressesToAdd { try rtnl.addAddress(device: a.device, address: a.address, length: a.length) }
        for s in desired.sysctls where plan.sysctlValues[s.key] != s.value {
            try sysctl.write(s.key, s.value)
        }

        let links = try rtnl.links()
        // The kernel datapath before the routes lead traffic to its devices.
        try plan.kernel.apply(links: links, inNamespace: inNamespace)
        // A stale route to the same destination and metric would refuse its
        // replacement: those go first; the rest only after the new ones are in.
        let replaced = Set(plan.routesToAdd.map { "\($0.destination) \($0.metric)" })
        for (proto, routes) in plan.routesToDelete {
            try RouteBatch.run(.delete, routes.filter { replaced.contains("\($0.destination) \($0.metric)") }, protocol: proto, links: links, namespace: namespace)
        }
        try RouteBatch.run(.add, plan.routesToAdd, protocol: desired.routeProtocol, links: links, namespace: namespace)
        for (proto, routes) in plan.routesToDelete {
            try RouteBatch.run(.delete, routes.filter { !replaced.contains("\($0.destination) \($0.metric)") }, protocol: proto, links: links, namespace: namespace)
        }
        for name in plan.linksToDelete { try rtnl.deleteLink(name: name) }

        if !plan.nft.isEmpty {
            let batch = NftBatch(table: desired.table.name, firstSeq: nfnl.nextSeq())
            plan.nft.write(to: batch)
            try nfnl.send(batch)
        }
        // Last, so that a failed apply changes nothing at all: the next one
        // starts from the same history (a renumbering that failed half-way
        // keeps the old prefix, with its deadline counted from the retry).
        try plan.prefixes.save(stateDir: plan.stateDir)
        return plan.drift
    }

    /// Removes the table, the routes carrying `routeProtocol`, the kernel
    /// datapath's filters and pins (`pins`), and the links marked as
    /// sixgate's, and nothing else. Forwarding sysctls stay as they are:
    /// other routing on the host may depend on them.
    @discardableResult
    public func remove(routeProtocol: UInt8, table: String = DesiredTable.name, bpfDir: String, stateDir: String) throws -> [Drift] {
        let pins = try KernelProgramPlan.directory(bpfDir: bpfDir, stateDir: stateDir, namespace: namespace)
        var removed = try KernelProgramPlan.remove(directory: pins, links: try rtnl.links(), inNamespace: inNamespace)
        let live = try nfnl.readTable(table)
        if live != nil {
            let batch = NftBatch(table: table, firstSeq: nfnl.nextSeq())
            batch.deleteTable()
            try nfnl.send(batch)
            removed.append(Drift("nft", .extra, "table inet \(table)"))
        }
        var protocols = [routeProtocol]
        if let old = DesiredTable.routeProtocol(inComment: live?.comment), old != routeProtocol { protocols.append(old) }
        // Routes of a link go with it; delete them first so that each is reported.
        let links = try rtnl.links()
        for proto in protocols {
            let routes = try rtnl.routes(protocol: proto)
            try RouteBatch.run(.delete, routes, protocol: proto, links: links, namespace: namespace)
            removed += routes.map { Drift("route", .extra, $0.description) }
        }
        for l in links where DesiredState.isOwned(l) {
            try rtnl.deleteLink(name: l.name)
            removed.append(Drift("link", .extra, l.name))
        }
        return removed
    }
}
