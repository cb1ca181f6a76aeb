import Configuration
import Reconcile
import Foundation
import Testing
import Translator

/// The controller's state is root's alone, and never half-written.
struct StateFilesTests {
    func scratch() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sgt-state-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        return dir
    }

    @Test func aStateFileIsWrittenWholeForRootAlone() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/state/x.json"
        try StateFile.replace(file, with: "one\n")
        try StateFile.replace(file, with: "two\n")
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "two\n")
        let mode = try #require(FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int)
        #expect(mode == 0o600, "mode \(String(mode, radix: 8))")
        let dirMode = try #require(FileManager.default.attributesOfItem(atPath: dir + "/state")[.posixPermissions] as? Int)
        #expect(dirMode == 0o700, "mode \(String(dirMode, radix: 8))")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/state") == ["x.json"], "no temporary file is left")
    }

    @Test func aStateDirectoryEveryoneMayWriteIsRefused() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try Config.stateDirectory(dir, namespace: nil) == dir)
        chmod(dir, 0o1777)
        #expect(throws: StateDirError.self) { try Config.stateDirectory(dir, namespace: nil) }
        #expect(throws: StateDirError.self) { try Config.stateDirectory("/tmp", namespace: nil) }
    }
}
