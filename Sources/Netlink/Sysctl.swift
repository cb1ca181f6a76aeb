import Glibc

/// Kernel parameters under /proc/sys of one network namespace, by their dotted
/// names ("net.ipv6.conf.all.forwarding").
///
/// /proc/sys/net shows the namespace of the thread that opens a file there, so
/// every call opens its file anew inside the namespace.
public struct Sysctl: Sendable {
    public let namespace: String?

    public init(namespace: String?) {
        self.namespace = namespace
    }

    /// The value with its trailing newline removed (multi-value keys keep their
    /// inner tabs).
    public func read(_ key: String) throws -> String {
        let path = try Self.path(for: key)
        let operation = "read sysctl \(key) (\(path))"
        let bytes = try NetworkNamespace.run(in: namespace) { () throws(SystemError) -> [UInt8] in
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw SystemError(operation) }
            defer { close(fd) }
            var result: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw SystemError(operation)
                }
                if n == 0 { break }
                result.append(contentsOf: chunk[0..<n])
            }
            return result
        }
        var text = String(decoding: bytes, as: UTF8.self)
        while text.last == "\n" { text.removeLast() }
        return text
    }

    /// Writes the value; the kernel checks it and refuses what it cannot take
    /// (EINVAL), which is reported with the key.
    public func write(_ key: String, _ value: String) throws {
        let path = try Self.path(for: key)
        let operation = "write sysctl \(key) = \(value) (\(path))"
        let bytes = Array((value + "\n").utf8)
        try NetworkNamespace.run(in: namespace) { () throws(SystemError) in
            let fd = open(path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { throw SystemError(operation) }
            defer { close(fd) }
            // /proc/sys takes a value in one write; a short write would be a partial value.
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            guard n >= 0 else { throw SystemError(operation) }
            guard n == bytes.count else { throw SystemError("\(operation): short write", code: EIO) }
        }
    }

    /// "net.ipv4.conf.eth0.100.rp_filter" -> "/proc/sys/net/ipv4/conf/eth0.100/rp_filter".
    /// Interface names may contain dots, so under net.ipvX.conf and net.ipvX.neigh
    /// everything between that and the last component is the interface name.
    static func path(for key: String) throws -> String {
        let parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let invalid = SystemError("sysctl key \"\(key)\"", code: EINVAL)
        guard !key.contains("/"), !key.contains("\0"), parts.count >= 2 else { throw invalid }

        if parts.count >= 5, parts[0] == "net", parts[1] == "ipv4" || parts[1] == "ipv6",
           parts[2] == "conf" || parts[2] == "neigh" {
            let device = parts[3..<(parts.count - 1)].joined(separator: ".")
            guard let leaf = parts.last, !leaf.isEmpty, !device.isEmpty, device != ".", device != ".." else { throw invalid }
            return "/proc/sys/\(parts[0..<3].joined(separator: "/"))/\(device)/\(leaf)"
        }
        guard parts.allSatisfy({ !$0.isEmpty }) else { throw invalid }
        return "/proc/sys/" + parts.joined(separator: "/")
    }
}
