import Common
import Foundation

/// The rules of a table as the nft tool prints them, by chain and handle:
/// how plan and audit show a rule that sixgate did not write (one added by
/// hand carries no text of sixgate's), instead of as netlink expressions.
/// Without the tool, or when it fails, there is nothing, and the
/// expressions are shown.
public enum NftListing {
    public static func rules(table: String, namespace: String?) -> [String: [UInt64: String]] {
        let process = Process()
        // Found on PATH, wherever the distribution puts them.
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let nft = ["nft", "-a", "list", "table", "inet", table]
        process.arguments = namespace.map { ["ip", "netns", "exec", $0] + nft } ?? nft
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return [:] }
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return [:] }
        var rules: [String: [UInt64: String]] = [:]
        var chain: String?
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            // "chain forward { # handle 3"
            if line.hasPrefix("chain "), line.contains("{") {
                chain = line.split(separator: " ").dropFirst().first.map(String.init)
            } else if let chain, let mark = line.range(of: " # handle "), let handle = UInt64(line[mark.upperBound...]) {
                rules[chain, default: [:]][handle] = String(line[..<mark.lowerBound])
            }
        }
        return rules
    }

    /// `drift` with each rule that is shown as expressions ("handle N: [...")
    /// shown as nft prints it.
    public static func readable(_ drift: [Drift], table: String, namespace: String?) -> [Drift] {
        let raw = drift.contains { $0.area == .nft && $0.detail?.hasPrefix("handle ") == true && $0.detail?.contains(": [") == true }
        guard raw else { return drift }
        let rules = rules(table: table, namespace: namespace)
        return drift.map { d in
            guard d.area == .nft, let detail = d.detail, detail.hasPrefix("handle "), detail.contains(": ["),
                  let chain = d.object.split(separator: " ").last.map(String.init),
                  let handle = UInt64(detail.dropFirst("handle ".count).prefix { $0.isNumber }),
                  let text = rules[chain]?[handle] else { return d }
            var shown = d
            shown.detail = "handle \(handle): \(text)"
            return shown
        }
    }
}
