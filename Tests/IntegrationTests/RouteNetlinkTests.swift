import Foundation
import Glibc
import NetnsRig
import Packet
import Testing

@testable import Reconcile
@testable import Netlink

/// RouteNetlink and Sysctl against the real kernel, inside the rig's gw namespace,
/// each result cross-checked with iproute2 (or /proc) run in the same namespace.
@Suite(.serialized) struct RouteNetlinkTests {
    static let proto: UInt8 = 164

    @Test func createsPersistentTunDevicesAndListsLinksAsIpDoes() throws {
        let rig = try NetnsRig.standard()
        defer { rig.teardown() }
        let nl = try RouteNetlink(namespace: rig.ns("gw"))

        try nl.createTun(name: "sg-test", multiQueue: true)
        try nl.createTun(name: "sg-single", multiQueue: false)

        let multi = try ip(rig, ["-d", "link", "show", "sg-test"])
        #expect(multi.contains("tun type tun") && multi.contains("multi_queue") && multi.contains("persist on"), "\(multi)")
        #expect(multi.contains("pi off"), "IFF_NO_PI: \(multi)")
        let single = try ip(rig, ["-d", "link", "show", "sg-single"])
        #expect(single.contains("tun type tun") && single.contains("persist on") && !single.contains("multi_queue"), "\(single)")

        let links = try nl.links()
        let tun = try #require(links.first { $0.name == "sg-test" })
        #expect(tun.kind == "tun", "libnl reports IFLA_INFO_KIND of a TUN device")
        #expect(!tun.isUp && tun.mtu == 1500)
        #expect(links.first { $0.name == "c4" }?.kind == "veth")
        let lo = try #require(links.first { $0.name == "lo" })
        #expect(lo.kind == nil && lo.isUp && lo.index == 1)

        // Every link ip knows, with the same index, flags and MTU.
        let fromIp = try ipLinks(rig)
        #expect(Set(links.map(\.name)) == Set(fromIp.keys))
        for link in links {
            let other = try #require(fromIp[link.name])
            #expect(link.index == other.index && link.isUp == other.isUp && link.mtu == other.mtu, "\(link) vs \(other)")
        }
    }

    @Test func changesStateAndMTUAndDeletesLinks() throws {
        let rig = try NetnsRig.standard()
        defer { rig.teardown() }
        let nl = try RouteNetlink(namespace: rig.ns("gw"))
        try nl.createTun(name: "sg-test", multiQueue: true)

        try nl.setLink(name: "sg-test", up: true, mtu: 1400)
        var seen = try #require(try ipLinks(rig)["sg-test"])
        #expect(seen.isUp && seen.mtu == 1400)
        #expect(try nl.links().first { $0.name == "sg-test" } == LinkInfo(name: "sg-test", index: seen.index, isUp: true, mtu: 1400, kind: "tun"))

        try nl.setLink(name: "sg-test", up: false)
        seen = try #require(try ipLinks(rig)["sg-test"])
        #expect(!seen.isUp && seen.mtu == 1400, "down, MTU left as it was")

        try nl.setLink(name: "sg-test", mtu: 9000)
        seen = try #require(try ipLinks(rig)["sg-test"])
        #expect(!seen.isUp && seen.mtu == 9000, "MTU changed, state left as it was")

        try nl.deleteLink(name: "sg-test")
        #expect(!(try rig.run("gw", ["ip", "link", "show", "sg-test"]).succeeded))
        #expect(try nl.links().contains { $0.name == "sg-test" } == false)
    }

