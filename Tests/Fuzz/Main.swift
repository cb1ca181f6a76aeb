import Foundation

/// The harness a run exercises, from SIXGATE_FUZZ (libFuzzer passes only
/// its own arguments through).
let selected: Harness = {
    let name = ProcessInfo.processInfo.environment["SIXGATE_FUZZ"] ?? ""
    guard let h = Harness(rawValue: name) else {
        FileHandle.standardError.write(Data("SIXGATE_FUZZ must name a harness: \(Harness.allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
        exit(64)
    }
    return h
}()

#if FUZZING
// Built by `make fuzz` with -sanitize=fuzzer,address. SwiftPM makes this
// module's entry point the program's `main`, so libFuzzer's own is never
// linked: it runs through its driver instead.
@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
               _ body: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

@_cdecl("sixgate_fuzz_main")
func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    var count = argc
    var arguments: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    _ = selected
    return runDriver(&count, &arguments) { data, size in
        selected.run(UnsafeRawBufferPointer(start: data, count: size))
        return 0
    }
}
#else
/// Without the fuzzer: runs every input of the corpus directories given
/// (seeds and every crash ever found), as `make test` does, so that a
/// crash once found stays fixed.
@main
struct Replay {
    static func main() {
        var count = 0
        for dir in CommandLine.arguments.dropFirst() {
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
            for f in files {
                guard let data = FileManager.default.contents(atPath: dir + "/" + f) else { continue }
                data.withUnsafeBytes { selected.run($0) }
                count += 1
            }
        }
        print("\(selected.rawValue): \(count) inputs, no crash")
    }
}
#endif
