/// What the TOML parser (toml++) must never be handed: it asserts, and so
/// ends the process (with NDEBUG it assumes, which is worse), where a table
/// header's name starts with a character that cannot start a key (`[!a]`,
/// `[.a]`, `[é]`), and where a `}` stands for a value in an array
/// (`[1, }]`). Found by fuzzing (Tests/Fuzz/Corpus/config). Non-ASCII characters, which TOML allows
/// only in strings and comments, are refused everywhere else too.
enum TextCheck {
    /// What is wrong, and where, or nil.
    static func problem(in text: String) -> (line: Int, column: Int, problem: String)? {
        let b = Array(text.utf8)
        var i = 0, line = 1, lineStart = 0
        // Brackets open outside strings: a line that starts with one at depth 0 is a table header.
        var depth = 0
        // The brackets and braces open, innermost last, and the last character
        // outside whitespace and comments.
        var open: [UInt8] = []
        var last: UInt8 = 0
        func at(_ j: Int) -> UInt8 { j < b.count ? b[j] : 0 }
        func startsKey(_ c: UInt8) -> Bool {
            (c >= 0x30 && c <= 0x39) || (c | 0x20 >= 0x61 && c | 0x20 <= 0x7A) || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
                || c == UInt8(ascii: "\"") || c == UInt8(ascii: "'")
        }
        while i < b.count {
            let c = b[i]
            switch c {
            case UInt8(ascii: "\n"):
                line += 1
                lineStart = i + 1
                i += 1
            case UInt8(ascii: "["):
                let first = b[lineStart..<i].allSatisfy { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
                if first, depth == 0 {
                    var j = i + 1
                    if at(j) == UInt8(ascii: "[") { j += 1 }
                    while at(j) == UInt8(ascii: " ") || at(j) == UInt8(ascii: "\t") { j += 1 }
                    if !startsKey(at(j)) { return (line, j - lineStart + 1, "a table name that does not start with a letter, a digit, _, - or a quote") }
                }
                depth += 1
                open.append(c)
                last = c
                i += 1
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                if c == UInt8(ascii: "}"), open.last == UInt8(ascii: "["), last == UInt8(ascii: "[") || last == UInt8(ascii: ",") {
                    return (line, i - lineStart + 1, "a } where an array wants a value or ]")
                }
                if c == UInt8(ascii: "]") { depth = max(0, depth - 1) }
                if !open.isEmpty { open.removeLast() }
                last = c
                i += 1
            case UInt8(ascii: "{"):
                open.append(c)
                last = c
                i += 1
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"):
                i += 1
            case UInt8(ascii: "#"):
                while i < b.count, b[i] != UInt8(ascii: "\n") { i += 1 }
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                last = c
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
                if c >= 0x80 { return (line, i - lineStart + 1, "a non-ASCII character outside a string or a comment") }
                last = c
                i += 1
            }
        }
        return nil
    }
}
