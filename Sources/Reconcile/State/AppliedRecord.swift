import Foundation
import Translator

/// What sixgate owns in a namespace, as the last apply recorded it in the
/// state directory: written before an apply changes anything (with the
/// route protocols of both the old and the new config) and again when it
/// is done. An apply interrupted anywhere, even half-way through a change
/// of `route_protocol`, is then recognised and finished by the next one;
/// and `remove --all` finds everything without a config.
public struct AppliedRecord: Codable, Sendable, Equatable {
    /// Every protocol number sixgate's routes may carry.
    public var routeProtocols: [UInt8]
    /// Where the kernel datapath's program and maps are pinned.
    public var bpfPins: String?
    /// false from the start of an apply until it completes.
    public var complete: Bool

    public static let fileName = "applied.json"
    public static func file(in stateDir: String) -> String { (stateDir as NSString).appendingPathComponent(fileName) }

    /// The record in `stateDir`; nil when there is none (or it cannot be read).
    public static func load(stateDir: String) -> AppliedRecord? { JSONState.load(file(in: stateDir)) }

    public func save(stateDir: String) throws { try JSONState.save(self, to: Self.file(in: stateDir)) }
}

/// The controller's state files: JSON a human can read, replaced whole.
enum JSONState {
    /// The value in `path`; nil when there is none or it cannot be read.
    static func load<T: Decodable>(_ path: String) -> T? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(T.self, from: data)
    }

    static func save(_ value: some Encodable, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try StateFile.replace(path, with: String(decoding: try encoder.encode(value), as: UTF8.self) + "\n")
    }
}
