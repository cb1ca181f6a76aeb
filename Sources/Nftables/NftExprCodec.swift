import CNetlink

/// NftExpr <-> libnftnl expressions. Decoding accepts exactly the shapes that
/// encoding produces; anything else becomes `.foreign`, so that a rule edited by
/// hand can never compare equal to one of ours.
enum NftExprCodec {
    /// libnftnl knows every expression sixgate writes; a build without one could
    /// not express sixgate's rules at all.
    private static func alloc(_ name: String) -> OpaquePointer {
        guard let x = nftnl_expr_alloc(name) else { preconditionFailure("libnftnl lacks the \(name) expression") }
        return x
    }

    private static let dnat: UInt32 = 1            // NFT_NAT_DNAT
    private static let nfprotoIPv6: UInt32 = 10
    private static let protoSpecified: UInt32 = 2  // NF_NAT_RANGE_PROTO_SPECIFIED, as nft sets it for "to [a]:port"
    private static let mapIPs: UInt32 = 1          // NF_NAT_RANGE_MAP_IPS, which the kernel adds for an address

    static func encode(_ e: NftExpr) -> OpaquePointer {
        switch e {
        case .meta(let key, let dreg):
            let x = alloc("meta")
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_META_KEY), key)
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_META_DREG), dreg)
            return x
        case .payload(let base, let offset, let length, let dreg):
            let x = alloc("payload")
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_PAYLOAD_BASE), base)
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_PAYLOAD_OFFSET), offset)
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_PAYLOAD_LEN), length)
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_PAYLOAD_DREG), dreg)
            return x
        case .cmp(let op, let sreg, let data):
            let x = alloc("cmp")
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_CMP_OP), op)
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_CMP_SREG), sreg)
            data.withUnsafeBytes { _ = nftnl_expr_set(x, attr(NFTNL_EXPR_CMP_DATA), $0.baseAddress, UInt32($0.count)) }
            return x
        case .bitwise(let sreg, let dreg, let length, let mask, let xor):
            let x = alloc("bitwise")
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_BITWISE_SREG), sreg)
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_BITWISE_DREG), dreg)
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_BITWISE_LEN), length)
            mask.withUnsafeBytes { _ = nftnl_expr_set(x, attr(NFTNL_EXPR_BITWISE_MASK), $0.baseAddress, UInt32($0.count)) }
            xor.withUnsafeBytes { _ = nftnl_expr_set(x, attr(NFTNL_EXPR_BITWISE_XOR), $0.baseAddress, UInt32($0.count)) }
            return x
        case .lookup(let set, let sreg):
            let x = alloc("lookup")
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_LOOKUP_SREG), sreg)
            nftnl_expr_set_str(x, attr(NFTNL_EXPR_LOOKUP_SET), set)
            return x
        case .ct(let key, let dreg):
            let x = alloc("ct")
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_CT_KEY), key)
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_CT_DREG), dreg)
            return x
        case .objref(let type, let name):
            let x = alloc("objref")
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_OBJREF_IMM_TYPE), type)
            nftnl_expr_set_str(x, attr(NFTNL_EXPR_OBJREF_IMM_NAME), name)
            return x
        case .verdict(let v):
            let x = alloc("immediate")
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_IMM_DREG), 0)  // NFT_REG_VERDICT
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_IMM_VERDICT), UInt32(bitPattern: v))
            return x
        case .masq:
            return alloc("masq")
        case .socket(let key, let dreg):
            let x = alloc("socket")
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_SOCKET_KEY), key)
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_SOCKET_DREG), dreg)
            return x
        case .immediate(let dreg, let data):
            let x = alloc("immediate")
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_IMM_DREG), dreg)
            data.withUnsafeBytes { _ = nftnl_expr_set(x, attr(NFTNL_EXPR_IMM_DATA), $0.baseAddress, UInt32($0.count)) }
            return x
        case .metaSet(let key, let sreg):
            let x = alloc("meta")
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_META_KEY), key)
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_META_SREG), sreg)
            return x
        case .dnat6(let address, let port):
            let x = alloc("nat")
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_NAT_TYPE), Self.dnat)
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_NAT_FAMILY), Self.nfprotoIPv6)
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_NAT_REG_ADDR_MIN), address)
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_NAT_REG_PROTO_MIN), port)
            nftnl_expr_set_u32(x, attr(NFTNL_EXPR_NAT_FLAGS), Self.protoSpecified)
            return x
        case .foreign(let what):
            // Foreign expressions come only from dumps; desired rules never hold one.
            preconditionFailure("cannot write the foreign expression \(what)")
        }
    }

    static func decode(_ x: OpaquePointer) -> NftExpr {
        let name = String(cString: nftnl_expr_get_str(x, attr(NFTNL_EXPR_NAME)))
        func u32(_ a: UInt16) -> UInt32 { nftnl_expr_get_u32(x, a) }
        func has(_ a: UInt16) -> Bool { nftnl_expr_is_set(x, a) }
        func data(_ a: UInt16) -> [UInt8] {
            var len: UInt32 = 0
            guard let p = nftnl_expr_get(x, a, &len) else { return [] }
            return Array(UnsafeRawBufferPointer(start: p, count: Int(len)))
        }
        switch name {
        case "meta" where has(attr(NFTNL_EXPR_META_DREG)):
            return .meta(key: u32(attr(NFTNL_EXPR_META_KEY)), dreg: u32(attr(NFTNL_EXPR_META_DREG)))
        case "payload" where has(attr(NFTNL_EXPR_PAYLOAD_DREG)):
            return .payload(base: u32(attr(NFTNL_EXPR_PAYLOAD_BASE)), offset: u32(attr(NFTNL_EXPR_PAYLOAD_OFFSET)),
                            length: u32(attr(NFTNL_EXPR_PAYLOAD_LEN)), dreg: u32(attr(NFTNL_EXPR_PAYLOAD_DREG)))
        case "cmp":
            return .cmp(op: u32(attr(NFTNL_EXPR_CMP_OP)), sreg: u32(attr(NFTNL_EXPR_CMP_SREG)), data: data(attr(NFTNL_EXPR_CMP_DATA)))
        case "bitwise" where !has(attr(NFTNL_EXPR_BITWISE_OP)) || u32(attr(NFTNL_EXPR_BITWISE_OP)) == 0:
            return .bitwise(sreg: u32(attr(NFTNL_EXPR_BITWISE_SREG)), dreg: u32(attr(NFTNL_EXPR_BITWISE_DREG)),
                            length: u32(attr(NFTNL_EXPR_BITWISE_LEN)), mask: data(attr(NFTNL_EXPR_BITWISE_MASK)), xor: data(attr(NFTNL_EXPR_BITWISE_XOR)))
        case "lookup" where !has(attr(NFTNL_EXPR_LOOKUP_DREG)) && (!has(attr(NFTNL_EXPR_LOOKUP_FLAGS)) || u32(attr(NFTNL_EXPR_LOOKUP_FLAGS)) == 0):
            return .lookup(set: String(cString: nftnl_expr_get_str(x, attr(NFTNL_EXPR_LOOKUP_SET))), sreg: u32(attr(NFTNL_EXPR_LOOKUP_SREG)))
        case "ct" where has(attr(NFTNL_EXPR_CT_DREG)) && !has(attr(NFTNL_EXPR_CT_DIR)):
            return .ct(key: u32(attr(NFTNL_EXPR_CT_KEY)), dreg: u32(attr(NFTNL_EXPR_CT_DREG)))
        case "objref" where has(attr(NFTNL_EXPR_OBJREF_IMM_NAME)):
            return .objref(type: u32(attr(NFTNL_EXPR_OBJREF_IMM_TYPE)), name: String(cString: nftnl_expr_get_str(x, attr(NFTNL_EXPR_OBJREF_IMM_NAME))))
        case "immediate" where has(attr(NFTNL_EXPR_IMM_VERDICT)) && !has(attr(NFTNL_EXPR_IMM_CHAIN)):
            return .verdict(Int32(bitPattern: u32(attr(NFTNL_EXPR_IMM_VERDICT))))
        case "meta" where has(attr(NFTNL_EXPR_META_SREG)):
            return .metaSet(key: u32(attr(NFTNL_EXPR_META_KEY)), sreg: u32(attr(NFTNL_EXPR_META_SREG)))
        case "socket" where has(attr(NFTNL_EXPR_SOCKET_DREG)) && (!has(attr(NFTNL_EXPR_SOCKET_LEVEL)) || u32(attr(NFTNL_EXPR_SOCKET_LEVEL)) == 0):
            return .socket(key: u32(attr(NFTNL_EXPR_SOCKET_KEY)), dreg: u32(attr(NFTNL_EXPR_SOCKET_DREG)))
        case "immediate" where has(attr(NFTNL_EXPR_IMM_DATA)) && has(attr(NFTNL_EXPR_IMM_DREG)) && u32(attr(NFTNL_EXPR_IMM_DREG)) != 0:
            return .immediate(dreg: u32(attr(NFTNL_EXPR_IMM_DREG)), data: data(attr(NFTNL_EXPR_IMM_DATA)))
        case "masq" where !has(attr(NFTNL_EXPR_MASQ_FLAGS)) || u32(attr(NFTNL_EXPR_MASQ_FLAGS)) == 0:
            return has(attr(NFTNL_EXPR_MASQ_REG_PROTO_MIN)) ? .foreign("masq with ports") : .masq
        case "nat" where u32(attr(NFTNL_EXPR_NAT_TYPE)) == Self.dnat && u32(attr(NFTNL_EXPR_NAT_FAMILY)) == Self.nfprotoIPv6
                && u32(attr(NFTNL_EXPR_NAT_FLAGS)) & ~Self.mapIPs == Self.protoSpecified
                && has(attr(NFTNL_EXPR_NAT_REG_ADDR_MIN)) && has(attr(NFTNL_EXPR_NAT_REG_PROTO_MIN))
                // The kernel reports the maximum of a single address and port as the same register.
                && (!has(attr(NFTNL_EXPR_NAT_REG_ADDR_MAX)) || u32(attr(NFTNL_EXPR_NAT_REG_ADDR_MAX)) == u32(attr(NFTNL_EXPR_NAT_REG_ADDR_MIN)))
                && (!has(attr(NFTNL_EXPR_NAT_REG_PROTO_MAX)) || u32(attr(NFTNL_EXPR_NAT_REG_PROTO_MAX)) == u32(attr(NFTNL_EXPR_NAT_REG_PROTO_MIN))):
            return .dnat6(addressRegister: u32(attr(NFTNL_EXPR_NAT_REG_ADDR_MIN)), portRegister: u32(attr(NFTNL_EXPR_NAT_REG_PROTO_MIN)))
        default:
            return .foreign(name)
        }
    }
}
