/// A domain name as its labels (raw bytes, at most 63 each, 255 in all).
/// Comparison ignores ASCII case, as DNS does (RFC 4343).
public struct DNSName: Hashable, Sendable, CustomStringConvertible {
    public let labels: [[UInt8]]

    public static let root = DNSName(labels: [])

    public init(labels: [[UInt8]]) { self.labels = labels }

    /// From text like "www.example.com" (a trailing dot is allowed; "." is the root).
    public init?(_ text: String) {
        var t = Substring(text)
        if t.hasSuffix(".") { t = t.dropLast() }
        guard !t.isEmpty else {
            guard text == "." else { return nil }
            self.labels = []
            return
        }
        let parts = t.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 63 }) else { return nil }
        let labels = parts.map { Array($0.utf8) }
        guard labels.reduce(1, { $0 + $1.count + 1 }) <= 255 else { return nil }
        self.labels = labels
    }

    /// Wire length, uncompressed.
    public var wireLength: Int { labels.reduce(1) { $0 + $1.count + 1 } }

    /// Wire form, uncompressed, spelled as it came.
    public var wire: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(wireLength)
        for l in labels {
            out.append(UInt8(l.count))
            out += l
        }
        out.append(0)
        return out
    }

    public var description: String {
        labels.isEmpty ? "." : labels.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ".") + "."
    }

    static func lower(_ b: UInt8) -> UInt8 { b >= 65 && b <= 90 ? b + 32 : b }

    public static func == (a: DNSName, b: DNSName) -> Bool { sameLabels(a.labels[...], b.labels[...]) }

    /// Label by label, ignoring ASCII case (RFC 4343).
    static func sameLabels(_ a: ArraySlice<[UInt8]>, _ b: ArraySlice<[UInt8]>) -> Bool {
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) {
            guard x.count == y.count, zip(x, y).allSatisfy({ lower($0) == lower($1) }) else { return false }
        }
        return true
    }

    public func hash(into h: inout Hasher) {
        // Eight lowercased bytes to a word: names are hashed on every cache
        // store and compression lookup, and a Hasher call per byte shows.
        for l in labels {
            var word = UInt64(l.count), n = 1
            for b in l {
                word = word << 8 | UInt64(Self.lower(b))
                n += 1
                if n == 8 {
                    h.combine(word)
                    word = 0
                    n = 0
                }
            }
            if n > 0 { h.combine(word) }
        }
    }

    /// Whether `self` is `other` or below it.
    public func isSubdomain(of other: DNSName) -> Bool {
        guard labels.count >= other.labels.count else { return false }
        return DNSName(labels: Array(labels.suffix(other.labels.count))) == other
    }

    /// `self` with `suffix` (which it ends in) replaced by `replacement` (DNAME).
    public func replacing(suffix: DNSName, with replacement: DNSName) -> DNSName? {
        guard isSubdomain(of: suffix) else { return nil }
        let n = DNSName(labels: Array(labels.dropLast(suffix.labels.count)) + replacement.labels)
        return n.wireLength <= 255 ? n : nil
    }
}
