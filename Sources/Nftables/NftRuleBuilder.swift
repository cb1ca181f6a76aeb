import CNetlink
import Packet

/// A rule as sixgate writes it: matches, an optional named counter, an action
/// and a comment saying why the rule exists. It compiles to the bytecode `nft`
/// would generate for its text, and renders that text.
public struct RuleSpec: Sendable {
    public enum Match: Sendable {
        case iifname(String, equal: Bool = true)
        case oifname(String, equal: Bool = true)
        case saddr(IPPrefix, equal: Bool = true)
        case daddr(IPPrefix, equal: Bool = true)
        case saddrIn(set: String, NftKeyType)
        case daddrIn(set: String, NftKeyType)
        case dport(Transport, UInt16)
        case ctStateEstablishedOrRelated
        /// The packet's connection had its destination rewritten (a DNAT).
        case ctStatusDNAT
        case l4proto(Transport)
        /// The packet belongs to a transparent socket of this host.
        case socketTransparent
    }

    public enum Transport: String, Sendable {
        case tcp, udp
        var number: UInt8 { self == .tcp ? 6 : 17 }
    }

    public enum Action: Sendable {
        case accept, drop, masquerade
        /// Sets the packet's mark and goes on.
        case setMark(UInt32)
        /// Sends the connection to this IPv6 address and port instead.
        case dnat(IPv6Address, port: UInt16)
    }

    public var matches: [Match]
    public var counter: String?
    public var action: Action
    public var comment: String

    public init(_ matches: [Match], counter: String?, _ action: Action, comment: String) {
        self.matches = matches
        self.counter = counter
        self.action = action
        self.comment = comment
    }

    public var rule: NftRule { NftRule(exprs: exprs, comment: comment, text: text) }

    // MARK: - Bytecode

    private static let reg1: UInt32 = 1  // NFT_REG_1, the register nft uses for every load
    private static let eq = NFT_CMP_EQ.rawValue, neq = NFT_CMP_NEQ.rawValue

