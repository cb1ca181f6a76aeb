import Reconcile
import Foundation
import Testing

/// The kernel datapath's pins belong to one network namespace and one
/// state directory: two gateways never share a map.
struct KernelPinsTests {
    @Test func thePinDirectoryNamesTheNamespaceAndTheStateDirectory() throws {
        var st = stat()
        #expect(stat("/proc/self/ns/net", &st) == 0)
        let a = try KernelProgramPlan.directory(bpfDir: "/sys/fs/bpf", stateDir: "/var/lib/sixgate", namespace: nil)
        #expect(a.hasPrefix("/sys/fs/bpf/sixgate/\(st.st_ino)-"), "\(a)")
        #expect(try KernelProgramPlan.directory(bpfDir: "/sys/fs/bpf", stateDir: "/var/lib/sixgate/", namespace: nil) == a, "the same directory, spelt otherwise")
        #expect(try KernelProgramPlan.directory(bpfDir: "/sys/fs/bpf", stateDir: "/var/lib/sixgate-b", namespace: nil) != a)
        #expect(throws: (any Error).self) { try KernelProgramPlan.directory(bpfDir: "/sys/fs/bpf", stateDir: "/x", namespace: "sgt-no-such-namespace") }
    }
}
