import CNetlink
import Glibc
import Packet

extension RouteNetlink {
    // MARK: - Links

    /// Every link of the namespace.
    public func links() throws -> [LinkInfo] {
        var cache: OpaquePointer?
        let rc = rtnl_link_alloc_cache(socket, AF_UNSPEC, &cache)
        guard rc >= 0, let cache else { throw netlinkError("list links", rc) }
        defer { nl_cache_free(cache) }

        var result: [LinkInfo] = []
        var object = nl_cache_get_first(cache)
        while let link = object {
            object = nl_cache_get_next(link)
            guard let name = rtnl_link_get_name(link) else { continue }
            result.append(LinkInfo(
                name: String(cString: name),
                index: rtnl_link_get_ifindex(link),
                isUp: rtnl_link_get_flags(link) & UInt32(IFF_UP) != 0,
                mtu: Int(rtnl_link_get_mtu(link)),
                kind: rtnl_link_get_type(link).map { String(cString: $0) },
                alias: rtnl_link_get_ifalias(link).map { String(cString: $0) }
            ))
        }
        return result
    }

    /// Creates a persistent TUN device (no packet-info header) that stays after
    /// this call, ready for the datapath to attach its queues.
    ///
    /// When a TUN device of that name already exists with the same flags, the
    /// kernel attaches to it instead and it stays as it was; a device of another
    /// type or with other flags fails with EINVAL, one in use by a single-queue
    /// reader with EBUSY.
    public func createTun(name: String, multiQueue: Bool) throws {
        let operation = "create TUN device \(name)\(multiQueue ? " (multi-queue)" : "")"
        try validateDeviceName(name, operation: operation)
        var flags = Int32(IFF_TUN | IFF_NO_PI)
        if multiQueue { flags |= Int32(IFF_MULTI_QUEUE) }
        var request = ifreq()
        withUnsafeMutableBytes(of: &request.ifr_ifrn.ifrn_name) { buffer in
            buffer.initializeMemory(as: UInt8.self, repeating: 0)
            buffer.copyBytes(from: name.utf8) // fits: validateDeviceName keeps it below IFNAMSIZ
        }
        request.ifr_ifru.ifru_flags = Int16(truncatingIfNeeded: flags)

        try NetworkNamespace.run(in: namespace) { () throws(SystemError) in
            // The device joins the namespace of the thread that opens the control
            // file, hence the open inside `run`.
            let fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { throw SystemError("\(operation): open /dev/net/tun") }
            defer { close(fd) }
            guard sixgate_ioctl_ptr(fd, sixgate_tunsetiff(), &request) == 0 else {
                throw SystemError("\(operation): TUNSETIFF")
            }
            // Without persistence the device would vanish with this descriptor.
            guard sixgate_ioctl_int(fd, sixgate_tunsetpersist(), 1) == 0 else {
                throw SystemError("\(operation): TUNSETPERSIST")
            }
        }
    }

    /// Deletes a link of any kind (a persistent TUN device included).
    public func deleteLink(name: String) throws {
        let operation = "delete link \(name)"
        try validateDeviceName(name, operation: operation)
        guard let link = rtnl_link_alloc() else { throw SystemError(operation, code: ENOMEM) }
        defer { rtnl_link_put(link) }
        rtnl_link_set_name(link, name)
        let rc = rtnl_link_delete(socket, link)
        if rc < 0 { throw netlinkError(operation, rc) }
    }

