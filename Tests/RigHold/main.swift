import Foundation
import NetnsRig

// Test helper for the rig's interrupt handling: builds the standard topology,
// starts a long sleep in s6, reports what it made, and waits to be signalled.
// The integration test then checks that the signal tore everything down.
do {
    let rig = try NetnsRig.standard()
    let sleeper = try rig.start("s6", ["sleep", "600"], name: "sleeper")
    FileHandle.standardOutput.write(Data("ready \(sleeper.pid) \(rig.hosts.map(rig.ns).joined(separator: " "))\n".utf8))
    // Until a signal: the rig tears everything down and exits then.
    while true { pause() }
} catch {
    FileHandle.standardError.write(Data("rig-hold: \(error)\n".utf8))
    exit(1)
}