    public var exprs: [NftExpr] {
        var out: [NftExpr] = []
        // nft states a protocol dependency once per rule, like its own output.
        var nfproto: UInt8?, l4proto: UInt8?
        func needNetwork(_ family: NftKeyType) {
            let p: UInt8 = family == .ipv4 ? 2 : 10  // NFPROTO_IPV4, NFPROTO_IPV6
            if nfproto == p { return }
            nfproto = p
            out += [.meta(key: NFT_META_NFPROTO.rawValue, dreg: Self.reg1), .cmp(op: Self.eq, sreg: Self.reg1, data: [p])]
        }
        func address(_ prefix: IPPrefix, source: Bool, equal: Bool) {
            let (family, bytes, length, offset): (NftKeyType, [UInt8], Int, UInt32) = switch prefix {
            case .v4(let p): (.ipv4, p.address.bytes, p.length, source ? 12 : 16)
            case .v6(let p): (.ipv6, p.address.bytes, p.length, source ? 8 : 24)
            }
            needNetwork(family)
            let n = (length + 7) / 8
            out.append(.payload(base: NFT_PAYLOAD_NETWORK_HEADER.rawValue, offset: offset, length: UInt32(n), dreg: Self.reg1))
            if length % 8 != 0 {
                var mask = [UInt8](repeating: 0xFF, count: n)
                mask[n - 1] = UInt8(0xFF << (8 - length % 8) & 0xFF)
                out.append(.bitwise(sreg: Self.reg1, dreg: Self.reg1, length: UInt32(n), mask: mask, xor: [UInt8](repeating: 0, count: n)))
            }
            out.append(.cmp(op: equal ? Self.eq : Self.neq, sreg: Self.reg1, data: Array(bytes[0..<n])))
        }
        func needTransport(_ t: Transport) {
            if l4proto == t.number { return }
            l4proto = t.number
            out += [.meta(key: NFT_META_L4PROTO.rawValue, dreg: Self.reg1), .cmp(op: Self.eq, sreg: Self.reg1, data: [t.number])]
        }
        func lookup(_ set: String, _ family: NftKeyType, source: Bool) {
            needNetwork(family)
            let offset: UInt32 = family == .ipv4 ? (source ? 12 : 16) : (source ? 8 : 24)
            out += [.payload(base: NFT_PAYLOAD_NETWORK_HEADER.rawValue, offset: offset, length: UInt32(family.length), dreg: Self.reg1),
                    .lookup(set: set, sreg: Self.reg1)]
        }
        for m in matches {
            switch m {
            case .iifname(let name, let equal), .oifname(let name, let equal):
                let key = if case .iifname = m { NFT_META_IIFNAME } else { NFT_META_OIFNAME }
                var data = Array(name.utf8.prefix(15))
                data += [UInt8](repeating: 0, count: 16 - data.count)
                out += [.meta(key: key.rawValue, dreg: Self.reg1), .cmp(op: equal ? Self.eq : Self.neq, sreg: Self.reg1, data: data)]
            case .saddr(let p, let equal): address(p, source: true, equal: equal)
            case .daddr(let p, let equal): address(p, source: false, equal: equal)
            case .saddrIn(let set, let family): lookup(set, family, source: true)
            case .daddrIn(let set, let family): lookup(set, family, source: false)
            case .l4proto(let t):
                needTransport(t)
            case .socketTransparent:
                out += [.socket(key: NFT_SOCKET_TRANSPARENT.rawValue, dreg: Self.reg1), .cmp(op: Self.eq, sreg: Self.reg1, data: [1])]
            case .dport(let t, let port):
                needTransport(t)
                out += [.payload(base: NFT_PAYLOAD_TRANSPORT_HEADER.rawValue, offset: 2, length: 2, dreg: Self.reg1),
                        .cmp(op: Self.eq, sreg: Self.reg1, data: [UInt8(port >> 8), UInt8(port & 0xFF)])]
            case .ctStateEstablishedOrRelated:
                // ct state is a host-order bit mask: ESTABLISHED 0x2 | RELATED 0x4.
                let mask = withUnsafeBytes(of: UInt32(6)) { Array($0) }
                out += [.ct(key: NFT_CT_STATE.rawValue, dreg: Self.reg1),
                        .bitwise(sreg: Self.reg1, dreg: Self.reg1, length: 4, mask: mask, xor: [0, 0, 0, 0]),
                        .cmp(op: Self.neq, sreg: Self.reg1, data: [0, 0, 0, 0])]
            case .ctStatusDNAT:
                // IPS_DST_NAT, in ct status's host-order bit mask.
                let mask = withUnsafeBytes(of: UInt32(0x20)) { Array($0) }
                out += [.ct(key: NFT_CT_STATUS.rawValue, dreg: Self.reg1),
                        .bitwise(sreg: Self.reg1, dreg: Self.reg1, length: 4, mask: mask, xor: [0, 0, 0, 0]),
                        .cmp(op: Self.neq, sreg: Self.reg1, data: [0, 0, 0, 0])]
            }
        }
        if let counter { out.append(.objref(type: UInt32(NFT_OBJECT_COUNTER), name: counter)) }
        switch action {
        case .accept: out.append(.verdict(NftVerdict.accept.code))
        case .drop: out.append(.verdict(NftVerdict.drop.code))
        case .masquerade: out.append(.masq)
        case .setMark(let mark): out += [.immediate(dreg: Self.reg1, data: Self.word(mark)), .metaSet(key: NFT_META_MARK.rawValue, sreg: Self.reg1)]
        case .dnat(let address, let port):
            out += [.immediate(dreg: Self.reg1, data: address.bytes), .immediate(dreg: Self.reg1 + 1, data: [UInt8(port >> 8), UInt8(port & 0xFF)]),
                    .dnat6(addressRegister: Self.reg1, portRegister: Self.reg1 + 1)]
        }
        return out
    }

    /// A 32-bit register value, which the kernel keeps in host order.
    static func word(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }

    // MARK: - Text

    /// The rule as `nft list` prints it.
    public var text: String {
        var words: [String] = []
        func family(_ p: IPPrefix) -> String { if case .v4 = p { "ip" } else { "ip6" } }
        for m in matches {
            switch m {
            case .iifname(let n, let eq): words.append("iifname \(eq ? "" : "!= ")\"\(n)\"")
            case .oifname(let n, let eq): words.append("oifname \(eq ? "" : "!= ")\"\(n)\"")
            case .saddr(let p, let eq): words.append("\(family(p)) saddr \(eq ? "" : "!= ")\(p.elementText)")
            case .daddr(let p, let eq): words.append("\(family(p)) daddr \(eq ? "" : "!= ")\(p.elementText)")
            case .saddrIn(let s, let f): words.append("\(f == .ipv4 ? "ip" : "ip6") saddr @\(s)")
            case .daddrIn(let s, let f): words.append("\(f == .ipv4 ? "ip" : "ip6") daddr @\(s)")
            case .dport(let t, let port): words.append("\(t.rawValue) dport \(port)")
            case .ctStateEstablishedOrRelated: words.append("ct state established,related")
            case .ctStatusDNAT: words.append("ct status dnat")
            case .l4proto(let t): words.append("meta l4proto \(t.rawValue)")
            case .socketTransparent: words.append("socket transparent 1")
            }
        }
        if let counter { words.append("counter name \"\(counter)\"") }
        switch action {
        case .accept: words.append("accept")
        case .drop: words.append("drop")
        case .masquerade: words.append("masquerade")
        case .setMark(let mark): words.append("meta mark set 0x" + String(mark, radix: 16).leftPadded(8))
        case .dnat(let address, let port): words.append("dnat ip6 to [\(address)]:\(port)")
        }
        words.append("comment \"\(comment)\"")
        return words.joined(separator: " ")
    }
}
