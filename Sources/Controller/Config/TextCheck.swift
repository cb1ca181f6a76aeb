/// What the TOML parser (toml++) must never be handed: it asserts, and so
/// ends the process, on a non-ASCII character where a bare key is read
/// (`[é]`), where the TOML grammar allows one only inside strings and
/// comments. Found by fuzzing (Tests/Fuzz/Corpus/config).
enum TextCheck {
    /// The line and column of the first non-ASCII character outside a
    /// string or a comment, if any.
    static func strayNonASCII(in text: String) -> (line: Int, column: Int)? {
        let b = Array(text.utf8)
        var i = 0, line = 1, lineStart = 0
        func at(_ j: Int) -> UInt8 { j < b.count ? b[j] : 0 }
        while i < b.count {
            let c = b[i]
            switch c {
            case UInt8(ascii: "\n"):
                line += 1
                lineStart = i + 1
                i += 1
            case UInt8(ascii: "#"):
                while i < b.count, b[i] != UInt8(ascii: "\n") { i += 1 }
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                let triple = at(i + 1) == c && at(i + 2) == c
                let escapes = c == UInt8(ascii: "\"")
                i += triple ? 3 : 1
                // To the closing delimiter (a single-line string ends at its line's end at the latest).
                while i < b.count {
                    if escapes, b[i] == UInt8(ascii: "\\") { i += 2; continue }
                    if b[i] == UInt8(ascii: "\n") {
                        if !triple { break }
                        line += 1
                        lineStart = i + 1
                    }
                    if b[i] == c, !triple || (at(i + 1) == c && at(i + 2) == c) {
                        i += triple ? 3 : 1
                        break
                    }
                    i += 1
                }
            default:
                if c >= 0x80 { return (line, i - lineStart + 1) }
                i += 1
            }
        }
        return nil
    }
}