    /// Changes the administrative state, the MTU, the transmit queue length
    /// and/or the alias; nil leaves it as it is.
    public func setLink(name: String, up: Bool? = nil, mtu: Int? = nil, txQueueLength: Int? = nil, alias: String? = nil) throws {
        var what: [String] = []
        if let up { what.append(up ? "up" : "down") }
        if let mtu { what.append("mtu \(mtu)") }
        if let txQueueLength { what.append("txqueuelen \(txQueueLength)") }
        if let alias { what.append("alias \(alias)") }
        let operation = "set link \(name) \(what.joined(separator: " "))"
        try validateDeviceName(name, operation: operation)
        if let mtu, !(68...65535).contains(mtu) {
            throw SystemError("\(operation): MTU outside 68...65535", code: EINVAL)
        }
        guard up != nil || mtu != nil || txQueueLength != nil || alias != nil else { return }

        var current: OpaquePointer?
        let rc = rtnl_link_get_kernel(socket, 0, name, &current)
        guard rc >= 0, let current else { throw netlinkError(operation, rc) }
        defer { rtnl_link_put(current) }
        guard let change = rtnl_link_alloc() else { throw SystemError(operation, code: ENOMEM) }
        defer { rtnl_link_put(change) }
        switch up {
        case true?: rtnl_link_set_flags(change, UInt32(IFF_UP))
        // unset_flags records IFF_UP in the change mask, so "down" is sent too.
        case false?: rtnl_link_unset_flags(change, UInt32(IFF_UP))
        case nil: break
        }
        if let mtu { rtnl_link_set_mtu(change, UInt32(mtu)) }
        if let txQueueLength { rtnl_link_set_txqlen(change, UInt32(clamping: txQueueLength)) }
        if let alias { rtnl_link_set_ifalias(change, alias) }
        let changed = rtnl_link_change(socket, current, change, 0)
        if changed < 0 { throw netlinkError(operation, changed) }
    }

    // MARK: - Addresses

    /// Every address of every link, both families.
    public func addresses() throws -> [InterfaceAddress] {
        let names = try Dictionary(links().map { ($0.index, $0.name) }, uniquingKeysWith: { a, _ in a })
        var cache: OpaquePointer?
        let rc = rtnl_addr_alloc_cache(socket, &cache)
        guard rc >= 0, let cache else { throw netlinkError("list addresses", rc) }
        defer { nl_cache_free(cache) }

        var result: [InterfaceAddress] = []
        var object = nl_cache_get_first(cache)
        while let addr = object {
            object = nl_cache_get_next(addr)
            guard let address = ipAddress(of: rtnl_addr_get_local(addr)) else { continue }
            let index = rtnl_addr_get_ifindex(addr)
            result.append(InterfaceAddress(device: names[index] ?? "if\(index)", address: address,
                                           length: Int(rtnl_addr_get_prefixlen(addr))))
        }
        return result
    }

    /// Adds an address. IPv6 addresses skip duplicate address detection, so they
    /// are usable at once rather than tentative for a second or more.
    public func addAddress(device: String, address: IPAddress, length: Int) throws {
        let operation = "add address \(address)/\(length) dev \(device)"
        let addr = try makeInterfaceAddress(device: device, address: address, length: length, operation: operation)
        defer { rtnl_addr_put(addr) }
        if case .v6 = address { rtnl_addr_set_flags(addr, UInt32(IFA_F_NODAD)) }
        let rc = rtnl_addr_add(socket, addr, NLM_F_CREATE | NLM_F_EXCL)
        if rc < 0 { throw netlinkError(operation, rc) }
    }

    public func deleteAddress(device: String, address: IPAddress, length: Int) throws {
        let operation = "delete address \(address)/\(length) dev \(device)"
        let addr = try makeInterfaceAddress(device: device, address: address, length: length, operation: operation)
        defer { rtnl_addr_put(addr) }
        let rc = rtnl_addr_delete(socket, addr, 0)
        if rc < 0 { throw netlinkError(operation, rc) }
    }

    private func makeInterfaceAddress(device: String, address: IPAddress, length: Int, operation: String) throws -> OpaquePointer {
        let (family, bytes) = address.netlinkParts
        guard (0...bytes.count * 8).contains(length) else {
            throw SystemError("\(operation): length outside 0...\(bytes.count * 8)", code: EINVAL)
        }
        let index = try ifindex(of: device, operation: operation)
        let local = try makeAddress(family: family, bytes: bytes, prefixLength: length, operation: operation)
        defer { nl_addr_put(local) }
        guard let addr = rtnl_addr_alloc() else { throw SystemError(operation, code: ENOMEM) }
        rtnl_addr_set_ifindex(addr, index)
        rtnl_addr_set_family(addr, family)
        let rc = rtnl_addr_set_local(addr, local)
        if rc < 0 {
            rtnl_addr_put(addr)
            throw netlinkError(operation, rc)
        }
        rtnl_addr_set_prefixlen(addr, Int32(length))
        return addr
    }
}
