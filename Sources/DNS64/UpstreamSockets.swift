import CNetlink
import Foundation
import Glibc
import Packet
import Synchronization

/// Upstream UDP exchanges on plain sockets: each exchange gets a fresh socket
/// (so a fresh random source port), connected to the resolver asked, so the
/// kernel drops datagrams from anyone else. One thread waits for all of them
/// with epoll and completes each with the first datagram that answers it, or
/// with nothing at its deadline. Every cache miss takes two of these, so they
/// cost a handful of system calls, not a channel and its pipeline.
///
/// The thread is also a task executor: the tasks of cache misses run on it,
/// so an answer arriving resumes its task on the same thread, without waking
/// another one (a thread switch costs more than the rest of the exchange).
final class UpstreamSockets: TaskExecutor, Sendable {
    private struct Pending {
        let continuation: CheckedContinuation<Message?, Never>
        let deadline: ContinuousClock.Instant
        let accept: @Sendable ([UInt8]) -> Message?
    }

    private let epoll: Int32
    /// Written to wake the thread for a job enqueued while it waits.
    private let wake: Int32
    private let pending = Mutex<[Int32: Pending]>([:])
    private struct Jobs: ~Copyable {
        var queue: [UnownedJob] = []
        var sleeping = false
    }
    private let jobs = Mutex(Jobs())
    private let thread = Atomic<UInt>(0)
    /// Deadlines are checked this often.
    static let tick: Int32 = 20

    init() {
        epoll = sixgate_epoll_create()
        wake = sixgate_eventfd()
        _ = sixgate_epoll_add(epoll, wake)
        let thread = Thread { [self] in self.wait() }
        thread.name = "sixgate-dns64-upstream"
        thread.start()
    }

    /// Whether the caller runs on this loop's thread.
    var isCurrent: Bool { thread.load(ordering: .relaxed) == UInt(pthread_self()) }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let sleeping = jobs.withLock { j in
            j.queue.append(job)
            defer { j.sleeping = false }
            return j.sleeping
        }
        if sleeping {
            var one: UInt64 = 1
            _ = write(wake, &one, 8)
        }
    }

    /// Sends `query` to `server` and returns the first datagram from it that
    /// `accept` takes; nil at the timeout, on an ICMP error, or when cancelled.
    func exchange(_ query: [UInt8], to server: IPEndpoint, timeout: Duration, accept: @escaping @Sendable ([UInt8]) -> Message?) async -> Message? {
        var address = sockaddr_storage()
        let length = server.write(into: &address)
        let fd = socket(Int32(address.ss_family), Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } }
        guard connected == 0, query.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == query.count else {
            close(fd)
            return nil
        }
        let deadline = ContinuousClock.now + timeout
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Message?, Never>) in
                pending.withLock { $0[fd] = Pending(continuation: c, deadline: deadline, accept: accept) }
                if sixgate_epoll_add(epoll, fd) != 0 { finish(fd, nil) }
            }
        } onCancel: {
            finish(fd, nil)
        }
    }

    private func finish(_ fd: Int32, _ answer: Message?) {
        guard let p = pending.withLock({ $0.removeValue(forKey: fd) }) else { return }
        close(fd)  // which also takes it out of the epoll set
        p.continuation.resume(returning: answer)
    }

    private func wait() {
        thread.store(UInt(pthread_self()), ordering: .relaxed)
        var ready = [Int32](repeating: 0, count: 64)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 65536, alignment: 16)
        var batch: [UnownedJob] = []
        batch.reserveCapacity(256)
        var lastSweep = ContinuousClock.now
        while true {
            jobs.withLock { j in
                swap(&j.queue, &batch)
                j.sleeping = batch.isEmpty
            }
            let ran = !batch.isEmpty
            for job in batch { job.runSynchronously(on: asUnownedTaskExecutor()) }
            batch.removeAll(keepingCapacity: true)
            let n = sixgate_epoll_wait(epoll, &ready, Int32(ready.count), ran ? 0 : Self.tick)
            for i in 0..<max(0, Int(n)) {
                let fd = ready[i]
                if fd == wake {
                    var count: UInt64 = 0
                    _ = read(wake, &count, 8)
                    continue
                }
                guard let accept = pending.withLock({ $0[fd]?.accept }) else { continue }
                while true {
                    let got = recv(fd, buffer, 65536, Int32(MSG_DONTWAIT))
                    if got < 0 {
                        // ECONNREFUSED and the like: the resolver is not there.
                        if errno != EAGAIN && errno != EINTR { finish(fd, nil) }
                        break
                    }
                    if let m = accept(Array(UnsafeRawBufferPointer(start: buffer, count: got))) {
                        finish(fd, m)
                        break
                    }
                }
            }
            let now = ContinuousClock.now
            if now - lastSweep >= .milliseconds(Int(Self.tick)) {
                lastSweep = now
                let expired = pending.withLock { $0.filter { $0.value.deadline <= now }.map(\.key) }
                for fd in expired { finish(fd, nil) }
            }
        }
    }
}
