import Foundation
import Glibc
import NetnsRig

/// The directory holding the built executables (next to the test bundle).
let binDir: String = {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    return URL(fileURLWithPath: exe).deletingLastPathComponent().path
}()

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// Every example config, examples/NAME.toml, by NAME (sorted): each is checked,
/// rendered against its nft/NAME.nft and applied by the tests that iterate
/// over this list, so a new example is covered without a change here.
let exampleNames: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: repoRoot + "/examples")) ?? [])
    .filter { $0.hasSuffix(".toml") }.map { String($0.dropLast(5)) }.sorted()

struct MissingBinary: Error, CustomStringConvertible {
    let path: String
    var description: String { "\(path) is not built: run `swift build` first (make test does)" }
}

/// Runs one of our executables on this host (not in a namespace).
func runProduct(_ name: String, _ args: [String], timeout: Duration = .seconds(30)) throws -> CommandResult {
    let path = binDir + "/" + name
    guard access(path, X_OK) == 0 else { throw MissingBinary(path: path) }
    return try Spawn.run([path] + args, timeout: timeout, scratch: NSTemporaryDirectory())
}

func isAlive(_ pid: pid_t) -> Bool { kill(pid, 0) == 0 || errno != ESRCH }

/// Links of the root namespace, read only, to prove that a test changed none.
func rootLinks() throws -> [String] {
    let r = try Spawn.run(["ip", "-o", "link", "show"], timeout: .seconds(10), scratch: NSTemporaryDirectory())
    return r.stdout.split(separator: "\n").map { line in
        // "3: eth0@if4: <…> …" -> "eth0@if4"; the rest (counters, state) may change.
        String(line.split(separator: ":", maxSplits: 2).dropFirst().first ?? "").trimmingCharacters(in: .whitespaces)
    }.sorted()
}

extension NetnsRig {
    /// A file of random bytes and its SHA-256, as sha256sum prints it.
    func blob(size: Int) throws -> (dir: String, sha: String) {
        let dir = scratch + "/www"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try checked("gw", ["sh", "-c", "head -c \(size) /dev/urandom > \(dir)/blob"])
        let sha = try checked("gw", ["sha256sum", dir + "/blob"]).stdout.split(separator: " ")[0]
        return (dir, String(sha))
    }
}

/// Where the gateway of `rig` keeps its state, for a config whose state_dir
/// is the rig's `scratch/state`: each network namespace has its own.
func gatewayState(_ rig: NetnsRig) -> String { rig.scratch + "/state/netns/" + rig.ns("gw") }

/// Waits until the translator's state file holds `client`'s pool mapping:
/// the translator saves the pool's state every second.
func waitForSavedMapping(_ rig: NetnsRig, client: String = "2001:db8:1::2", deadline: Duration = .seconds(5)) throws {
    let file = gatewayState(rig) + "/pool4.state"
    try waitUntil("\(client)'s pool mapping in \(file)", deadline: deadline, poll: .milliseconds(100)) {
        ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").split(separator: "\n").contains { $0.hasPrefix(client + " ") }
    }
}
