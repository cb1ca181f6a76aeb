/// The host an HTTP/1.x request is for (RFC 9112 §3.2), from the first bytes
/// of a connection as they arrive: the request line and the header fields
/// up to the empty line. An absolute-form target names the host itself and
/// wins over Host; a port is not part of the name.
public enum HTTPHost {
    /// Request line and header fields larger than this are refused, as
    /// servers refuse them (HAProxy's and nginx's defaults are of this size).
    public static let largest = 16 * 1024

    public static func peek(_ bytes: [UInt8]) -> Peek {
        guard let end = headerEnd(bytes) else {
            guard bytes.count < largest else { return .invalid("a request head over \(largest) bytes") }
            // A request line starts with a method: other protocols are told apart early.
            let method = bytes.prefix { $0 != UInt8(ascii: " ") }
            guard method.count <= 32, method.allSatisfy(isTokenByte) else { return .invalid("not an HTTP/1 request") }
            return .incomplete
        }
        let lines = split(lines: bytes[..<end])
        guard let requestLine = lines.first else { return .invalid("no request line") }
        let words = requestLine.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard words.count == 3, !words[0].isEmpty, words[0].allSatisfy(isTokenByte),
              words[2].elementsEqual("HTTP/1.1".utf8) || words[2].elementsEqual("HTTP/1.0".utf8)
        else { return .invalid("not an HTTP/1 request line") }
        var host: Peek?
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex, line[..<colon].allSatisfy(isTokenByte) else {
                return .invalid("a malformed header field")
            }
            guard line[..<colon].lazy.map(lowercased).elementsEqual("host".utf8) else { continue }
            // RFC 9112 §3.2: a request with more than one Host is answered 400.
            guard host == nil else { return .invalid("Host twice") }
            host = authority(trimmed(line[(colon + 1)...]))
        }
        let target = words[1]
        for scheme in ["http://", "https://"] where target.count > scheme.count && target.prefix(scheme.count).lazy.map(lowercased).elementsEqual(scheme.utf8) {
            let rest = target.dropFirst(scheme.count)
            return authority(rest.prefix { $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "?") })
        }
        if let host { return host }
        // HTTP/1.1 requires Host (§3.2); HTTP/1.0 need not have one.
        return words[2].elementsEqual("HTTP/1.0".utf8) ? .noName : .invalid("no Host")
    }

    /// The name in host[:port] or [IPv6]:port; an IP literal names no route.
    static func authority(_ field: ArraySlice<UInt8>) -> Peek {
        if field.first == UInt8(ascii: "[") { return .noName }
        let host = field.prefix { $0 != UInt8(ascii: ":") }
        let port = field.dropFirst(host.count)
        guard port.isEmpty || (port.count >= 2 && port.dropFirst().allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
              let name = HostName.normalized(host)
        else { return .invalid("a Host that is not a host name") }
        return .name(name)
    }

    /// Where the empty line ends the head, if it has come.
    static func headerEnd(_ b: [UInt8]) -> Int? {
        guard b.count >= 4 else { return nil }
        for i in 0...(b.count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 { return i }
        return nil
    }

    static func split(lines: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        var out: [ArraySlice<UInt8>] = []
        var start = lines.startIndex
        var i = lines.startIndex
        while i < lines.endIndex {
            if lines[i] == 13, i + 1 < lines.endIndex, lines[i + 1] == 10 {
                out.append(lines[start..<i])
                i += 2
                start = i
            } else {
                i += 1
            }
        }
        out.append(lines[start..<lines.endIndex])
        return out
    }

    static func trimmed(_ s: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var s = s
        while let f = s.first, f == 32 || f == 9 { s = s.dropFirst() }
        while let l = s.last, l == 32 || l == 9 { s = s.dropLast() }
        return s
    }

    static func lowercased(_ b: UInt8) -> UInt8 { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b) ? b + 32 : b }

    /// RFC 9110 §5.6.2 tchar.
    static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: "!#$%&'*+-.^_`|~".utf8.contains(b)
        }
    }
}
