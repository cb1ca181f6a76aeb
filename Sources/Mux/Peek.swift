/// What the first bytes of a connection say about where it goes: the
/// multiplexer reads (peeks) until one of these holds, within its limits.
public enum Peek: Equatable, Sendable {
    /// More bytes are needed.
    case incomplete
    /// The name the client asks for, lowercased, without a trailing dot.
    case name(String)
    /// A well-formed start that names nothing (a ClientHello without
    /// server_name, an HTTP/1.0 request without Host).
    case noName
    /// Not what this listener speaks, or malformed.
    case invalid(String)
}

/// Host names as the routes compare them: DNS letters, digits, hyphens and
/// dots (underscores too, which some services use), 253 characters at most,
/// lowercased, a trailing dot removed.
public enum HostName {
    public static func normalized<C: Collection>(_ bytes: C) -> String? where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        for b in bytes {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"):
                out.append(b)
            case UInt8(ascii: "A")...UInt8(ascii: "Z"):
                out.append(b + 32)
            default:
                return nil
            }
        }
        if out.last == UInt8(ascii: ".") { out.removeLast() }
        guard !out.isEmpty, out.count <= 253, out.first != UInt8(ascii: "."), out.last != UInt8(ascii: "."),
              !out.indices.dropLast().contains(where: { out[$0] == UInt8(ascii: ".") && out[$0 + 1] == UInt8(ascii: ".") })
        else { return nil }
        return String(decoding: out, as: UTF8.self)
    }
}
