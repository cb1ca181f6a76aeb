import Foundation
import NetnsRig
import Testing

/// Every input the fuzzers were seeded with or ever crashed on runs through
/// its harness on every `make test`: a crash once found stays fixed.
@Suite struct FuzzCorpusTests {
    @Test(arguments: ["engine", "dns", "dns64", "sixbedfour", "config", "control", "differential", "mux"])
    func theCorpusRunsWithoutACrash(harness: String) throws {
        let dir = repoRoot + "/Tests/Fuzz/Corpus/" + harness
        let inputs = try FileManager.default.contentsOfDirectory(atPath: dir).count
        #expect(inputs >= 2, "seeds for \(harness)")
        let r = try Spawn.run(["env", "SIXGATE_FUZZ=\(harness)", binDir + "/sixgate-fuzz", dir], timeout: .seconds(120), scratch: NSTemporaryDirectory())
        #expect(r.succeeded && r.stdout == "\(harness): \(inputs) inputs, no crash\n", "\(r)")
    }
}
