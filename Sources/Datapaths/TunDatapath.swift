import Foundation
import Glibc
import Packet
import Synchronization
import Translator
import Tun

/// The userspace datapath: reader threads on the queues of the TUN device(s),
/// each with its own engine and one buffer allocated at start, so the packet
/// path allocates nothing. Packets are translated in place and written back;
/// the kernel routes them on.
public final class TunDatapath: TranslatorDatapath {
    public let settings: TranslatorSettings
    public let pool: DynamicPool?
    /// Which prefix each flow keeps during a renumbering; outlives the datapath, like the pool.
    public let flows: PrefixFlows?
    public let device: String
    public let device4: String?
    public let queues: Int
    private let engines = Mutex<[Engine]>([])
    private let failed = Mutex<String?>(nil)
    private let stopping = Atomic<Bool>(false)
    private let running = Atomic<Int>(0)

    public init(_ setup: DatapathSetup) {
        settings = setup.settings
        pool = setup.pool
        flows = setup.flows
        device = setup.device
        device4 = setup.device4
        queues = max(1, setup.queues)
    }

    public var counters: TranslatorCounters {
        engines.withLock { $0.reduce(TranslatorCounters()) { $0 + $1.snapshot } }
    }

    public var detail: String { "tun (userspace), \(queues) queue(s) on \(device)\(device4.map { " and \($0)" } ?? "")" }

    public var failure: String? { failed.withLock { $0 } }

    /// Ends the readers within half a second; each closes its queues.
    public func stop() { stopping.store(true, ordering: .relaxed) }

    public var stopped: Bool { running.load(ordering: .relaxed) == 0 }

    /// Opens every queue (so that errors show before anything runs; none
    /// stays open then), then starts one reader thread per queue.
    public func start() throws(DatapathError) {
        var pairs: [(TunQueue, TunQueue?)] = []
        do {
            for _ in 0..<queues {
                let main = try TunQueue.open(device, offload: true, existing: true)
                pairs.append((main, nil))
                if let device4 { pairs[pairs.count - 1].1 = try TunQueue.open(device4, offload: true, existing: true) }
            }
        } catch {
            for (main, v4) in pairs {
                main.close()
                v4?.close()
            }
            throw DatapathError("\(error)")
        }
        for (main, v4) in pairs {
            let engine = Engine(settings: settings, pool: pool, flows: flows)
            engines.withLock { $0.append(engine) }
            running.wrappingAdd(1, ordering: .relaxed)
            let thread = Thread { [self] in
                defer {
                    main.release()
                    v4?.release()
                    running.wrappingSubtract(1, ordering: .relaxed)
                }
                guard let reason = serve(main: main, v4: v4, engine: engine) else { return }
                failed.withLock { $0 = $0 ?? reason }
            }
            thread.name = "sixgate-tun-\(main.fd)"
            thread.start()
        }
    }

    /// One reader: drains its queue(s) in bursts, translates, and writes each
    /// result to the device of its family, joining small UDP datagrams of one
    /// flow into super-packets on the way (Coalescer). Waits only when every
    /// queue is empty, after writing what is pending. Returns when a queue
    /// fails, with the reason, or nil when stopped.
    private func serve(main: TunQueue, v4: TunQueue?, engine: Engine) -> String? {
        // The offload header is read into, and written from, the bytes just in
        // front of each packet.
        let capacity = Engine.headroom + 65536
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        // Where the datagrams of a UDP super-packet are made when they must be
        // translated one by one (Engine.mustSegment).
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        defer {
            buffer.deallocate()
            scratch.deallocate()
        }
        let joiner = Coalescer()
        func translate(_ base: UnsafeMutableRawPointer, length: Int, now: UInt64, offload: Offload) {
            var offload = offload
            switch engine.process(base, start: Engine.headroom, length: length, now: now, offload: &offload) {
            case .forward(let s, let l), .reply(let s, let l):
                let out = base + s
                joiner.write(out, length: l, offload: offload, to: out.u8(0) >> 4 == 4 ? v4 ?? main : main)
            case .fragments(var fragments):
                // Each written before the next is made over its tail.
                while let (s, l) = fragments.next(in: base) { joiner.write(base + s, length: l, offload: Offload(), to: main) }
            case .drop:
                break
            }
        }
        var broken: String?
        /// Reads and translates one packet; false when the queue is empty or
        /// fails (`broken`).
        func handle(_ q: TunQueue) -> Bool {
            let header = buffer + Engine.headroom - Offload.size
            let n = q.read(into: header, capacity: capacity - Engine.headroom + Offload.size)
            if let failure = q.failure(ofRead: n) {
                broken = failure
                return false
            }
            if n == -Int(EAGAIN) { return false }
            guard n > Offload.size else { return true }
            let offload = Offload(reading: header)
            let now = UInt64(time(nil))
            let packet = buffer + Engine.headroom
            if engine.mustSegment(packet, length: n - Offload.size, offload: offload) {
                Segmenter.packets(of: packet, length: n - Offload.size, offload: offload, scratch: scratch + Engine.headroom) { _, l in
                    translate(scratch, length: l, now: now, offload: Offload())
                }
            } else {
                translate(buffer, length: n - Offload.size, now: now, offload: offload)
            }
            return true
        }
        let queues = [main] + (v4.map { [$0] } ?? [])
        var fds = queues.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
        for q in queues { q.setNonBlocking() }
        var reported = 0
        while !stopping.load(ordering: .relaxed) {
            var busy = false
            for q in queues {
                var k = 0
                while k < Coalescer.maxSegments, handle(q) { k += 1 }
                busy = busy || k > 0
            }
            joiner.flush()
            if joiner.joined != reported {
                engine.countJoined(joiner.joined - reported)
                reported = joiner.joined
            }
            if let broken { return broken }
            // Idle: wait, but look at `stopping` twice a second.
            if !busy { _ = poll(&fds, nfds_t(fds.count), 500) }
        }
        return nil
    }
}
