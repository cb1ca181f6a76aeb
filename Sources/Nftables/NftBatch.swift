import CNetlink
import Glibc
import Packet

/// The messages of one nftables transaction, between NFNL_MSG_BATCH_BEGIN and
/// END. Every message asks for an acknowledgement, remembered with a description
/// so that a refusal names what was refused.
public final class NftBatch {
    private var buffer: UnsafeMutableRawPointer
    private var capacity: Int
    private var length = 0
    private var seq: UInt32
    private var setID: UInt32 = 0
    public private(set) var acknowledged: [UInt32: String] = [:]
    public let table: String

    private static let family = UInt16(NFPROTO_INET)

    public init(table: String, firstSeq: UInt32) {
        self.table = table
        seq = firstSeq
        capacity = 1 << 20
        buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
        message { nftnl_batch_begin($0.assumingMemoryBound(to: CChar.self), $1) }
    }

    deinit { buffer.deallocate() }

    public var lastSeq: UInt32 { seq }

    /// Appends one message built at the end of the buffer.
    @discardableResult
    private func message(_ build: (UnsafeMutableRawPointer, UInt32) -> UnsafeMutablePointer<nlmsghdr>?) -> UInt32 {
        // No single message exceeds 64 KiB: set elements are split below.
        if capacity - length < 1 << 17 {
            let bigger = UnsafeMutableRawPointer.allocate(byteCount: capacity * 2, alignment: 8)
            bigger.copyMemory(from: buffer, byteCount: length)
            buffer.deallocate()
            buffer = bigger
            capacity *= 2
        }
        seq &+= 1
        if let nlh = build(buffer + length, seq) { length += (Int(nlh.pointee.nlmsg_len) + 3) & ~3 }
        return seq
    }

    private func change(_ what: String, type: nf_tables_msg_types, flags: Int32, payload: (UnsafeMutablePointer<nlmsghdr>) -> Void) {
        let s = message { ptr, seq in
            let nlh = nftnl_nlmsg_build_hdr(ptr.assumingMemoryBound(to: CChar.self), UInt16(type.rawValue), Self.family,
                                            UInt16(flags | NLM_F_ACK), seq)!
            payload(nlh)
            return nlh
        }
        acknowledged[s] = what
    }

