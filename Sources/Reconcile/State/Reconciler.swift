import Configuration
import Nftables
import Common
import Netlink
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
    /// The multiplexer's local routes and rule (`DesiredState.localRoutes`, `rules`).
    let localRoutes: (add: [OwnedLocalRoute], delete: [(UInt8, OwnedLocalRoute)])
    let rules: (add: [OwnedRule], delete: [(UInt8, OwnedRule)])
    let linksToDelete: [String]
    /// The kernel datapath's program, pins and filters.
    public let kernel: KernelProgramPlan
    /// Every protocol number sixgate's routes may carry now: the config's,
    /// and those an earlier (maybe interrupted) apply used.
    let protocols: Set<UInt8>

    /// What apply goes ahead with but the operator should know.
    public internal(set) var warnings: [String] = []

    public var isEmpty: Bool { drift.isEmpty }
}

/// Objects that are not sixgate's stand where the config puts sixgate's:
/// apply would fail half-way, so plan refuses before anything changes.
public struct PlanConflict: Error, CustomStringConvertible {
    public let conflicts: [String]
    public var description: String { conflicts.joined(separator: "\n") }
}

/// An apply that stopped part-way: what is in the kernel and what is not.
/// The order of the steps keeps every route into sixgate's devices behind
/// its rules at each point, and the next apply takes up where this stopped.
public struct ApplyStopped: Error, CustomStringConvertible {
    public let done: [String]
    public let failed: String
    public let notDone: [String]
    public let error: any Error

