import Demo
import Foundation
import NetnsRig

// `make demo`: builds the demo gateway in throwaway namespaces, runs the
// three scenarios against `sixgated run`, prints what each showed, and
// tears everything down. With KEEP=1 it stays up until Ctrl-C.
let bin = CommandLine.arguments.dropFirst().first
    ?? URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]).deletingLastPathComponent().path
/// Unbuffered, so that KEEP=1 shows everything before it waits.
func print(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

let keep = !(ProcessInfo.processInfo.environment["KEEP"] ?? "").isEmpty

print("sixgate demo: building the gateway (namespaces, NSD, web servers, sixgatectl apply, sixgated run, two 6bed4 peers)…\n")
do {
    let demo = try DemoGateway(bin: bin)
    // What an operator sees first: apply's report and the table it made.
    print("== the gateway's boot: sixgatectl apply, as sixgate.service runs it")
    print("$ sixgatectl apply \(demo.config) --netns \(demo.rig.ns("gw"))")
    print(demo.applyReport.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n") + "\n")
    print("$ nft list table inet sixgate   (in \(demo.rig.ns("gw")))")
    print(try demo.rig.run("gw", ["nft", "list", "table", "inet", "sixgate"]).stdout.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n") + "\n")
    var failed = 0
    for step in try demo.scenarios() {
        print("== \(step.title)")
        print("$ \(step.command)")
        if !step.output.isEmpty { print(step.output.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n")) }
        print(step.ok ? "-> ok\n" : "-> FAILED\n")
        if !step.ok { failed += 1 }
    }
    print(failed == 0 ? "All scenarios work." : "\(failed) step(s) failed.")
    if keep {
        let names = demo.rig.hosts.map(demo.rig.ns).joined(separator: " ")
        print("\nThe demo stays up: namespaces \(names)")
        print("e.g. ip netns exec \(demo.rig.ns("c6")) dig @2001:db8:1::1 www.example.org AAAA")
        print("     \(bin)/sixgatectl status \(demo.config)")
        print("Ctrl-C tears it down.")
        // Until a signal: the rig tears everything down and exits then.
        while true { pause() }
    }
    demo.rig.teardown()
    exit(failed == 0 ? 0 : 1)
} catch {
    FileHandle.standardError.write(Data("sixgate demo: \(error)\n".utf8))
    exit(1)
}
