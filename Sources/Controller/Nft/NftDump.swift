import CNetlink
import Glibc
import Packet

/// Reads sixgate's table back from the kernel into the model, so that audit and
/// apply compare like with like. Only the named table of family inet is read;
/// everything else on the host is invisible here.
extension NetfilterSocket {
    private static let family = UInt16(NFPROTO_INET)

    func readTable(_ name: String) throws -> NftTable? {
        var table: NftTable?
        try dump("get table inet \(name)", build: { buf, seq in
            let nlh = nftnl_nlmsg_build_hdr(buf.assumingMemoryBound(to: CChar.self), UInt16(NFT_MSG_GETTABLE.rawValue), Self.family, UInt16(NLM_F_ACK), seq)!
            let t = nftnl_table_alloc()
            defer { nftnl_table_free(t) }
            nftnl_table_set_str(t, attr(NFTNL_TABLE_NAME), name)
            nftnl_table_nlmsg_build_payload(nlh, t)
            return nlh
        }, parse: { nlh in
            let t = nftnl_table_alloc()
            defer { nftnl_table_free(t) }
            guard nftnl_table_nlmsg_parse(nlh, t) == 0 else { return }
            var result = NftTable(name: name)
            result.comment = userComment(type: UInt8(NFTNL_UDATA_TABLE_COMMENT.rawValue)) { nftnl_table_get_data(t, attr(NFTNL_TABLE_USERDATA), $0) }
            table = result
        })
        guard var t = table else { return nil }
        t.counters = try readObjects(table: name)
        t.sets = try readSets(table: name)
        t.chains = try readChains(table: name)
        let rules = try readRules(table: name)
        for i in t.chains.indices { t.chains[i].rules = rules[t.chains[i].name] ?? [] }
        return t
    }

    /// A family-wide dump, each answer parsed by `parse`.
    private func dumpAll(_ what: String, _ type: nf_tables_msg_types, parse: (UnsafePointer<nlmsghdr>) throws -> Void) throws {
        try dump(what, build: { buf, seq in
            nftnl_nlmsg_build_hdr(buf.assumingMemoryBound(to: CChar.self), UInt16(type.rawValue), Self.family, UInt16(NLM_F_DUMP | NLM_F_ACK), seq)!
        }, parse: parse)
    }

    private func readObjects(table: String) throws -> [NftCounter] {
        var out: [NftCounter] = []
        try dumpAll("list objects", NFT_MSG_GETOBJ) { nlh in
            let o = nftnl_obj_alloc()
            defer { nftnl_obj_free(o) }
            guard nftnl_obj_nlmsg_parse(nlh, o) == 0, String(cString: nftnl_obj_get_str(o, attr(NFTNL_OBJ_TABLE))) == table else { return }
            let name = String(cString: nftnl_obj_get_str(o, attr(NFTNL_OBJ_NAME)))
            let type = nftnl_obj_get_u32(o, attr(NFTNL_OBJ_TYPE))
            let comment = userComment(type: UInt8(NFTNL_UDATA_OBJ_COMMENT.rawValue)) { nftnl_obj_get_data(o, attr(NFTNL_OBJ_USERDATA), $0) }
            // Another kind of object in our table is drift: it can never match a counter.
            var c = NftCounter(name: type == UInt32(NFT_OBJECT_COUNTER) ? name : "\(name) (object type \(type))", comment: comment)
            c.packets = nftnl_obj_get_u64(o, attr(NFTNL_OBJ_CTR_PKTS))
            c.bytes = nftnl_obj_get_u64(o, attr(NFTNL_OBJ_CTR_BYTES))
            out.append(c)
        }
        return out
    }

    private func readSets(table: String) throws -> [NftSet] {
        var found: [(String, UInt32, UInt32, String?)] = []
        try dumpAll("list sets", NFT_MSG_GETSET) { nlh in
            let s = nftnl_set_alloc()
            defer { nftnl_set_free(s) }
            guard nftnl_set_nlmsg_parse(nlh, s) == 0, String(cString: nftnl_set_get_str(s, attr(NFTNL_SET_TABLE))) == table else { return }
            let comment = userComment(type: 7) { nftnl_set_get_data(s, attr(NFTNL_SET_USERDATA), $0) }  // NFTNL_UDATA_SET_COMMENT
            found.append((String(cString: nftnl_set_get_str(s, attr(NFTNL_SET_NAME))), nftnl_set_get_u32(s, attr(NFTNL_SET_KEY_TYPE)),
                          nftnl_set_get_u32(s, attr(NFTNL_SET_FLAGS)), comment))
        }
        return try found.map { name, keyType, flags, comment in
            let type: NftKeyType? = keyType == 7 ? .ipv4 : keyType == 8 ? .ipv6 : nil
            guard let type, flags == UInt32(NFT_SET_INTERVAL.rawValue) else {
                return NftSet(name: name, keyType: .ipv4, comment: "foreign set (type \(keyType), flags \(flags))", elements: [])
            }
            return NftSet(name: name, keyType: type, comment: comment, elements: try readElements(table: table, set: name, type: type))
        }
    }

