import Demo
import Foundation
import Testing

/// What `make demo` shows, asserted: the seed's three scenarios end to end
/// with `sixgated run` (DNS64 and the translator for c6 to reach s4; an EAM
/// for c4 to reach s6; 6bed4 peers, one behind NAT, talking directly and
/// reaching s6), then `status` and `verify`.
@Suite(.serialized) struct SeedScenarioTests {
    @Test func theDemoScenariosWork() throws {
        let demo = try DemoGateway(bin: binDir)
        defer { demo.rig.teardown() }
        let steps = try demo.scenarios()
        #expect(steps.count == 10)
        for step in steps {
            #expect(step.ok, "\(step.title)\n$ \(step.command)\n\(step.output)")
        }
    }
}