    @Test func addsListsAndDeletesOwnRoutesOnly() throws {
        let rig = try NetnsRig.standard()
        defer { rig.teardown() }
        let nl = try RouteNetlink(namespace: rig.ns("gw"))
        let r6 = OwnedRoute(destination: try IPPrefix.parse("2001:db8:64::/96"), device: "c6", metric: 100)
        let r4 = OwnedRoute(destination: try IPPrefix.parse("203.0.113.128/25"), device: "c4", metric: 50)

        try nl.addRoute(r6, protocol: Self.proto)
        try nl.addRoute(r4, protocol: Self.proto)
        #expect(try ip(rig, ["-6", "route", "show", "proto", "164"]).contains("2001:db8:64::/96 dev c6 metric 100"))
        #expect(try ip(rig, ["-4", "route", "show", "proto", "164"]).contains("203.0.113.128/25 dev c4 scope link metric 50"))

        // Routes of other owners: other protocols (one with our destination), and
        // our protocol in another table.
        try rig.checked("gw", ["ip", "route", "add", "192.0.2.0/24", "dev", "c4", "proto", "static"])
        try rig.checked("gw", ["ip", "route", "add", "203.0.113.128/25", "dev", "c4", "proto", "static"])
        try rig.checked("gw", ["ip", "-6", "route", "add", "2001:db8:65::/96", "dev", "c6", "proto", "165", "metric", "100"])
        try rig.checked("gw", ["ip", "route", "add", "192.0.2.0/24", "dev", "c4", "proto", "164", "table", "100"])
        #expect(Set(try nl.routes(protocol: Self.proto)) == [r4, r6])
        #expect(try nl.routes(protocol: 165) == [OwnedRoute(destination: try IPPrefix.parse("2001:db8:65::/96"), device: "c6", metric: 100)])

        let duplicate = #expect(throws: SystemError.self) { try nl.addRoute(r4, protocol: Self.proto) }
        #expect(duplicate?.code == EEXIST, "\(String(describing: duplicate))")

        // The protocol is part of the match: deleting "ours" where only a foreign
        // route with that destination exists fails and leaves it.
        let foreign4 = OwnedRoute(destination: try IPPrefix.parse("192.0.2.0/24"), device: "c4", metric: 0)
        let foreign6 = OwnedRoute(destination: try IPPrefix.parse("2001:db8:65::/96"), device: "c6", metric: 100)
        #expect(throws: SystemError.self) { try nl.deleteRoute(foreign4, protocol: Self.proto) }
        #expect(throws: SystemError.self) { try nl.deleteRoute(foreign6, protocol: Self.proto) }
        #expect(try ip(rig, ["-4", "route", "show", "proto", "static"]).contains("192.0.2.0/24 dev c4 scope link"))
        #expect(try ip(rig, ["-6", "route", "show", "proto", "165"]).contains("2001:db8:65::/96 dev c6 metric 100"))

        try nl.deleteRoute(r4, protocol: Self.proto)
        #expect(!(try ip(rig, ["-4", "route", "show", "proto", "164"]).contains("203.0.113.128/25")))
        #expect(try ip(rig, ["-4", "route", "show", "proto", "static"]).contains("203.0.113.128/25 dev c4 scope link"),
                "the foreign route with the same destination stays")
        #expect(try nl.routes(protocol: Self.proto) == [r6])

