import Common
import Foundation
import Glibc
import Synchronization
import Tun

/// A part of the config running in a process of its own under `sixgated
/// run` (`sixgated part NAME`): a crash there ends that part only. Its
/// channel carries what it reports (serving, failing), the counters `status`
/// asks for, and at a reload the descriptors it hands over.
final class PartProcess: Sendable {
    let part: Part
    let pid: pid_t
    private let channel: PartChannel

    private struct State {
        var exited = false
        /// Why it is ending, as the part said or as the supervisor decided.
        var reason: String?
        var nextID = 0
        var waiting: (id: Int, reply: Reply)?
    }

    private final class Reply: @unchecked Sendable {
        let done = DispatchSemaphore(value: 0)
        var values: [String: Int] = [:]
    }

    private let state = Mutex(State())
    /// Signalled when the channel has ended: every message the part sent, its
    /// hand-over included, has been read.
    private let readerDone = DispatchSemaphore(value: 0)

    private init(part: Part, pid: pid_t, channel: PartChannel) {
        self.part = part
        self.pid = pid
        self.channel = channel
    }

    /// Starts `sixgated part PART --config path` serving the config `text`
    /// with only `capabilities` (`Part.capabilityMask`), handing it
    /// `descriptors` (what the previous program kept for this part at a
    /// reload). Its messages go to `registry`.
    static func spawn(_ part: Part, config path: String, text: String, capabilities: String, descriptors: [(key: String, fd: Int32)],
                      registry: Registry) throws(PartChannelError) -> PartProcess {
        let (ours, theirs) = try PartChannel.pair()
        // The part finds its channel at 3 and the descriptors from 4 on, in
        // order; dup2 to those numbers in the child must not overwrite a
        // source, so every source first moves above them.
        let floor = PartChannel.partDescriptor + 1 + Int32(descriptors.count)
        let sources = ([theirs] + descriptors.map(\.fd)).map { fcntl($0, F_DUPFD_CLOEXEC, floor) }
        defer {
            for fd in sources where fd >= 0 { close(fd) }
            close(theirs)
            for d in descriptors { close(d.fd) }
        }
        guard !sources.contains(-1) else {
            ours.close()
            throw PartChannelError(what: "dup", code: errno)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (i, fd) in sources.enumerated() { posix_spawn_file_actions_adddup2(&actions, fd, PartChannel.partDescriptor + Int32(i)) }
        // Signals this process ignores or blocks would stay so in the part.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let handedOver = descriptors.enumerated().map { "\($0.element.key)=\(PartChannel.partDescriptor + 1 + Int32($0.offset))" }
        // systemd's notifications and watchdog are the supervisor's.
        let dropped: Set = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", Handover.variable, Registry.lastApplyVariable]
        let environment = ProcessInfo.processInfo.environment.filter { !dropped.contains($0.key) }.map { "\($0.key)=\($0.value)" }
            + (handedOver.isEmpty ? [] : ["\(Handover.variable)=\(handedOver.joined(separator: ","))"])
        let words = [exe, "part", part.rawValue, "--config", path, "--capabilities", capabilities]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { (w: String) in strdup(w) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { (w: String) in strdup(w) } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, exe, &actions, &attributes, argv, envp)
        guard rc == 0 else {
            ours.close()
            throw PartChannelError(what: "cannot start \(exe) part \(part.rawValue)", code: rc)
        }
        let process = PartProcess(part: part, pid: pid, channel: ours)
        // A config too large for one datagram fails here, and so the part.
        guard ours.send(.run(config: text)) else {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            ours.close()
            throw PartChannelError(what: "cannot pass the config to part \(part.rawValue)", code: errno)
        }
        let reader = Thread { process.read(into: registry) }
        reader.name = "sixgate.part.\(part.rawValue)"
        reader.start()
        return process
    }

    private func read(into registry: Registry) {
        defer {
            channel.close()
            readerDone.signal()
        }
        while let (message, fds) = channel.receive() {
            switch message {
            case .serving(let detail):
                registry.serving(part, detail: detail) { [weak self] in self?.counters() ?? [:] }
            case .failed(let reason):
                state.withLock { if $0.reason == nil { $0.reason = reason } }
            case .counters(let id, let values):
                state.withLock { s in
                    guard let w = s.waiting, w.id == id else { return }
                    w.reply.values = values
                    w.reply.done.signal()
                    s.waiting = nil
                }
            case .handedOver(let keys):
                // Kept for the program this one executes (armed), or closed.
                for (key, fd) in zip(keys, fds) { Handover.release("\(part.rawValue)/\(key)", fd) }
                for fd in fds.dropFirst(keys.count) { close(fd) }
                continue
            case .run, .askCounters, .handOver:
                break
            }
            fds.forEach { close($0) }
        }
    }

    /// The part's counters now; none when it does not answer within a second.
    func counters() -> [String: Int] {
        let reply = Reply()
        let id = state.withLock { s in
            s.nextID += 1
            s.waiting = (s.nextID, reply)
            return s.nextID
        }
        guard channel.send(.askCounters(id: id)), reply.done.wait(timeout: .now() + 1) == .success else {
            state.withLock { if $0.waiting?.id == id { $0.waiting = nil } }
            return [:]
        }
        return reply.values
    }

    /// Stops it, its queues and sockets kept for the next program.
    func handOver() { channel.send(.handOver) }

    /// Sends `signal` unless it has exited (its PID may be another's by then);
    /// `reason` is what status says it failed of.
    func signal(_ signal: Int32, reason: String? = nil) {
        state.withLock { s in
            guard !s.exited else { return }
            if let reason, s.reason == nil { s.reason = reason }
            kill(pid, signal)
        }
    }

    /// Waits until it has exited; why, for status, unless it was asked to.
    func ended() async -> String {
        let pid = pid
        let status: Int32 = await withCheckedContinuation { done in
            let waiter = Thread {
                // Seen, not reaped: until `exited` is set, `signal` can only reach this process.
                var info = siginfo_t()
                while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0, errno == EINTR {}
                self.state.withLock { $0.exited = true }
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0, errno == EINTR {}
                _ = self.readerDone.wait(timeout: .now() + 2)
                done.resume(returning: status)
            }
            waiter.name = "sixgate.wait.\(part.rawValue)"
            waiter.start()
        }
        return state.withLock { $0.reason } ?? Self.describe(status)
    }

    /// "exited with status 1", "killed by signal SIGSEGV".
    static func describe(_ status: Int32) -> String {
        let signal = status & 0x7f
        guard signal != 0 else { return "exited with status \((status >> 8) & 0xff)" }
        let names = [SIGSEGV: "SIGSEGV", SIGBUS: "SIGBUS", SIGILL: "SIGILL", SIGFPE: "SIGFPE", SIGTRAP: "SIGTRAP", SIGABRT: "SIGABRT",
                     SIGKILL: "SIGKILL", SIGTERM: "SIGTERM", SIGINT: "SIGINT", SIGHUP: "SIGHUP", SIGPIPE: "SIGPIPE", SIGUSR1: "SIGUSR1"]
        let name = names[signal] ?? "\(signal)"
        return "killed by signal \(name)" + (status & 0x80 != 0 ? " (core dumped)" : "")
    }
}