    private func readElements(table: String, set: String, type: NftKeyType) throws -> [IPPrefix] {
        var keys: [(UInt128, Bool)] = []
        try dump("list elements of set \(set)", build: { buf, seq in
            let nlh = nftnl_nlmsg_build_hdr(buf.assumingMemoryBound(to: CChar.self), UInt16(NFT_MSG_GETSETELEM.rawValue), Self.family, UInt16(NLM_F_DUMP | NLM_F_ACK), seq)!
            let s = nftnl_set_alloc()
            defer { nftnl_set_free(s) }
            nftnl_set_set_str(s, attr(NFTNL_SET_TABLE), table)
            nftnl_set_set_str(s, attr(NFTNL_SET_NAME), set)
            nftnl_set_elems_nlmsg_build_payload(nlh, s)
            return nlh
        }, parse: { nlh in
            let s = nftnl_set_alloc()
            defer { nftnl_set_free(s) }
            guard nftnl_set_elems_nlmsg_parse(nlh, s) == 0 else { return }
            let iter = nftnl_set_elems_iter_create(s)
            defer { nftnl_set_elems_iter_destroy(iter) }
            var e = nftnl_set_elems_iter_cur(iter)
            while let elem = e {
                var len: UInt32 = 0
                if let p = nftnl_set_elem_get(elem, attr(NFTNL_SET_ELEM_KEY), &len) {
                    let key = UnsafeRawBufferPointer(start: p, count: Int(len)).reduce(UInt128(0)) { $0 << 8 | UInt128($1) }
                    let isEnd = nftnl_set_elem_is_set(elem, attr(NFTNL_SET_ELEM_FLAGS))
                        && nftnl_set_elem_get_u32(elem, attr(NFTNL_SET_ELEM_FLAGS)) & UInt32(NFT_SET_ELEM_INTERVAL_END.rawValue) != 0
                    keys.append((key, isEnd))
                }
                e = nftnl_set_elems_iter_next(iter)
            }
        })
        // Rebuild ranges: a start element opens one, the next end element (one
        // past the last address) closes it; an unclosed range runs to the top.
        let bits = type.length * 8
        var ranges: [(UInt128, UInt128)] = []
        var open: UInt128?
        for (key, isEnd) in keys.sorted(by: { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 && !$1.1) }) {
            if isEnd {
                if let start = open, key > 0 { ranges.append((start, key - 1)) }
                open = nil
            } else {
                open = key
            }
        }
        if let start = open { ranges.append((start, bits == 128 ? .max : (UInt128(1) << bits) - 1)) }
        return ranges.flatMap { IntervalMath.cover(from: $0.0, to: $0.1, bits: bits) }
    }

    private func readChains(table: String) throws -> [NftChain] {
        var out: [NftChain] = []
        try dumpAll("list chains", NFT_MSG_GETCHAIN) { nlh in
            let c = nftnl_chain_alloc()
            defer { nftnl_chain_free(c) }
            guard nftnl_chain_nlmsg_parse(nlh, c) == 0, String(cString: nftnl_chain_get_str(c, attr(NFTNL_CHAIN_TABLE))) == table else { return }
            let name = String(cString: nftnl_chain_get_str(c, attr(NFTNL_CHAIN_NAME)))
            let isBase = nftnl_chain_is_set(c, attr(NFTNL_CHAIN_HOOKNUM))
            let hookNumber = Int(nftnl_chain_get_u32(c, attr(NFTNL_CHAIN_HOOKNUM)))
            let hook = isBase && hookNumber < NftChain.Hook.allCases.count ? NftChain.Hook.allCases[hookNumber] : nil
            let typeName = nftnl_chain_get_str(c, attr(NFTNL_CHAIN_TYPE)).map { String(cString: $0) } ?? "filter"
            let policy: NftVerdict = nftnl_chain_get_u32(c, attr(NFTNL_CHAIN_POLICY)) == 0 ? .drop : .accept
            var chain = NftChain(name: name, kind: typeName == "nat" ? .nat : .filter, hook: hook,
                                 priority: nftnl_chain_get_s32(c, attr(NFTNL_CHAIN_PRIO)), policy: policy)
            if typeName != "nat", typeName != "filter" { chain.comment = "foreign chain type \(typeName)" }
            chain.comment = chain.comment ?? userComment(type: UInt8(NFTNL_UDATA_CHAIN_COMMENT.rawValue)) { nftnl_chain_get_data(c, attr(NFTNL_CHAIN_USERDATA), $0) }
            out.append(chain)
        }
        return out
    }

    private func readRules(table: String) throws -> [String: [NftRule]] {
        var out: [String: [NftRule]] = [:]
        try dumpAll("list rules", NFT_MSG_GETRULE) { nlh in
            let r = nftnl_rule_alloc()
            defer { nftnl_rule_free(r) }
            guard nftnl_rule_nlmsg_parse(nlh, r) == 0, String(cString: nftnl_rule_get_str(r, attr(NFTNL_RULE_TABLE))) == table else { return }
            let chain = String(cString: nftnl_rule_get_str(r, attr(NFTNL_RULE_CHAIN)))
            var exprs: [NftExpr] = []
            let iter = nftnl_expr_iter_create(r)
            defer { nftnl_expr_iter_destroy(iter) }
            while let x = nftnl_expr_iter_next(iter) { exprs.append(NftExprCodec.decode(x)) }
            let comment = userComment(type: UInt8(NFTNL_UDATA_RULE_COMMENT.rawValue)) { nftnl_rule_get_data(r, attr(NFTNL_RULE_USERDATA), $0) }
            out[chain, default: []].append(NftRule(exprs: exprs, comment: comment, handle: nftnl_rule_get_u64(r, attr(NFTNL_RULE_HANDLE))))
        }
        return out
    }

    /// The comment in an object's user data, read through `get(&len)`.
    private func userComment(type: UInt8, _ get: (UnsafeMutablePointer<UInt32>) -> UnsafeRawPointer?) -> String? {
        var len: UInt32 = 0
        guard let p = get(&len), len > 0 else { return nil }
        return Udata.comment(in: UnsafeRawBufferPointer(start: p, count: Int(len)), type: type)
    }
}
