import Foundation
import Mux
import Packet
import TOMLKit

/// Reads typed values out of the parsed TOML while collecting every problem, so
/// that one run reports all of them. A failed read returns nil and the caller
/// carries on with the default; the load fails at the end if anything was reported.
final class Reader {
    let source: String
    private let text: String
    /// Built on the first problem: a valid file never pays for the scan.
    private lazy var locator = SourceLocator(text: text)
    private(set) var diagnostics: [ConfigDiagnostic] = []

    init(source: String, text: String) {
        self.source = source
        self.text = text
    }

    func report(_ path: ConfigPath, _ problem: String, fix: String) {
        diagnostics.append(ConfigDiagnostic(file: source, line: locator.line(of: path), key: path.description, problem: problem, fix: fix))
    }

    /// Whether a problem was reported at `path`: checks that build on its
    /// value skip it rather than blame the default that stood in for it.
    func reported(_ path: ConfigPath) -> Bool { diagnostics.contains { $0.key == path.description } }

    /// Whether a problem was reported at `path` or below it.
    func reported(under path: ConfigPath) -> Bool {
        diagnostics.contains { $0.key == path.description || $0.key.hasPrefix(path.description + ".") || $0.key.hasPrefix(path.description + "[") }
    }

    /// A sub-table, or nil when absent (defaults apply) or of the wrong type.
    func table(_ t: TOMLTable, _ key: String, _ path: ConfigPath) -> TOMLTable? {
        guard let v = t[key] else { return nil }
        guard let sub = v.table else {
            report(path.appending(key), "is a \(v.type), not a table", fix: "Write it as a section: [\(path.appending(key))]")
            return nil
        }
        return sub
    }

    /// The elements of an array of tables (`[[key]]`), each with its path and
    /// its keys checked; what is not one is reported with `fix`.
    func tables(_ t: TOMLTable, _ key: String, _ path: ConfigPath, fix: String) -> [(ConfigPath, TOMLTable)] {
        guard let v = t[key] else { return [] }
        let p = path.appending(key)
        guard let array = v.array else {
            report(p, "is a \(v.type), not an array of tables", fix: fix)
            return []
        }
        return array.enumerated().compactMap { i, element in
            guard let table = element.table else {
                report(p.appending(i), "is a \(element.type), not a table", fix: fix)
                return nil
            }
            checkKeys(table, p.appending(i))
            return (p.appending(i), table)
        }
    }

    /// Reports keys the schema does not know, with the nearest known key, or the
    /// section where a key of that name does belong.
    func checkKeys(_ t: TOMLTable, _ path: ConfigPath) {
        let allowed = Schema.allowedKeys(in: path.tableName)
        for key in t.keys where !allowed.contains(key) {
            var fix = "Remove it"
            if let best = allowed.min(by: { levenshtein($0, key) < levenshtein($1, key) }),
               levenshtein(best, key) <= max(2, key.count / 3) {
                fix = "Did you mean `\(best)`?"
            } else if let home = Schema.tables.first(where: { $0.keys.contains { $0.name == key } }) {
                fix = "It belongs in [\(home.name)]; move it there, or remove it"
            }
            let where_ = path.description.isEmpty ? "at the top level" : "in [\(path.tableName)]"
            report(path.appending(key), "unknown key \(where_)", fix: fix)
        }
    }

    /// The value at `key` if it has the TOML type `get` accepts; nil and a report otherwise.
    private func typed<T>(_ t: TOMLTable, _ key: String, _ path: ConfigPath, _ get: (any TOMLValueConvertible) -> T?,
                          expected: String, fix: String) -> T? {
        guard let v = t[key] else { return nil }
        guard let x = get(v) else {
            report(path.appending(key), "is a \(v.type), not \(expected)", fix: fix)
            return nil
        }
        return x
    }

    func string(_ t: TOMLTable, _ key: String, _ path: ConfigPath) -> String? {
        typed(t, key, path, { $0.string }, expected: "a string", fix: "Put the value in double quotes")
    }

    func bool(_ t: TOMLTable, _ key: String, _ path: ConfigPath) -> Bool? {
        typed(t, key, path, { $0.bool }, expected: "a boolean", fix: "Write true or false, without quotes")
    }

    func int(_ t: TOMLTable, _ key: String, _ path: ConfigPath, in range: ClosedRange<Int>) -> Int? {
        let bounds = "\(range.lowerBound)...\(range.upperBound)"
        guard let i = typed(t, key, path, { $0.int }, expected: "an integer", fix: "Write a whole number without quotes, in \(bounds)") else { return nil }
        guard range.contains(i) else {
            report(path.appending(key), "\(i) is out of range", fix: "Use a value in \(bounds)")
            return nil
        }
        return i
    }

    /// A string value turned into `T` by `parse`, which returns why it failed.
    func value<T>(_ t: TOMLTable, _ key: String, _ path: ConfigPath, example: String,
                  _ parse: (String) -> Result<T, AddressParseError>) -> T? {
        guard let s = string(t, key, path) else { return nil }
        return convert(s, at: path.appending(key), example: example, parse)
    }

    /// An array of strings, each turned into `T`; a bad element is reported at its
    /// own index and line, and the others are still checked.
    func values<T>(_ t: TOMLTable, _ key: String, _ path: ConfigPath, example: String,
                   _ parse: (String) -> Result<T, AddressParseError>) -> [T]? {
        guard let v = t[key] else { return nil }
        let p = path.appending(key)
        guard let array = v.array else {
            report(p, "is a \(v.type), not an array", fix: "Write a list in brackets, e.g. [\"\(example)\"]")
            return nil
        }
        var out: [T] = []
        var ok = true
        for (i, element) in array.enumerated() {
            guard let s = element.string else {
                report(p.appending(i), "is a \(element.type), not a string", fix: "Put each element in double quotes, e.g. \"\(example)\"")
                ok = false
                continue
            }
            if let x = convert(s, at: p.appending(i), example: example, parse) { out.append(x) } else { ok = false }
        }
        return ok ? out : nil
    }

    private func convert<T>(_ s: String, at p: ConfigPath, example: String,
                            _ parse: (String) -> Result<T, AddressParseError>) -> T? {
        switch parse(s) {
        case .success(let x): return x
        case .failure(let e):
            let fix: String
            var problem = e.description
            // A good address of the other family, where one of this is wanted.
            let kind = s.contains("/") ? "prefix" : "address"
            let v4 = (try? IPv4Prefix.parse(s)) != nil || IPv4Address(s) != nil
            let v6 = (try? IPv6Prefix.parse(s)) != nil || IPv6Address(s) != nil
            switch e {
            case .hostBitsSet(_, let masked): fix = "Write the network address \(masked), or correct the length"
            case .malformedPort: fix = "Use a port in 1...65535, e.g. \(example)"
            case _ where v4 || v6:
                problem = "\(s.quotedForMessage) is an IPv\(v4 ? 4 : 6) \(kind), and \(p.listName) takes IPv\(v4 ? 6 : 4) ones"
                fix = "Write an IPv\(v4 ? 6 : 4) \(kind) like \(example)"
            default: fix = "Write it like \(example)"
            }
            report(p, problem, fix: fix)
            return nil
        }
    }

    func choice<E: RawRepresentable & CaseIterable>(_ t: TOMLTable, _ key: String, _ path: ConfigPath) -> E? where E.RawValue == String {
        guard let s = string(t, key, path) else { return nil }
        guard let e = E(rawValue: s) else {
            let names = E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
            report(path.appending(key), "\(s.quotedForMessage) is not a known value", fix: "Use one of \(names)")
            return nil
        }
        return e
    }

    /// "90s", "30m", "2h", "1500ms", "1d".
    func duration(_ t: TOMLTable, _ key: String, _ path: ConfigPath, max: Duration = .seconds(86400 * 365)) -> Duration? {
        guard let s = string(t, key, path) else { return nil }
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, ms) in units.sorted(by: { $0.0.count > $1.0.count }) where s.hasSuffix(suffix) {
            if let n = Int64(s.dropLast(suffix.count)), n >= 0 {
                // A number too large for milliseconds is too long too (and must not trap).
                let (total, overflow) = n.multipliedReportingOverflow(by: ms)
                if !overflow, Duration.milliseconds(total) <= max { return Duration.milliseconds(total) }
                report(path.appending(key), "\(s.quotedForMessage) is longer than allowed", fix: "Use at most \(max)")
                return nil
            }
        }
        report(path.appending(key), "\(s.quotedForMessage) is not a duration", fix: "Write a number and a unit, e.g. \"90s\", \"30m\", \"2h\" or \"1500ms\"")
        return nil
    }

    /// A DNS host name, lowercased and without a trailing dot.
    func hostName(_ t: TOMLTable, _ key: String, _ path: ConfigPath) -> String? {
        guard let s = string(t, key, path) else { return nil }
        guard let name = HostName.normalized(s.utf8), name.contains(".") else {
            report(path.appending(key), "\(s.quotedForMessage) is not a host name", fix: "Write a full name like \"www.example.com\"")
            return nil
        }
        return name
    }

    /// Linux interface names: 1 to 15 bytes, no "/", ":" or white space.
    func interface(_ t: TOMLTable, _ key: String, _ path: ConfigPath) -> String? {
        guard let s = string(t, key, path) else { return nil }
        let valid = (1...15).contains(s.utf8.count) && s != "." && s != ".."
            && !s.contains { $0 == "/" || $0 == ":" || $0.isWhitespace }
        guard valid else {
            report(path.appending(key), "\(s.quotedForMessage) is not a valid interface name",
                   fix: "Use 1 to 15 characters without '/', ':' or spaces, e.g. \"eth0\"")
            return nil
        }
        return s
    }
}