    public var description: String {
        "\(failed): \(error)\napplied: \(done.isEmpty ? "nothing" : done.joined(separator: ", "))\n"
            + "not applied: \(notDone.joined(separator: ", "))\nthe rules cover every route in place; apply again to finish"
    }
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
        let desired: DesiredState
        do {
            desired = try DesiredState(config: config, environment: environment, retiring: prefixes.active(at: now).map(\.value),
                                       retiringPools: prefixes.activePools(at: now).map(\.value))
        } catch {
            // Where in the file, and in which namespace, the operator looks.
            throw ConfigError(diagnostics: [ConfigDiagnostic(file: config.source, line: ConfigLoader.line(of: error.key, in: config.source), key: error.key,
                                                             problem: error.problem(in: namespace), fix: error.fix(in: namespace))])
        }
        let pins = try KernelProgramPlan.directory(bpfDir: config.controller.bpfDir, stateDir: config.controller.stateDir, namespace: namespace)
        let allRoutes = try rtnl.mainRoutes()
        let unrouted = config.mux.isEmpty ? [] : try muxBackendsOffTheIPv6Side(config, desired: desired, allRoutes: allRoutes)
        var plan = try plan(desired, prefixes: prefixes, stateDir: config.controller.stateDir, bpfDir: config.controller.bpfDir, pins: pins,
                            environment: environment, allRoutes: allRoutes)
        plan.warnings = unrouted
        return plan
    }

    /// Runs `body` in the managed namespace: tc's netlink calls need it.
    private func inNamespace(_ body: () throws -> Void) throws { try NetworkNamespace.run(in: namespace, body) }

    func plan(_ desired: DesiredState, prefixes: PrefixHistory, stateDir: String, bpfDir: String, pins: String, environment: Environment,
              allRoutes: [RouteNetlink.LiveRoute]) throws -> Plan {
        var drift: [Drift] = []
        for want in desired.links {
            guard let live = environment.link(want.name) else {
                drift.append(Drift(.link, .missing, want.name, "tun\(want.multiQueue ? " multi-queue" : ""), mtu \(want.mtu), up"))
                continue
            }
            var wrong: [String] = []
            if !live.isUp { wrong.append("down, wants up") }
            if live.mtu != want.mtu { wrong.append("mtu \(live.mtu), wants \(want.mtu)") }
            if !wrong.isEmpty { drift.append(Drift(.link, .changed, want.name, wrong.joined(separator: "; "))) }
        }
        let wantedLinks = Set(desired.links.map(\.name))
        let linksToDelete = environment.links.filter { DesiredState.isOwned($0) && !wantedLinks.contains($0.name) }.map(\.name)
        for name in linksToDelete { drift.append(Drift(.link, .extra, name)) }

        let addressesToAdd = desired.addresses.filter { !environment.addresses.contains($0) }
        for a in addressesToAdd { drift.append(Drift(.address, .missing, a.description)) }
        // On links sixgate keeps, addresses it did not ask for are drift, except
        // the link-local /64 the kernel gives every interface itself.
        let addressesToDelete = environment.addresses.filter { a in
            guard wantedLinks.contains(a.device), !desired.addresses.contains(a) else { return false }
            if case .v6(let v6) = a.address, v6.high >> 48 == 0xFE80, a.length == 64 { return false }
            return true
        }
        for a in addressesToDelete { drift.append(Drift(.address, .extra, a.description)) }

        var values: [String: String] = [:]
        for s in desired.sysctls {
            let value: String
            do {
                value = try sysctl.read(s.key)
            } catch let e as SystemError where e.code == ENOENT {
                value = "absent"  // the sysctl of a link that is still to be created
            }
            values[s.key] = value
            if value != s.value { drift.append(Drift(.sysctl, .changed, s.key, "\(value), wants \(s.value)")) }
        }

        let proto = desired.routeProtocol
        let liveTable = try nfnl.readTable(desired.table.name)
        let record = AppliedRecord.load(stateDir: stateDir)
        let protocols = Set([proto] + (record?.routeProtocols ?? []) + [DesiredTable.routeProtocol(inComment: liveTable?.comment)].compactMap { $0 })
        let liveRoutes = allRoutes.filter { $0.proto == proto && $0.unicast }.map(\.route)
        let live = Set(liveRoutes), wanted = Set(desired.routes)
        let routesToAdd = desired.routes.filter { !live.contains($0) }
        var routesToDelete = [(proto, liveRoutes.filter { !wanted.contains($0) })]
        for r in routesToAdd {
            drift.append(Drift(.route, .missing, r.description, "ip route add \(r.destination) dev \(r.device) metric \(r.metric) proto \(proto)"))
        }
        for r in routesToDelete[0].1 {
            drift.append(Drift(.route, .extra, r.description, "ip route del \(r.destination) dev \(r.device) metric \(r.metric) proto \(proto)"))
        }
        for old in protocols.subtracting([proto]).sorted() {
            let stale = allRoutes.filter { $0.proto == old && $0.unicast }.map(\.route)
            routesToDelete.append((old, stale))
            for r in stale {
                drift.append(Drift(.route, .extra, r.description,
                                   "ip route del \(r.destination) dev \(r.device) proto \(old) (sixgate's previous protocol number)"))
            }
        }
        // The multiplexer's: what carries our number and is not wanted goes,
        // and all that carries a previous number.
        var liveLocal: [(UInt8, OwnedLocalRoute)] = [], liveRules: [(UInt8, OwnedRule)] = []
        for p in protocols.sorted() {
            liveLocal += try rtnl.localRoutes(protocol: p).map { (p, $0) }
            liveRules += try rtnl.rules(protocol: p).map { (p, $0) }
        }
        // An address the host already has (its own, with the kernel's route) needs none of ours.
        let othersLocal = Set(try rtnl.localRoutes(protocol: nil)).subtracting(liveLocal.map(\.1))
        let localRoutes = (add: desired.localRoutes.filter { r in !liveLocal.contains { $0.0 == proto && $0.1 == r } && !othersLocal.contains(r) },
                           delete: liveLocal.filter { $0.0 != proto || !desired.localRoutes.contains($0.1) })
        let rules = (add: desired.rules.filter { r in !liveRules.contains { $0.0 == proto && $0.1 == r } },
                     delete: liveRules.filter { $0.0 != proto || !desired.rules.contains($0.1) })
        for r in localRoutes.add { drift.append(Drift(.route, .missing, r.description, "ip route add \(r) proto \(proto)")) }
        for (p, r) in localRoutes.delete { drift.append(Drift(.route, .extra, r.description, "ip route del \(r) proto \(p)")) }
        for r in rules.add {
            drift.append(Drift(.rule, .missing, r.description,
                               "ip \(r.ipv6 ? "-6" : "-4") rule add priority \(r.priority) fwmark \(r.mark) lookup \(r.table) proto \(proto)"))
        }
        for (p, r) in rules.delete {
            drift.append(Drift(.rule, .extra, r.description, "ip \(r.ipv6 ? "-6" : "-4") rule del priority \(r.priority) proto \(p)"))
        }
        try refuseConflicts(routesToAdd: routesToAdd, addressesToAdd: addressesToAdd, allRoutes: allRoutes, protocols: protocols, environment: environment)
        let nft = NftDiff(live: liveTable, desired: desired.table)
        drift += NftListing.readable(nft.drift, table: desired.table.name, namespace: namespace)
        let kernel = try KernelProgramPlan.make(desired.kernelPath, directory: pins, bpfDir: bpfDir, links: environment.links, inNamespace: inNamespace)
        drift += kernel.drift
        return Plan(desired: desired, prefixes: prefixes, stateDir: stateDir, drift: drift, nft: nft, environment: environment, sysctlValues: values,
                    routesToAdd: routesToAdd, routesToDelete: routesToDelete, addressesToAdd: addressesToAdd,
                    addressesToDelete: addressesToDelete, localRoutes: localRoutes, rules: rules, linksToDelete: linksToDelete, kernel: kernel,
                    protocols: protocols)
    }

    /// A route that is not sixgate's to a destination and metric sixgate
    /// routes (the kernel keeps one), or an address sixgate adds that
    /// another link holds.
    private func refuseConflicts(routesToAdd: [OwnedRoute], addressesToAdd: [InterfaceAddress], allRoutes: [RouteNetlink.LiveRoute],
                                 protocols: Set<UInt8>, environment: Environment) throws {
        var conflicts: [String] = []
        for r in routesToAdd {
            for f in allRoutes where !protocols.contains(f.proto) || !f.unicast {
                guard f.route.destination == r.destination, f.route.metric == r.metric else { continue }
                let dev = f.route.device.isEmpty ? "" : " dev \(f.route.device)"
                let proto = Config.Controller.knownRouteProtocols[Int(f.proto)] ?? [2: "kernel", 3: "boot", 4: "static"][Int(f.proto)] ?? "\(f.proto)"
                conflicts.append("route \(f.route.destination)\(dev) metric \(f.route.metric) (proto \(proto)) is not sixgate's, "
                    + "and holds the place of sixgate's route \(r.destination) dev \(r.device): delete it "
                    + "(ip route del \(f.route.destination)\(dev) metric \(f.route.metric)) or take \(r.destination) out of the config")
            }
        }
        for a in addressesToAdd {
            if case .v6(let v6) = a.address, v6.high >> 48 == 0xFE80 { continue }
            for other in environment.addresses where other.address == a.address && other.device != a.device {
                conflicts.append("address \(other.address) is on \(other.device), and sixgate puts it on \(a.device): remove it there "
                    + "(ip addr del \(other.address)/\(other.length) dev \(other.device)) or change the config")
            }
        }
        if !conflicts.isEmpty { throw PlanConflict(conflicts: conflicts) }
    }

    /// A [[mux]] backend must be reached on the IPv6 side: one whose route
    /// (in the main table, or among the desired ones) leaves by the IPv4
    /// uplink or into one of sixgate's own devices, where the connection
    /// would loop through the translator or the 6bed4 router, is refused.
    /// One without a route yet (at boot a routing daemon may add it later)
    /// is returned, for a warning.
    private func muxBackendsOffTheIPv6Side(_ config: Config, desired: DesiredState, allRoutes: [RouteNetlink.LiveRoute]) throws -> [String] {
        let routes = allRoutes.filter(\.unicast).map(\.route) + desired.routes
        let wrong = Set([config.gateway.uplink4] + desired.links.map(\.name))
        var conflicts: [String] = [], unrouted: [String] = []
        for (i, m) in config.mux.enumerated() {
            let backends = m.routes.map { ("mux[\(i)] \($0.name)", $0.backend) } + (m.fallback.map { [("mux[\(i)] default", $0)] } ?? [])
            for (what, backend) in backends {
                guard case .v6(let a) = backend.address else { continue }
                let length = { (p: IPPrefix) -> Int in if case .v6(let v) = p { v.length } else { -1 } }
                let best = routes.filter { $0.destination.contains(.v6(a)) }.max { length($0.destination) < length($1.destination) }
                guard let best else {
                    unrouted.append("the backend \(backend) of \(what) has no route yet: "
                        + "the multiplexer cannot reach it until it has one (through \(config.gateway.inside6), say)")
                    continue
                }
                if !wrong.contains(best.device) { continue }
                conflicts.append("the backend \(backend) of \(what) goes to \(best.device) (route \(best.destination)), not to the IPv6 side: "
                    + "route it there (e.g. through \(config.gateway.inside6)) or correct the backend")
            }
        }
        if !conflicts.isEmpty { throw PlanConflict(conflicts: conflicts) }
        return unrouted
    }

    /// Makes the live system equal the plan's desired state, in steps whose
    /// order keeps every route into sixgate's devices behind its rules, so
    /// that an apply stopped anywhere leaves no traffic unprotected: links
    /// (without routes nothing reaches them), addresses and sysctls; the
    /// routes that go, before the rules they had go; the nftables change in
    /// one transaction; the kernel datapath; the new routes, once their
    /// rules are in; links that go; the state. The applied record names
    /// every protocol sixgate's routes may carry from the first step on.
    @discardableResult
    public func apply(_ plan: Plan) throws -> [Drift] {
        let desired = plan.desired
        let pins = plan.kernel.directory
        let steps: [(String, () throws -> Void)] = [
            ("the record of this apply", {
                try AppliedRecord(routeProtocols: plan.protocols.sorted(), bpfPins: pins, complete: false).save(stateDir: plan.stateDir)
            }),
            ("links", { try self.applyLinks(plan) }),
            ("addresses", {
                for a in plan.addressesToDelete { try self.rtnl.deleteAddress(device: a.device, address: a.address, length: a.length) }
                for a in plan.addressesToAdd { try self.rtnl.addAddress(device: a.device, address: a.address, length: a.length) }
            }),
            ("sysctls", {
                for s in desired.sysctls where plan.sysctlValues[s.key] != s.value { try self.sysctl.write(s.key, s.value) }
            }),
            ("routes that go", {
                let links = try self.rtnl.links()
                for (proto, routes) in plan.routesToDelete {
                    try RouteBatch.run(.delete, routes, protocol: proto, links: links, namespace: self.namespace)
                }
                for (p, r) in plan.rules.delete { try self.rtnl.deleteRule(r, protocol: p) }
                for (p, r) in plan.localRoutes.delete { try self.rtnl.deleteLocalRoute(r, protocol: p) }
            }),
            ("nftables", {
                guard !plan.nft.isEmpty else { return }
                let batch = NftBatch(table: desired.table.name, firstSeq: self.nfnl.nextSeq())
                plan.nft.write(to: batch)
                try self.nfnl.send(batch)
            }),
            ("the kernel datapath", { try plan.kernel.apply(links: try self.rtnl.links(), inNamespace: self.inNamespace) }),
            ("new routes", {
                try RouteBatch.run(.add, plan.routesToAdd, protocol: desired.routeProtocol, links: try self.rtnl.links(), namespace: self.namespace)
                for r in plan.localRoutes.add { try self.rtnl.addLocalRoute(r, protocol: desired.routeProtocol) }
                for r in plan.rules.add { try self.rtnl.addRule(r, protocol: desired.routeProtocol) }
            }),
            ("links that go", { for name in plan.linksToDelete { try self.rtnl.deleteLink(name: name) } }),
            // Last, so that a failed apply leaves the history as it was: the
            // next one starts from it (a renumbering that failed half-way
            // keeps the old prefix, with its deadline counted from the retry).
            ("the prefix history", {
                try plan.prefixes.save(stateDir: plan.stateDir)
                try AppliedRecord(routeProtocols: [desired.routeProtocol], bpfPins: pins, complete: true).save(stateDir: plan.stateDir)
            }),
        ]
        // For tests of interrupted applies: stop after this many steps.
        let stopAfter = ProcessInfo.processInfo.environment["SIXGATE_APPLY_STOP_AFTER"].flatMap { Int($0) }
        for (i, (name, step)) in steps.enumerated() {
            do {
                if i == stopAfter { throw SystemError("stopped by SIXGATE_APPLY_STOP_AFTER=\(i)", code: EINTR) }
                try step()
            } catch {
                throw ApplyStopped(done: steps[..<i].map(\.0), failed: name, notDone: steps[i...].map(\.0), error: error)
            }
        }
        return plan.drift
    }

    private func applyLinks(_ plan: Plan) throws {
        for want in plan.desired.links {
            let live = plan.environment.link(want.name)
            if live == nil { try rtnl.createTun(name: want.name, multiQueue: want.multiQueue) }
            if live == nil || live?.isUp == false || live?.mtu != want.mtu {
                // The queue length only when sixgate creates the device: an
                // operator's later choice stays.
                try rtnl.setLink(name: want.name, up: true, mtu: want.mtu,
                                 txQueueLength: live == nil ? DesiredState.tunQueueLength : nil, alias: DesiredState.linkAlias)
            }
        }
    }

    /// Removes what sixgate owns here, and nothing else: the kernel
    /// datapath's filters and pins (`pins`), the routes carrying any of
    /// `protocols` (or the number the table's comment names), the links
    /// marked as sixgate's, and last the table: no route outlives its rules.
    /// Forwarding sysctls stay as they are: other routing on the host may
    /// depend on them.
    @discardableResult
    public func remove(protocols: Set<UInt8>, pins: String?, table: String = DesiredTable.name) throws -> [Drift] {
        var removed = try pins.map { try KernelProgramPlan.remove(directory: $0, links: try rtnl.links(), inNamespace: inNamespace) } ?? []
        let live = try nfnl.readTable(table)
        let all = protocols.union([DesiredTable.routeProtocol(inComment: live?.comment)].compactMap { $0 })
        // Routes of a link go with it; delete them first so that each is reported.
        let links = try rtnl.links()
        let routes = try rtnl.mainRoutes()
        for proto in all.sorted() {
            let ours = routes.filter { $0.proto == proto && $0.unicast }.map(\.route)
            try RouteBatch.run(.delete, ours, protocol: proto, links: links, namespace: namespace)
            removed += ours.map { Drift(.route, .extra, $0.description) }
            for r in try rtnl.rules(protocol: proto) {
                try rtnl.deleteRule(r, protocol: proto)
                removed.append(Drift(.rule, .extra, r.description))
            }
            for r in try rtnl.localRoutes(protocol: proto) {
                try rtnl.deleteLocalRoute(r, protocol: proto)
                removed.append(Drift(.route, .extra, r.description))
            }
        }
        for l in links where DesiredState.isOwned(l) {
            try rtnl.deleteLink(name: l.name)
            removed.append(Drift(.link, .extra, l.name))
        }
        if live != nil {
            let batch = NftBatch(table: table, firstSeq: nfnl.nextSeq())
            batch.deleteTable()
            try nfnl.send(batch)
            removed.append(Drift(.nft, .extra, "table inet \(table)"))
        }
        return removed
    }
}
