import Packet

/// nft syntax for a table, as `nft -f` loads it and close to how `nft list`
/// prints it: the golden files in nft/ and the output of `plan` are this text.
extension NftTable {
    public var nftText: String { nftText(elementLimit: nil) }

    /// With `elementLimit`, each set shows that many elements and counts the
    /// rest in a comment (plan's view of a table of thousands of mappings).
    public func nftText(elementLimit: Int?) -> String {
        var out = "table \(Self.family) \(name) {\n"
        if let comment { out += "\tcomment \(quoted(comment))\n" }
        for c in counters {
            out += "\n\tcounter \(c.name) {\n"
            if let comment = c.comment { out += "\t\tcomment \(quoted(comment))\n" }
            out += "\t}\n"
        }
        for s in sets { out += "\n" + s.nftText(elementLimit: elementLimit) }
        for c in chains { out += "\n" + c.nftText }
        return out + "}\n"
    }
}

extension NftSet {
    func nftText(elementLimit: Int?) -> String {
        var out = "\tset \(name) {\n\t\ttype \(keyType.rawValue)\n\t\tflags interval\n"
        if let comment { out += "\t\tcomment \(quoted(comment))\n" }
        if !elements.isEmpty {
            let shown = elements.prefix(elementLimit ?? elements.count)
            out += "\t\telements = { " + shown.map(\.elementText).joined(separator: ",\n\t\t\t     ") + " }\n"
            if shown.count < elements.count { out += "\t\t# and \(elements.count - shown.count) more elements (--verbose shows all)\n" }
        }
        return out + "\t}\n"
    }
}

extension NftChain {
    public static func priorityName(_ kind: Kind, _ priority: Int32) -> String {
        switch (kind, priority) {
        case (.filter, -300): "raw"
        case (.filter, -150): "mangle"
        case (.filter, 0): "filter"
        case (.nat, -100): "dstnat"
        case (.nat, 100): "srcnat"
        default: "\(priority)"
        }
    }

    var nftText: String {
        var out = "\tchain \(name) {\n"
        if let comment { out += "\t\tcomment \(quoted(comment))\n" }
        if let hook {
            out += "\t\ttype \(kind.rawValue) hook \(hook.rawValue) priority \(Self.priorityName(kind, priority)); policy \(policy.rawValue);\n"
        }
        for r in rules { out += "\t\t\(r.displayText)\n" }
        return out + "\t}\n"
    }
}

extension NftRule {
    /// The nft text it was built from, or, for a rule found in the kernel that
    /// sixgate did not write, its bytecode.
    public var displayText: String {
        if let text { return text }
        let body = exprs.map(\.description).joined(separator: " ")
        return comment.map { "\(body) comment \(quoted($0))" } ?? body
    }
}

extension NftExpr: CustomStringConvertible {
    /// Bytecode in the style of `nft --debug=netlink`, for rules without text.
    public var description: String {
        func hex(_ d: [UInt8]) -> String { "0x" + d.map { String($0, radix: 16).leftPadded(2) }.joined() }
        switch self {
        case .meta(let key, let dreg): return "[meta load \(Self.metaName(key)) => reg \(dreg)]"
        case .payload(let base, let offset, let length, let dreg):
            let b = ["link", "network", "transport"].indices.contains(Int(base)) ? ["link", "network", "transport"][Int(base)] : "\(base)"
            return "[payload load \(length)b @ \(b) header + \(offset) => reg \(dreg)]"
        case .cmp(let op, let sreg, let data): return "[cmp \(["eq", "neq", "lt", "lte", "gt", "gte"][min(Int(op), 5)]) reg \(sreg) \(hex(data))]"
        case .bitwise(let sreg, let dreg, _, let mask, let xor): return "[bitwise reg \(dreg) = (reg \(sreg) & \(hex(mask))) ^ \(hex(xor))]"
        case .lookup(let set, let sreg): return "[lookup reg \(sreg) set \(set)]"
        case .ct(let key, let dreg): return "[ct load \(key == 0 ? "state" : "key \(key)") => reg \(dreg)]"
        case .objref(_, let name): return "[counter name \(name)]"
        case .verdict(let v): return v == 1 ? "[accept]" : v == 0 ? "[drop]" : "[verdict \(v)]"
        case .masq: return "[masq]"
        case .socket(let key, let dreg): return "[socket load \(key == 0 ? "transparent" : "key \(key)") => reg \(dreg)]"
        case .immediate(let dreg, let data): return "[immediate reg \(dreg) \(hex(data))]"
        case .metaSet(let key, let sreg): return "[meta set \(Self.metaName(key)) with reg \(sreg)]"
        case .dnat6(let address, let port): return "[nat dnat ip6 addr_min reg \(address) proto_min reg \(port)]"
        case .foreign(let what): return "[\(what)]"
        }
    }

    static func metaName(_ key: UInt32) -> String {
        switch key {
        case 6: "iifname"
        case 7: "oifname"
        case 15: "nfproto"
        case 16: "l4proto"
        case 3: "mark"
        default: "key \(key)"
        }
    }
}

extension IPPrefix {
    /// A set element as nft prints it: hosts without their length.
    var elementText: String {
        switch self {
        case .v4(let p): p.length == 32 ? p.address.description : p.description
        case .v6(let p): p.length == 128 ? p.address.description : p.description
        }
    }
}

func quoted(_ s: String) -> String {
    "\"" + s.replacingAll("\"", with: "'") + "\""
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }

    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        for c in self { if c == target { out += replacement } else { out.append(c) } }
        return out
    }
}
