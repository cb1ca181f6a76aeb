/// Which backend a name goes to: exact names first, then wildcards
/// (`*.example.com` stands for any name ending in `.example.com`, one label
/// or more), the longest suffix first; then the default, if any.
public struct NameRoutes<Backend: Sendable>: Sendable {
    private var exact: [String: Backend] = [:]
    /// Suffixes with their leading dot (".example.com"), longest first.
    private var wildcards: [(suffix: String, backend: Backend)] = []
    public var fallback: Backend?

    public init(_ routes: [(name: String, backend: Backend)], fallback: Backend? = nil) {
        for (name, backend) in routes {
            let name = name.lowercased()
            if name.hasPrefix("*.") {
                wildcards.append((String(name.dropFirst()), backend))
            } else {
                exact[name] = backend
            }
        }
        wildcards.sort { $0.suffix.count > $1.suffix.count }
        self.fallback = fallback
    }

    /// Names routed, exact and wildcard.
    public var count: Int { exact.count + wildcards.count }

    /// The backend for `name` (already normalized: `HostName`); the default
    /// for a connection that names none (nil).
    public func backend(for name: String?) -> Backend? {
        guard let name else { return fallback }
        if let b = exact[name] { return b }
        return wildcards.first { name.hasSuffix($0.suffix) && name.count > $0.suffix.count }?.backend ?? fallback
    }
}
