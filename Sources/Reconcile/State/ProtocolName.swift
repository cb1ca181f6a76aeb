import Foundation

/// The name `ip route` prints for sixgate's routing protocol number, from an
/// iproute2 rt_protos.d entry. Only a display aid: nothing depends on it.
public enum ProtocolName {
    public static let directory = "/etc/iproute2/rt_protos.d"
    public static let file = directory + "/sixgate.conf"

    public static func entry(_ number: Int) -> String {
        "# Routes installed by sixgatectl (controller.route_protocol).\n\(number)\tsixgate\n"
    }

    /// Writes the entry when it is missing or names another number. Returns a
    /// warning instead of failing: a read-only /etc must not stop a reconcile.
    public static func install(_ number: Int) -> String? {
        let want = entry(number)
        if (try? String(contentsOfFile: file, encoding: .utf8)) == want { return nil }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try want.write(toFile: file, atomically: true, encoding: .utf8)
            return nil
        } catch {
            return "could not write \(file) (ip route will show protocol \(number) as a number): \(error.localizedDescription)"
        }
    }
}
