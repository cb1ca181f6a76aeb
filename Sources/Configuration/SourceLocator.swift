import Foundation

/// Finds the line of a key path in TOML text. TOMLKit reports positions only for
/// syntax errors, so semantic errors are placed by this scan: table headers,
/// `key = value` lines, and the elements of arrays (also over several lines).
/// It needs no full TOML grammar because the text has already parsed.
struct SourceLocator {
    private var lines: [String: Int] = [:]

    init(text: String) {
        let all = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var table = ""
        var arrayCounts: [String: Int] = [:]
        var n = 0
        while n < all.count {
            let line = n + 1
            let t = all[n].drop { $0 == " " || $0 == "\t" }
            n += 1
            // A table inside an array of tables ([[mux.route]] after [[mux]])
            // belongs to the array's latest element: mux[0].route[1].
            func resolve(_ name: String) -> String {
                let parts = name.split(separator: ".")
                var out = ""
                for (i, part) in parts.enumerated() {
                    out = out.isEmpty ? String(part) : out + "." + part
                    if i < parts.count - 1, let c = arrayCounts[out], c > 0 { out += "[\(c - 1)]" }
                }
                return out
            }
            if t.hasPrefix("[[") {
                let name = resolve(Self.normalize(t.dropFirst(2).prefix { $0 != "]" }))
                let index = arrayCounts[name, default: 0]
                arrayCounts[name] = index + 1
                table = "\(name)[\(index)]"
                record(name, line)
                record(table, line)
            } else if t.hasPrefix("[") {
                table = resolve(Self.normalize(t.dropFirst().prefix { $0 != "]" }))
                record(table, line)
            } else if let eq = Self.assignment(t) {
                let key = Self.normalize(t[..<eq])
                let path = table.isEmpty ? key : table + "." + key
                record(path, line)
                let value = t[t.index(after: eq)...].drop { $0 == " " || $0 == "\t" }
                if value.hasPrefix("[") {
                    n = scanArray(path: path, lines: all, from: n - 1, column: value.startIndex)
                }
            }
        }
    }

    /// The line of `path`, or of its nearest ancestor that has one.
    func line(of path: ConfigPath) -> Int? {
        var p: ConfigPath? = path
        while let cur = p {
            if let l = lines[cur.description] { return l }
            p = cur.parent
        }
        return nil
    }

    private mutating func record(_ path: String, _ line: Int) {
        if lines[path] == nil { lines[path] = line }
    }

    /// Records the line where each top-level element of the array starting at
    /// `column` of line `start` begins. Returns the index of the line after it.
    private mutating func scanArray(path: String, lines all: [String], from start: Int, column: String.Index) -> Int {
        var depth = 0, element = 0, expectElement = false
        var n = start
        var text = Substring(all[n])[column...]
        while true {
            var i = text.startIndex
            var inString: Character?
            while i < text.endIndex {
                let c = text[i]
                if let q = inString {
                    if c == "\\", q == "\"" { i = text.index(after: i) } else if c == q { inString = nil }
                } else if c == "#" {
                    break
                } else if c == " " || c == "\t" {
                } else {
                    if expectElement, depth == 1, c != "]" {
                        record("\(path)[\(element)]", n + 1)
                        element += 1
                        expectElement = false
                    }
                    switch c {
                    case "\"", "'": inString = c
                    case "[", "{":
                        depth += 1
                        if depth == 1 { expectElement = true }
                    case "]", "}":
                        depth -= 1
                        if depth == 0 { return n + 1 }
                    case "," where depth == 1: expectElement = true
                    default: break
                    }
                }
                if i < text.endIndex { i = text.index(after: i) }
            }
            n += 1
            guard n < all.count else { return n }
            text = Substring(all[n])
        }
    }

    /// The index of "=" in `key = value`, outside quoted keys.
    private static func assignment(_ t: Substring) -> Substring.Index? {
        var inString: Character?
        for i in t.indices {
            let c = t[i]
            if let q = inString {
                if c == q { inString = nil }
            } else if c == "\"" || c == "'" {
                inString = c
            } else if c == "=" {
                return i
            } else if c == "#" {
                return nil
            }
        }
        return nil
    }

    /// `a . "b c"` -> `a.b c`: dotted keys with quotes and spaces removed.
    private static func normalize(_ s: Substring) -> String {
        s.split(separator: ".").map { part in
            var p = Substring(part.trimmingCharacters(in: .whitespaces))
            if p.count >= 2, let f = p.first, f == "\"" || f == "'", p.last == f { p = p.dropFirst().dropLast() }
            return String(p)
        }.joined(separator: ".")
    }
}
