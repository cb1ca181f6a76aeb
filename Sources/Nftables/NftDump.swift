import CNetlink
import Glibc
import Packet

/// Reads sixgate's table back from the kernel into the model, so that audit and
/// apply compare like with like. Only the named table of family inet is read;
/// everything else on the host is invisible here.
extension NetfilterSocket {
    private static let family = UInt16(NFPROTO_INET)

    public func readTable(_ name: String) throws -> NftTable? {
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
            guard nftnl_table_nlmsg_parse(nlh, t) == 0 else { throw NftDumpError(what: "table \(name)") }
            var result = NftTable(name: name)
            result.flags = nftnl_table_get_u32(t, attr(NFTNL_TABLE_FLAGS))
            result.comment = userComment(type: UInt8(NFTNL_UDATA_TABLE_COMMENT.rawValue)) { nftnl_table_get_data(t, attr(NFTNL_TABLE_USERDATA), $0) }
            table = result
        })
        guard var t = table else { return nil }
        (t.counters, t.foreignObjects) = try readObjects(table: name)
        t.sets = try readSets(table: name)
        t.chains = try readChains(table: name)
        let rules = try readRules(table: name)
        for i in t.chains.indices { t.chains[i].rules = rules[t.chains[i].name] ?? [] }
        return t
    }

    /// A family-wide dump, each answer parsed by `parse`.
    /// A family-wide dump, each answer parsed by `parse`. The request names the
    /// table (attribute 1 in every one of these messages), so kernels that filter
    /// dumps by table send only ours; the parsers filter again for those that don't.
    private func dumpAll(_ what: String, _ type: nf_tables_msg_types, table: String, parse: (UnsafePointer<nlmsghdr>) throws -> Void) throws {
        try dump(what, build: { buf, seq in
            let nlh = nftnl_nlmsg_build_hdr(buf.assumingMemoryBound(to: CChar.self), UInt16(type.rawValue), Self.family, UInt16(NLM_F_DUMP | NLM_F_ACK), seq)!
            mnl_attr_put_strz(nlh, 1, table)
            return nlh
        }, parse: parse)
    }

    private func readObjects(table: String) throws -> ([NftCounter], [String]) {
        var out: [NftCounter] = []
        var foreign: [String] = []
        try dumpAll("list objects", NFT_MSG_GETOBJ, table: table) { nlh in
            let o = nftnl_obj_alloc()
            defer { nftnl_obj_free(o) }
            guard try parsed(nftnl_obj_nlmsg_parse(nlh, o) == 0, nlh, table: table, what: "obj"),
                  cString(nftnl_obj_get_str(o, attr(NFTNL_OBJ_TABLE))) == table else { return }
            let name = cString(nftnl_obj_get_str(o, attr(NFTNL_OBJ_NAME)))
            let type = nftnl_obj_get_u32(o, attr(NFTNL_OBJ_TYPE))
            let comment = userComment(type: UInt8(NFTNL_UDATA_OBJ_COMMENT.rawValue)) { nftnl_obj_get_data(o, attr(NFTNL_OBJ_USERDATA), $0) }
            // Another kind of object in our table can only come from a hand edit.
            guard type == UInt32(NFT_OBJECT_COUNTER) else { foreign.append("\(name) (object type \(type))"); return }
            var c = NftCounter(name: name, comment: comment)
            c.packets = nftnl_obj_get_u64(o, attr(NFTNL_OBJ_CTR_PKTS))
            c.bytes = nftnl_obj_get_u64(o, attr(NFTNL_OBJ_CTR_BYTES))
            out.append(c)
        }
        return (out, foreign)
    }

    private func readSets(table: String) throws -> [NftSet] {
        var found: [(String, UInt32, UInt32, String?)] = []
        try dumpAll("list sets", NFT_MSG_GETSET, table: table) { nlh in
            let s = nftnl_set_alloc()
            defer { nftnl_set_free(s) }
            guard try parsed(nftnl_set_nlmsg_parse(nlh, s) == 0, nlh, table: table, what: "set"),
                  cString(nftnl_set_get_str(s, attr(NFTNL_SET_TABLE))) == table else { return }
            let comment = userComment(type: UInt8(NFTNL_UDATA_SET_COMMENT.rawValue)) { nftnl_set_get_data(s, attr(NFTNL_SET_USERDATA), $0) }
            found.append((cString(nftnl_set_get_str(s, attr(NFTNL_SET_NAME))), nftnl_set_get_u32(s, attr(NFTNL_SET_KEY_TYPE)),
                          nftnl_set_get_u32(s, attr(NFTNL_SET_FLAGS)), comment))
        }
        return try found.map { name, keyType, flags, comment in
            let type = NftKeyType.allCases.first { $0.datatype == keyType }
            guard let type, flags == UInt32(NFT_SET_INTERVAL.rawValue) else {
                return NftSet(name: name, keyType: .ipv4, comment: "foreign set (type \(keyType), flags \(flags))", elements: [])
            }
            return NftSet(name: name, keyType: type, comment: comment, elements: try readElements(table: table, set: name, type: type))
        }
    }

    private func readElements(table: String, set: String, type: NftKeyType) throws -> [IPPrefix] {
        var keys: [(UInt128, Bool)] = []
        try dump("list elements of set \(set)", build: { buf, seq in
            let nlh = nftnl_nlmsg_build_hdr(buf.assumingMemoryBound(to: CChar.self), UInt16(NFT_MSG_GETSETELEM.rawValue), Self.family,
                                            UInt16(NLM_F_DUMP | NLM_F_ACK), seq)!
            let s = nftnl_set_alloc()
            defer { nftnl_set_free(s) }
            nftnl_set_set_str(s, attr(NFTNL_SET_TABLE), table)
            nftnl_set_set_str(s, attr(NFTNL_SET_NAME), set)
            nftnl_set_elems_nlmsg_build_payload(nlh, s)
            return nlh
        }, parse: { nlh in
            let s = nftnl_set_alloc()
            defer { nftnl_set_free(s) }
            guard nftnl_set_elems_nlmsg_parse(nlh, s) == 0 else { throw NftDumpError(what: "elements of set \(set)") }
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
        try dumpAll("list chains", NFT_MSG_GETCHAIN, table: table) { nlh in
            let c = nftnl_chain_alloc()
            defer { nftnl_chain_free(c) }
            guard try parsed(nftnl_chain_nlmsg_parse(nlh, c) == 0, nlh, table: table, what: "chain"),
                  cString(nftnl_chain_get_str(c, attr(NFTNL_CHAIN_TABLE))) == table else { return }
            let name = cString(nftnl_chain_get_str(c, attr(NFTNL_CHAIN_NAME)))
            let isBase = nftnl_chain_is_set(c, attr(NFTNL_CHAIN_HOOKNUM))
            let hookNumber = Int(nftnl_chain_get_u32(c, attr(NFTNL_CHAIN_HOOKNUM)))
            let hook = isBase && hookNumber < NftChain.Hook.allCases.count ? NftChain.Hook.allCases[hookNumber] : nil
            let typeName = nftnl_chain_get_str(c, attr(NFTNL_CHAIN_TYPE)).map { String(cString: $0) } ?? "filter"
            let policy: NftVerdict = nftnl_chain_get_u32(c, attr(NFTNL_CHAIN_POLICY)) == 0 ? .drop : .accept
            var chain = NftChain(name: name, kind: typeName == "nat" ? .nat : .filter, hook: hook,
                                 priority: nftnl_chain_get_s32(c, attr(NFTNL_CHAIN_PRIO)), policy: policy)
            if typeName != "nat", typeName != "filter" { chain.comment = "foreign chain type \(typeName)" }
            chain.comment = chain.comment
                ?? userComment(type: UInt8(NFTNL_UDATA_CHAIN_COMMENT.rawValue)) { nftnl_chain_get_data(c, attr(NFTNL_CHAIN_USERDATA), $0) }
            out.append(chain)
        }
        return out
    }

    private func readRules(table: String) throws -> [String: [NftRule]] {
        var out: [String: [NftRule]] = [:]
        try dumpAll("list rules", NFT_MSG_GETRULE, table: table) { nlh in
            let r = nftnl_rule_alloc()
            defer { nftnl_rule_free(r) }
            guard try parsed(nftnl_rule_nlmsg_parse(nlh, r) == 0, nlh, table: table, what: "rule"),
                  cString(nftnl_rule_get_str(r, attr(NFTNL_RULE_TABLE))) == table else { return }
            let chain = cString(nftnl_rule_get_str(r, attr(NFTNL_RULE_CHAIN)))
            var exprs: [NftExpr] = []
            let iter = nftnl_expr_iter_create(r)
            defer { nftnl_expr_iter_destroy(iter) }
            while let x = nftnl_expr_iter_next(iter) { exprs.append(NftExprCodec.decode(x)) }
            let comment = userComment(type: UInt8(NFTNL_UDATA_RULE_COMMENT.rawValue)) { nftnl_rule_get_data(r, attr(NFTNL_RULE_USERDATA), $0) }
            out[chain, default: []].append(NftRule(exprs: exprs, comment: comment, handle: nftnl_rule_get_u64(r, attr(NFTNL_RULE_HANDLE))))
        }
        return out
    }

    /// Whether a dumped object parsed; a failure inside our own table is an
    /// error (we cannot compare what we cannot read), elsewhere it is not ours.
    private func parsed(_ ok: Bool, _ nlh: UnsafePointer<nlmsghdr>, table: String, what: String) throws -> Bool {
        if ok { return true }
        if Self.rawTableName(nlh) == table { throw NftDumpError(what: "a \(what) in table \(table)") }
        return false
    }

    /// The table name attribute (type 1 in tables, chains, sets, rules and
    /// objects alike) read without libnftnl, for messages it could not parse.
    public static func rawTableName(_ nlh: UnsafePointer<nlmsghdr>) -> String? {
        let header = MemoryLayout<nfgenmsg>.size
        guard var a = mnl_nlmsg_get_payload_offset(nlh, header)?.assumingMemoryBound(to: nlattr.self) else { return nil }
        var left = Int32(mnl_nlmsg_get_payload_len(nlh)) - Int32((header + 3) & ~3)
        while mnl_attr_ok(a, left) {
            if mnl_attr_get_type(a) == 1 { return cString(mnl_attr_get_str(a)) }
            left -= Int32((Int(a.pointee.nla_len) + 3) & ~3)
            guard let next = mnl_attr_next(a) else { return nil }
            a = next
        }
        return nil
    }

    /// The comment in an object's user data, read through `get(&len)`.
    private func userComment(type: UInt8, _ get: (UnsafeMutablePointer<UInt32>) -> UnsafeRawPointer?) -> String? {
        var len: UInt32 = 0
        guard let p = get(&len), len > 0 else { return nil }
        return Udata.comment(in: UnsafeRawBufferPointer(start: p, count: Int(len)), type: type)
    }
}

public struct NftDumpError: Error, CustomStringConvertible {
    public let what: String
    public var description: String {
        "cannot parse \(what) from the kernel: libnftnl does not understand it; remove the hand-made change with nft, then run apply"
    }
}

/// A C string from libnftnl, or "" when it is absent.
func cString(_ p: UnsafePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }
