/// One thing wrong with a config file: where, which key, what, and what to do.
public struct ConfigDiagnostic: Sendable, Equatable, CustomStringConvertible {
    public let file: String
    /// 1-based; nil when the problem has no line (an unreadable file).
    public let line: Int?
    public let key: String
    public let problem: String
    public let fix: String

    public init(file: String, line: Int?, key: String, problem: String, fix: String) {
        self.file = file
        self.line = line
        self.key = key
        self.problem = problem
        self.fix = fix
    }

    public var description: String {
        let place = line.map { "\(file):\($0)" } ?? file
        return "\(place): \(key.isEmpty ? "(file)" : key): \(problem). \(fix)"
    }
}

/// Every problem found in one config, reported together so that an operator can
/// fix them in one pass.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public let diagnostics: [ConfigDiagnostic]

    public init(diagnostics: [ConfigDiagnostic]) { self.diagnostics = diagnostics }

    public var description: String {
        diagnostics.map(\.description).joined(separator: "\n")
    }
}

/// A path to a value in the TOML document, e.g. `nat64.eam[1].ipv4`.
struct ConfigPath: Sendable, Hashable, CustomStringConvertible {
    enum Component: Sendable, Hashable {
        case key(String)
        case index(Int)
    }

    var components: [Component] = []

    static let root = ConfigPath()

    func appending(_ key: String) -> ConfigPath { ConfigPath(components: components + [.key(key)]) }
    func appending(_ index: Int) -> ConfigPath { ConfigPath(components: components + [.index(index)]) }
    var parent: ConfigPath? { components.isEmpty ? nil : ConfigPath(components: Array(components.dropLast())) }

    var description: String {
        var out = ""
        for c in components {
            switch c {
            case .key(let k): out += out.isEmpty ? k : "." + k
            case .index(let i): out += "[\(i)]"
            }
        }
        return out
    }

    /// The key a value belongs to, without an element's index: "gateway.clients".
    var listName: String {
        if case .index = components.last { return ConfigPath(components: Array(components.dropLast())).description }
        return description
    }

    /// The schema table this path lies in: indices dropped, e.g. "nat64.eam".
    var tableName: String {
        components.compactMap { if case .key(let k) = $0 { k } else { nil } }.joined(separator: ".")
    }
}

/// Edit distance, for "did you mean" suggestions on unknown keys.
func levenshtein(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...max(b.count, 1) where j <= b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