    /// The finished batch; the caller owns the returned memory.
    public func finish() -> UnsafeMutableRawBufferPointer {
        message { nftnl_batch_end($0.assumingMemoryBound(to: CChar.self), $1) }
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 8)
        out.copyMemory(from: UnsafeRawBufferPointer(start: buffer, count: length))
        return out
    }

    // MARK: - Tables

    public func addTable(comment: String?, exclusive: Bool) {
        let t = nftnl_table_alloc()
        defer { nftnl_table_free(t) }
        nftnl_table_set_str(t, attr(NFTNL_TABLE_NAME), table)
        nftnl_table_set_u32(t, attr(NFTNL_TABLE_FAMILY), UInt32(Self.family))
        if let comment {
            Udata.comment(comment, type: UInt8(NFTNL_UDATA_TABLE_COMMENT.rawValue)) { nftnl_table_set_data(t, attr(NFTNL_TABLE_USERDATA), $0, $1) }
        }
        change("add table inet \(table)", type: NFT_MSG_NEWTABLE, flags: NLM_F_CREATE | (exclusive ? NLM_F_EXCL : 0)) { nftnl_table_nlmsg_build_payload($0, t) }
    }

    public func deleteTable() {
        let t = nftnl_table_alloc()
        defer { nftnl_table_free(t) }
        nftnl_table_set_str(t, attr(NFTNL_TABLE_NAME), table)
        change("delete table inet \(table)", type: NFT_MSG_DELTABLE, flags: 0) { nftnl_table_nlmsg_build_payload($0, t) }
    }

    // MARK: - Chains

    public func addChain(_ c: NftChain) {
        guard let hook = c.hook else { return }
        let ch = nftnl_chain_alloc()
        defer { nftnl_chain_free(ch) }
        nftnl_chain_set_str(ch, attr(NFTNL_CHAIN_TABLE), table)
        nftnl_chain_set_str(ch, attr(NFTNL_CHAIN_NAME), c.name)
        nftnl_chain_set_u32(ch, attr(NFTNL_CHAIN_HOOKNUM), hook.number)
        nftnl_chain_set_s32(ch, attr(NFTNL_CHAIN_PRIO), c.priority)
        nftnl_chain_set_u32(ch, attr(NFTNL_CHAIN_POLICY), UInt32(c.policy.code))
        nftnl_chain_set_str(ch, attr(NFTNL_CHAIN_TYPE), c.kind.rawValue)
        if let comment = c.comment {
            Udata.comment(comment, type: UInt8(NFTNL_UDATA_CHAIN_COMMENT.rawValue)) { nftnl_chain_set_data(ch, attr(NFTNL_CHAIN_USERDATA), $0, $1) }
        }
        change("add chain \(c.name)", type: NFT_MSG_NEWCHAIN, flags: NLM_F_CREATE) { nftnl_chain_nlmsg_build_payload($0, ch) }
    }

    /// Removes a chain, which must be empty by then (flush it first).
    public func deleteChain(_ name: String) {
        let ch = nftnl_chain_alloc()
        defer { nftnl_chain_free(ch) }
        nftnl_chain_set_str(ch, attr(NFTNL_CHAIN_TABLE), table)
        nftnl_chain_set_str(ch, attr(NFTNL_CHAIN_NAME), name)
        change("delete chain \(name)", type: NFT_MSG_DELCHAIN, flags: 0) { nftnl_chain_nlmsg_build_payload($0, ch) }
    }

    public func flushChain(_ name: String) {
        let r = nftnl_rule_alloc()
        defer { nftnl_rule_free(r) }
        nftnl_rule_set_str(r, attr(NFTNL_RULE_TABLE), table)
        nftnl_rule_set_str(r, attr(NFTNL_RULE_CHAIN), name)
        change("flush chain \(name)", type: NFT_MSG_DELRULE, flags: 0) { nftnl_rule_nlmsg_build_payload($0, r) }
    }

    // MARK: - Counters

    public func addCounter(_ c: NftCounter) {
        let o = counterObject(c.name)
        defer { nftnl_obj_free(o) }
        if let comment = c.comment {
            Udata.comment(comment, type: UInt8(NFTNL_UDATA_OBJ_COMMENT.rawValue)) { nftnl_obj_set_data(o, attr(NFTNL_OBJ_USERDATA), $0, $1) }
        }
        change("add counter \(c.name)", type: NFT_MSG_NEWOBJ, flags: NLM_F_CREATE) { nftnl_obj_nlmsg_build_payload($0, o) }
    }

    public func deleteCounter(_ name: String) {
        let o = counterObject(name)
        defer { nftnl_obj_free(o) }
        change("delete counter \(name)", type: NFT_MSG_DELOBJ, flags: 0) { nftnl_obj_nlmsg_build_payload($0, o) }
    }

    private func counterObject(_ name: String) -> OpaquePointer {
        let o = nftnl_obj_alloc()!
        nftnl_obj_set_str(o, attr(NFTNL_OBJ_TABLE), table)
        nftnl_obj_set_str(o, attr(NFTNL_OBJ_NAME), name)
        nftnl_obj_set_u32(o, attr(NFTNL_OBJ_TYPE), UInt32(NFT_OBJECT_COUNTER))
        nftnl_obj_set_u32(o, attr(NFTNL_OBJ_FAMILY), UInt32(Self.family))
        return o
    }

    // MARK: - Sets

    public func addSet(_ s: NftSet) {
        let set = setObject(s.name)
        defer { nftnl_set_free(set) }
        setID += 1
        nftnl_set_set_u32(set, attr(NFTNL_SET_ID), setID)
        nftnl_set_set_u32(set, attr(NFTNL_SET_FLAGS), flag(NFT_SET_INTERVAL))
        nftnl_set_set_u32(set, attr(NFTNL_SET_KEY_TYPE), s.keyType.datatype)
        nftnl_set_set_u32(set, attr(NFTNL_SET_KEY_LEN), UInt32(s.keyType.length))
        Udata.set(comment: s.comment) { nftnl_set_set_data(set, attr(NFTNL_SET_USERDATA), $0, $1) }
        change("add set \(s.name)", type: NFT_MSG_NEWSET, flags: NLM_F_CREATE) { nftnl_set_nlmsg_build_payload($0, set) }
        addElements(s)
    }

    public func deleteSet(_ name: String) {
        let set = setObject(name)
        defer { nftnl_set_free(set) }
        change("delete set \(name)", type: NFT_MSG_DELSET, flags: 0) { nftnl_set_nlmsg_build_payload($0, set) }
    }

    /// Replaces the elements: a flush and a full add in the same transaction, so
    /// lookups never see a half-filled set.
    public func replaceElements(_ s: NftSet) {
        let set = setObject(s.name)
        defer { nftnl_set_free(set) }
        change("flush set \(s.name)", type: NFT_MSG_DELSETELEM, flags: 0) { nftnl_set_elems_nlmsg_build_payload($0, set) }
        addElements(s)
    }

    /// Interval elements as nft writes them: each range is a start element and an
    /// end element one past it, flagged INTERVAL_END, and a range not starting at
    /// zero is preceded by a zero end element.
    private func addElements(_ s: NftSet) {
        guard !s.elements.isEmpty else { return }
        let set = setObject(s.name)
        defer { nftnl_set_free(set) }
        var keys: [([UInt8], Bool)] = []
        for (i, p) in s.elements.enumerated() {
            let (start, next) = p.keyRange
            if i == 0, !start.allSatisfy({ $0 == 0 }) { keys.append(([UInt8](repeating: 0, count: start.count), true)) }
            keys.append((start, false))
            if let next { keys.append((next, true)) }
        }
        for (key, end) in keys {
            let e = nftnl_set_elem_alloc()!
            key.withUnsafeBytes { _ = nftnl_set_elem_set(e, attr(NFTNL_SET_ELEM_KEY), $0.baseAddress, UInt32(key.count)) }
            if end { nftnl_set_elem_set_u32(e, attr(NFTNL_SET_ELEM_FLAGS), flag(NFT_SET_ELEM_INTERVAL_END)) }
            nftnl_set_elem_add(set, e)
        }
        let iter = nftnl_set_elems_iter_create(set)
        defer { nftnl_set_elems_iter_destroy(iter) }
        var more = true
        while more {
            change("add elements to set \(s.name)", type: NFT_MSG_NEWSETELEM, flags: NLM_F_CREATE) { nlh in
                more = nftnl_set_elems_nlmsg_build_payload_iter(nlh, iter) > 0
            }
        }
    }

    private func setObject(_ name: String) -> OpaquePointer {
        let set = nftnl_set_alloc()!
        nftnl_set_set_str(set, attr(NFTNL_SET_TABLE), table)
        nftnl_set_set_str(set, attr(NFTNL_SET_NAME), name)
        nftnl_set_set_u32(set, attr(NFTNL_SET_FAMILY), UInt32(Self.family))
        return set
    }

    // MARK: - Rules

    public enum Position: Sendable {
        case end
        case after(UInt64)
        case before(UInt64)
    }

    public func addRule(_ rule: NftRule, chain: String, at position: Position = .end) {
        let r = nftnl_rule_alloc()
        defer { nftnl_rule_free(r) }
        nftnl_rule_set_str(r, attr(NFTNL_RULE_TABLE), table)
        nftnl_rule_set_str(r, attr(NFTNL_RULE_CHAIN), chain)
        nftnl_rule_set_u32(r, attr(NFTNL_RULE_FAMILY), UInt32(Self.family))
        var flags = NLM_F_CREATE
        switch position {
        case .end: flags |= NLM_F_APPEND
        case .after(let h):
            flags |= NLM_F_APPEND
            nftnl_rule_set_u64(r, attr(NFTNL_RULE_POSITION), h)
        case .before(let h): nftnl_rule_set_u64(r, attr(NFTNL_RULE_POSITION), h)
        }
        for e in rule.exprs { nftnl_rule_add_expr(r, NftExprCodec.encode(e)) }
        if let comment = rule.comment {
            Udata.comment(comment, type: UInt8(NFTNL_UDATA_RULE_COMMENT.rawValue)) { nftnl_rule_set_data(r, attr(NFTNL_RULE_USERDATA), $0, $1) }
        }
        change("add rule to \(chain): \(rule.displayText)", type: NFT_MSG_NEWRULE, flags: flags) { nftnl_rule_nlmsg_build_payload($0, r) }
    }

    public func deleteRule(handle: UInt64, chain: String) {
        let r = nftnl_rule_alloc()
        defer { nftnl_rule_free(r) }
        nftnl_rule_set_str(r, attr(NFTNL_RULE_TABLE), table)
        nftnl_rule_set_str(r, attr(NFTNL_RULE_CHAIN), chain)
        nftnl_rule_set_u64(r, attr(NFTNL_RULE_HANDLE), handle)
        change("delete rule \(handle) from \(chain)", type: NFT_MSG_DELRULE, flags: 0) { nftnl_rule_nlmsg_build_payload($0, r) }
    }
}

extension IPPrefix {
    /// The first address and the address after the last, as set keys; no "next"
    /// past the end of the address space.
    public var keyRange: ([UInt8], [UInt8]?) {
        let (bytes, width): ([UInt8], Int) = switch self {
        case .v4(let p): (p.address.bytes, 4)
        case .v6(let p): (p.address.bytes, 16)
        }
        let last = range.upperBound
        guard last < (width == 4 ? UInt128(UInt32.max) : .max) else { return (bytes, nil) }
        let next = last + 1
        return (bytes, (0..<width).map { UInt8(truncatingIfNeeded: next >> (8 * UInt128(width - 1 - $0))) })
    }
}
