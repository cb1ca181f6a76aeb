@testable import Common
import Glibc
import Testing

/// Handover's state is the process's own (read from SIXGATE_FDS once, and
/// armed for good): each test that changes it runs in a process of its own
/// (an exit test), so that no other test in the runner meets it armed.
@Suite struct HandoverTests {
    /// SIXGATE_FDS: "key=fd" items, a key as often as it has descriptors;
    /// what is malformed, or names standard input, output or error, is left out.
    @Test func parsesTheEnvironmentVariable() {
        #expect(Handover.parse("tun:sg-nat64=5,tun:sg-nat64=6,udp:192.0.2.1:25790=7") == ["tun:sg-nat64": [5, 6], "udp:192.0.2.1:25790": [7]])
        #expect(Handover.parse("") == [:])
        #expect(Handover.parse("nofd,tun:a=x,tun:b=2,tun:c=-1,tun:d=9") == ["tun:d": [9]])
        #expect(Handover.parse("6bed4/udp:198.51.100.1:25790=12") == ["6bed4/udp:198.51.100.1:25790": [12]], "a part's prefix is part of the key")
    }

    /// What the previous program handed over is taken by key (a descriptor
    /// that no longer fits is closed), by a part's prefix, or closed as
    /// unclaimed; unarmed, a released descriptor is closed.
    @Test func takesWhatWasHandedOverAndClosesTheRest() async {
        await #expect(processExitsWith: .success) {
            func open() -> Int32 { Glibc.open("/dev/null", O_RDONLY | O_CLOEXEC) }
            func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) >= 0 }
            func closeOnExec(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) & FD_CLOEXEC != 0 }
            let a = open(), b = open(), c = open(), d = open(), e = open()
            // An exec clears close-on-exec: what is inherited comes without it.
            for fd in [a, b, c, d] { _ = fcntl(fd, F_SETFD, 0) }
            setenv(Handover.variable, "tun:t=\(a),tun:t=\(b),6bed4/udp:u=\(c),tun:gone=\(d)", 1)
            #expect(Handover.inherited == ["tun:t": 2, "6bed4/udp:u": 1, "tun:gone": 1], "inherited: \(Handover.inherited)")
            #expect(!Handover.isArmed, "not armed at the start")

            #expect(Handover.take("tun:t", where: { $0 == b }) == b, "the queue that fits is taken")
            #expect(!isOpen(a), "the one that did not fit is closed")
            #expect(closeOnExec(b), "a taken descriptor is close-on-exec again")
            #expect(Handover.take("tun:t", where: { _ in true }) == nil, "nothing more for the key")
            let mine = Handover.take(prefixed: "6bed4/")
            #expect(mine.count == 1 && mine[0].key == "udp:u" && mine[0].fd == c, "by prefix, the prefix removed: \(mine)")
            #expect(Handover.inherited == ["tun:gone": 1], "left: \(Handover.inherited)")

            Handover.release("udp:x", e)
            #expect(!isOpen(e), "released while not armed: closed")
            Handover.closeUnclaimed()
            #expect(!isOpen(d) && Handover.inherited.isEmpty, "the unclaimed are closed")
            #expect(isOpen(b) && isOpen(c), "what was taken stays open")
        }
    }

    /// Armed, a released descriptor is kept for the next program: the
    /// environment names it, with what was inherited and not taken, and
    /// leaves them open across the exec; nothing is closed as unclaimed.
    @Test func armedItShelvesForTheNextProgram() async {
        await #expect(processExitsWith: .success) {
            func open() -> Int32 { Glibc.open("/dev/null", O_RDONLY | O_CLOEXEC) }
            func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) >= 0 }
            func closeOnExec(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) & FD_CLOEXEC != 0 }
            let inherited = open(), queue = open()
            _ = fcntl(inherited, F_SETFD, 0)
            setenv(Handover.variable, "udp:old=\(inherited)", 1)
            #expect(Handover.inherited == ["udp:old": 1], "inherited: \(Handover.inherited)")
            Handover.arm()
            #expect(Handover.isArmed, "armed")
            Handover.release("tun:sg-nat64", queue)
            #expect(isOpen(queue), "released while armed: kept")
            Handover.closeUnclaimed()
            #expect(isOpen(inherited), "armed, nothing is closed as unclaimed")

            let value = Handover.environment()
            #expect(Set(value.split(separator: ",")) == ["tun:sg-nat64=\(queue)", "udp:old=\(inherited)"], "SIXGATE_FDS: \(value)")
            #expect(!closeOnExec(queue) && !closeOnExec(inherited), "both stay open across the exec")
            #expect(Handover.passing().isEmpty && Handover.inherited.isEmpty, "handed on once")
        }
    }
}
