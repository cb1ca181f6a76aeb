import Foundation
import Glibc
import Logging
import ServiceLifecycle

/// WATCHDOG=1 at half the interval systemd asked for, while the group runs.
struct WatchdogService: Service {
    let interval: Duration

    func run() async throws {
        try await everyUntilShutdown(interval / 2) { Systemd.notify("WATCHDOG=1") }
    }
}

/// sd_notify(3) without libsystemd: a datagram to $NOTIFY_SOCKET. Never
/// waits: a message the other end has no room for is dropped rather than
/// block a thread of the daemon.
enum Systemd {
    static func notify(_ state: String) {
        guard let path = ProcessInfo.processInfo.environment["NOTIFY_SOCKET"], !path.isEmpty else { return }
        var name = Array(path.utf8)
        if name[0] == UInt8(ascii: "@") { name[0] = 0 }  // an abstract socket
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        guard name.count <= MemoryLayout.size(ofValue: address.sun_path) else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: name) }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + name.count)
        _ = Array(state.utf8).withUnsafeBytes { bytes in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT), $0, length) }
            }
        }
    }

    /// WATCHDOG_USEC, when it is meant for this process (WATCHDOG_PID unset or ours).
    static var watchdogInterval: Duration? {
        let env = ProcessInfo.processInfo.environment
        guard let usec = env["WATCHDOG_USEC"].flatMap(Int64.init), usec > 0 else { return nil }
        if let pid = env["WATCHDOG_PID"].flatMap(Int32.init), pid != getpid() { return nil }
        return .microseconds(usec)
    }
}

/// One line per event on standard error, with the part it comes from:
/// `sixgated[dns64]: dns64 ready on …`. journald adds the time.
struct LineLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let tag = label == "sixgated" ? "sixgated" : "sixgated[\(label)]"
        FileHandle.standardError.write(Data("\(tag): \(event.message)\n".utf8))
    }
}