        try nl.deleteRoute(r6, protocol: Self.proto)
        #expect(try ip(rig, ["-6", "route", "show", "proto", "164"]).trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        #expect(try nl.routes(protocol: Self.proto).isEmpty)
        let again = #expect(throws: SystemError.self) { try nl.deleteRoute(r6, protocol: Self.proto) }
        #expect(again?.description.contains("2001:db8:64::/96") == true, "\(String(describing: again))")
    }

    /// The multiplexer's policy routing: a rule by mark and a local route in
    /// a table of its own, listed and deleted by protocol only.
    @Test func addsListsAndDeletesOwnRulesAndLocalRoutes() throws {
        let rig = try NetnsRig.standard()
        defer { rig.teardown() }
        let nl = try RouteNetlink(namespace: rig.ns("gw"))
        let rule = OwnedRule(ipv6: true, mark: 0x6b, table: 100, priority: 100)
        let local = OwnedLocalRoute(destination: try IPPrefix.parse("::/0"), table: 100)
        try nl.addRule(rule, protocol: Self.proto)
        try nl.addLocalRoute(local, protocol: Self.proto)
        let rules = try ip(rig, ["-N", "-6", "rule", "show"]), table = try ip(rig, ["-N", "-6", "route", "show", "table", "100"])
        #expect(rules.contains("100:\tfrom all fwmark 0x6b lookup 100 proto 164"), "\(rules)")
        #expect(table.contains("2 default dev lo proto 164"), "RTN_LOCAL (2): \(table)")

        // Another owner's rule and local route, in the same table.
        try rig.checked("gw", ["ip", "-6", "rule", "add", "fwmark", "0x6c", "lookup", "100", "priority", "101"])
        try rig.checked("gw", ["ip", "-6", "route", "add", "local", "2001:db8:9::/48", "dev", "lo", "table", "100"])
        #expect(try nl.rules(protocol: Self.proto) == [rule])
        #expect(try nl.localRoutes(table: 100, protocol: Self.proto) == [local])
        let duplicate = #expect(throws: SystemError.self) { try nl.addRule(rule, protocol: Self.proto) }
        #expect(duplicate?.code == EEXIST, "\(String(describing: duplicate))")

        try nl.deleteRule(rule, protocol: Self.proto)
        try nl.deleteLocalRoute(local, protocol: Self.proto)
        #expect(try nl.rules(protocol: Self.proto).isEmpty && nl.localRoutes(table: 100, protocol: Self.proto).isEmpty)
        #expect(try ip(rig, ["-6", "rule", "show"]).contains("fwmark 0x6c lookup 100"), "the other owner's rule stays")
        #expect(try ip(rig, ["-6", "route", "show", "table", "100"]).contains("local 2001:db8:9::/48 dev lo"), "the other owner's route stays")
    }

    @Test func addsListsAndDeletesAddressesWithoutDAD() throws {
        let rig = try NetnsRig.standard()
        defer { rig.teardown() }
        let nl = try RouteNetlink(namespace: rig.ns("gw"))
        // The rig turns DAD off; turn it on for c6 so that NODAD has something to skip.
        try Sysctl(namespace: rig.ns("gw")).write("net.ipv6.conf.c6.accept_dad", "1")
        // Control: the same kind of address added without nodad is tentative.
        try rig.checked("gw", ["ip", "addr", "add", "2001:db8:98::1/64", "dev", "c6"])
        #expect(try ip(rig, ["-6", "addr", "show", "dev", "c6"]).contains("2001:db8:98::1/64 scope global tentative"))

        let a6 = try #require(IPAddress("2001:db8:99::1")), a4 = try #require(IPAddress("192.0.2.1"))
        try nl.addAddress(device: "c6", address: a6, length: 64)
        try nl.addAddress(device: "c4", address: a4, length: 24)
        let shown6 = try ip(rig, ["-6", "addr", "show", "dev", "c6"])
        #expect(shown6.contains("inet6 2001:db8:99::1/64 scope global nodad") && !shown6.contains("2001:db8:99::1/64 scope global tentative"), "\(shown6)")
        #expect(try ip(rig, ["-4", "addr", "show", "dev", "c4"]).contains("inet 192.0.2.1/24"))

        let listed = try nl.addresses()
        #expect(listed.contains(InterfaceAddress(device: "c6", address: a6, length: 64)))
        #expect(listed.contains(InterfaceAddress(device: "c4", address: a4, length: 24)))
        #expect(Set(listed) == Set(try ipAddresses(rig)), "every address, as ip shows them")

        let duplicate = #expect(throws: SystemError.self) { try nl.addAddress(device: "c4", address: a4, length: 24) }
        #expect(duplicate?.code == EEXIST)

        try nl.deleteAddress(device: "c6", address: a6, length: 64)
        try nl.deleteAddress(device: "c4", address: a4, length: 24)
        #expect(!(try ip(rig, ["addr", "show"]).contains("2001:db8:99::1")))
        #expect(!(try ip(rig, ["addr", "show"]).contains("192.0.2.1/")))
        #expect(Set(try nl.addresses()) == Set(try ipAddresses(rig)))
        #expect(!(try nl.addresses().contains { $0.address == a6 || $0.address == a4 }))
        #expect(throws: SystemError.self) { try nl.deleteAddress(device: "c4", address: a4, length: 24) }
    }

    @Test func readsAndWritesSysctlsOfTheNamespace() throws {
        let rig = try NetnsRig.standard()
        defer { rig.teardown() }
        let sysctl = Sysctl(namespace: rig.ns("gw"))
        let key = "net.ipv4.conf.c4.forwarding", file = "/proc/sys/net/ipv4/conf/c4/forwarding"

        #expect(try sysctl.read(key) == "1", "gw forwards")
        try sysctl.write(key, "0")
        #expect(try rig.checked("gw", ["cat", file]).stdout == "0\n")
        #expect(try sysctl.read(key) == "0")
        try sysctl.write(key, "1")
        #expect(try rig.checked("gw", ["cat", file]).stdout == "1\n")
        #expect(try rig.checked("c4", ["cat", "/proc/sys/net/ipv4/conf/all/forwarding"]).stdout == "0\n", "other namespaces keep theirs")

        // Interface names with dots.
        try RouteNetlink(namespace: rig.ns("gw")).createTun(name: "sg.dot", multiQueue: false)
        try sysctl.write("net.ipv4.conf.sg.dot.forwarding", "0")
        #expect(try rig.checked("gw", ["cat", "/proc/sys/net/ipv4/conf/sg.dot/forwarding"]).stdout == "0\n")
        #expect(try sysctl.read("net.ipv4.conf.sg.dot.forwarding") == "0")

        let refused = #expect(throws: SystemError.self) { try sysctl.write(key, "banana") }
        #expect(refused?.code == EINVAL && refused?.description.contains(key) == true)
        let missing = #expect(throws: SystemError.self) { try sysctl.read("net.ipv4.conf.sg-missing.forwarding") }
        #expect(missing?.code == ENOENT && missing?.description.contains("sg-missing") == true)
    }

    @Test func mapsDottedKeysToProcPaths() throws {
        #expect(try Sysctl.path(for: "net.ipv6.conf.all.forwarding") == "/proc/sys/net/ipv6/conf/all/forwarding")
        #expect(try Sysctl.path(for: "net.ipv4.conf.eth0.100.rp_filter") == "/proc/sys/net/ipv4/conf/eth0.100/rp_filter")
        #expect(try Sysctl.path(for: "net.ipv6.neigh.a.b.c.proxy_delay") == "/proc/sys/net/ipv6/neigh/a.b.c/proxy_delay")
        #expect(try Sysctl.path(for: "net.ipv4.ip_forward") == "/proc/sys/net/ipv4/ip_forward")
        for bad in ["", "net", "net..ipv4", "net.ipv4.conf/../x", "net.ipv4.conf...forwarding", "net.ipv4.conf.x."] {
            #expect(throws: SystemError.self, "\(bad)") { try Sysctl.path(for: bad) }
        }
    }

    @Test func operationsOnAMissingDeviceNameTheDevice() throws {
        let rig = try NetnsRig.standard()
        defer { rig.teardown() }
        let nl = try RouteNetlink(namespace: rig.ns("gw"))
        let route = OwnedRoute(destination: try IPPrefix.parse("192.0.2.0/24"), device: "sg-missing", metric: 1)
        let address = try #require(IPAddress("2001:db8:99::1"))
        let attempts: [(String, () throws -> Void)] = [
            ("addRoute", { try nl.addRoute(route, protocol: Self.proto) }),
            ("deleteRoute", { try nl.deleteRoute(route, protocol: Self.proto) }),
            ("setLink", { try nl.setLink(name: "sg-missing", up: true) }),
            ("deleteLink", { try nl.deleteLink(name: "sg-missing") }),
            ("addAddress", { try nl.addAddress(device: "sg-missing", address: address, length: 64) }),
            ("deleteAddress", { try nl.deleteAddress(device: "sg-missing", address: address, length: 64) }),
        ]
        for (name, attempt) in attempts {
            let error = #expect(throws: SystemError.self, "\(name)") { try attempt() }
            #expect(error?.code == ENODEV, "\(name): \(String(describing: error))")
            #expect(error?.description.contains("sg-missing") == true, "\(name): \(String(describing: error))")
        }
        let badName = #expect(throws: SystemError.self) { try nl.createTun(name: "a-name-that-is-too-long", multiQueue: false) }
        #expect(badName?.code == EINVAL)
    }

    /// Everything above happens in gw: the root namespace (read only here) keeps
    /// its links and has no route of ours, during and after.
    @Test func leavesTheRootNamespaceAlone() throws {
        let linksBefore = try rootLinks()
        let routesBefore = try rootRoutes()
        // Read-only view of the root namespace: nil means "stay where you are".
        let rootNames = try RouteNetlink(namespace: nil).links().map(\.name).sorted()
        #expect(rootNames == linksBefore.map { String($0.split(separator: "@")[0]) }.sorted())
        do {
            let rig = try NetnsRig.standard()
            defer { rig.teardown() }
            let nl = try RouteNetlink(namespace: rig.ns("gw"))
            try nl.createTun(name: "sg-test", multiQueue: true)
            try nl.setLink(name: "sg-test", up: true, mtu: 1400)
            try nl.addRoute(OwnedRoute(destination: try IPPrefix.parse("2001:db8:64::/96"), device: "sg-test", metric: 100), protocol: Self.proto)
            try nl.addRoute(OwnedRoute(destination: try IPPrefix.parse("192.0.2.0/24"), device: "sg-test", metric: 100), protocol: Self.proto)
            try nl.addAddress(device: "sg-test", address: try #require(IPAddress("2001:db8:99::1")), length: 64)
            try Sysctl(namespace: rig.ns("gw")).write("net.ipv6.conf.sg-test.forwarding", "1")
            #expect(try nl.routes(protocol: Self.proto).count == 2, "the routes exist in gw")
            #expect(try rootLinks() == linksBefore, "no link appeared in the root namespace")
            #expect(try rootRoutes() == routesBefore, "no route appeared in the root namespace")
        }
        #expect(try rootLinks() == linksBefore)
        #expect(try rootRoutes() == routesBefore)
    }

    @Test func valueTypesRoundTripThroughCodable() throws {
        let route = OwnedRoute(destination: try IPPrefix.parse("2001:db8:64::/96"), device: "sg-nat64", metric: 1024)
        let address = InterfaceAddress(device: "c6", address: try #require(IPAddress("2001:db8:1::1")), length: 64)
        let link = LinkInfo(name: "sg-nat64", index: 7, isUp: true, mtu: 1500, kind: "tun")
        #expect(try JSONDecoder().decode(OwnedRoute.self, from: JSONEncoder().encode(route)) == route)
        #expect(try JSONDecoder().decode(InterfaceAddress.self, from: JSONEncoder().encode(address)) == address)
        #expect(try JSONDecoder().decode(LinkInfo.self, from: JSONEncoder().encode(link)) == link)
        let text = try #require(String(data: JSONEncoder().encode(route), encoding: .utf8))
        #expect(text.contains("\"2001:db8:64::\\/96\"") || text.contains("\"2001:db8:64::/96\""), "\(text)")
        let bad = Data(#"{"destination":"2001:db8:64::1/96","device":"x","metric":1}"#.utf8)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(OwnedRoute.self, from: bad) }
    }
}

// MARK: - iproute2's view

private func ip(_ rig: NetnsRig, _ args: [String]) throws -> String {
    try rig.checked("gw", ["ip"] + args).stdout
}

private struct IpLink { let index: Int32; let isUp: Bool; let mtu: Int }

/// `ip -o link show` in gw: "5: sg-test: <NO-CARRIER,POINTOPOINT,UP> mtu 1400 …".
private func ipLinks(_ rig: NetnsRig) throws -> [String: IpLink] {
    var result: [String: IpLink] = [:]
    for line in try ip(rig, ["-o", "link", "show"]).split(separator: "\n") {
        let fields = line.split(separator: " ")
        guard fields.count > 4, let index = Int32(fields[0].dropLast()),
              let open = line.firstIndex(of: "<"), let close = line.firstIndex(of: ">"),
              let mtuAt = fields.firstIndex(of: "mtu"), let mtu = Int(fields[mtuAt + 1]) else { continue }
        let name = String(fields[1].dropLast().split(separator: "@")[0])
        let flags = line[line.index(after: open)..<close].split(separator: ",")
        result[name] = IpLink(index: index, isUp: flags.contains("UP"), mtu: mtu)
    }
    return result
}

/// `ip -o addr show` in gw: "2: c6    inet6 2001:db8:1::1/64 scope global …".
private func ipAddresses(_ rig: NetnsRig) throws -> [InterfaceAddress] {
    try ip(rig, ["-o", "addr", "show"]).split(separator: "\n").compactMap { line in
        let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count > 3, fields[2] == "inet" || fields[2] == "inet6" else { return nil }
        let parts = fields[3].split(separator: "/")
        guard parts.count == 2, let address = IPAddress(parts[0]), let length = Int(parts[1]) else { return nil }
        return InterfaceAddress(device: String(fields[1]), address: address, length: length)
    }
}

/// Routes of our protocol in the root namespace, read only.
private func rootRoutes() throws -> [String] {
    try ["-4", "-6"].map { family in
        try Spawn.run(["ip", family, "route", "show", "proto", "164"], timeout: .seconds(10), scratch: NSTemporaryDirectory()).stdout
    }
}
