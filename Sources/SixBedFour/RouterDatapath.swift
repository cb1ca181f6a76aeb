import Foundation
import Glibc
import Packet
import Synchronization
import Tun

/// The router's I/O: the UDP socket on the configured endpoint and the TUN
/// device towards IPv6, served by one thread with buffers allocated once.
public final class RouterDatapath: Sendable {
    public let router: SixBedFourRouter
    public let device: String
    private let failed = Mutex<String?>(nil)
    private let stopping = Atomic<Bool>(false)
    private let running = Atomic<Bool>(false)

    /// Why the thread stopped (its TUN device was deleted, say): the owner
    /// should stop too, so that a supervisor restarts it.
    public var failure: String? { failed.withLock { $0 } }

    public init(settings: RouterSettings, device: String) {
        router = SixBedFourRouter(settings: settings)
        self.device = device
    }

    public enum StartError: Error, CustomStringConvertible {
        case socket(SocketError)
        case tun(TunQueue.OpenError)

        public var description: String {
            switch self {
            case .socket(let e): "cannot open the 6bed4 UDP socket: \(e)"
            case .tun(let e): "\(e)"
            }
        }
    }

    /// Opens both ends (so that errors show before anything runs), then
    /// serves them on a thread of its own.
    public func start() throws(StartError) {
        let socket: UDPSocket
        if let handedOver = UDPSocket.adopt(router.settings.endpoint) {
            socket = handedOver
        } else {
            do { socket = try UDPSocket.bind(router.settings.endpoint) } catch { throw .socket(error) }
        }
        let tun: TunQueue
        do { tun = try TunQueue.open(device, multiQueue: false, existing: true) } catch {
            socket.close()
            throw .tun(error)
        }
        let router = router
        running.store(true, ordering: .relaxed)
        let thread = Thread { [self] in
            defer {
                socket.release()
                tun.release()
                running.store(false, ordering: .relaxed)
            }
            guard let reason = serve(router: router, socket: socket, tun: tun) else { return }
            failed.withLock { $0 = reason }
        }
        thread.name = "sixgate-6bed4"
        thread.start()
    }

    static let batch = 64

    /// Ends the thread within half a second; it closes the socket and the device.
    public func stop() { stopping.store(true, ordering: .relaxed) }

    /// Whether the thread has ended (after `stop` or a failure).
    public var stopped: Bool { !running.load(ordering: .relaxed) }

    /// Returns when the TUN device fails, with the reason, or nil when stopped.
    private func serve(router: SixBedFourRouter, socket: UDPSocket, tun: TunQueue) -> String? {
        // Room for a datagram over 1280 bytes to be seen as such, and refused.
        let capacity = 2048
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        defer { buffer.deallocate() }
        let out = SendBatch(socket: socket)
        func act(_ a: RouterAction) {
            switch a {
            case .toTUN(let p, let n): tun.write(p, length: n)
            case .toPeer(let e, let p, let n): out.add(p, length: n, to: e)
            case .drop, .keepalive: break
            }
        }
        tun.setNonBlocking()
        var fds = [pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0), pollfd(fd: tun.fd, events: Int16(POLLIN), revents: 0)]
        while !stopping.load(ordering: .relaxed) {
            // Idle: wait, but look at `stopping` twice a second.
            guard poll(&fds, 2, 500) > 0 else { continue }
            let now = UInt64(time(nil))
            // What is queued is drained, a bounded batch per side, before the
            // next poll: one wake-up serves many packets under load.
            for _ in 0..<Self.batch {
                guard let (n, from) = socket.receive(into: buffer, capacity: capacity) else { break }
                act(router.fromPeer(buffer, length: n, from: from, now: now))
            }
            for _ in 0..<Self.batch {
                let n = tun.read(into: buffer, capacity: capacity)
                if let failure = tun.failure(ofRead: n) {
                    out.flush()
                    return failure
                }
                guard n > 0 else { break }
                act(router.fromTUN(buffer, length: n, now: now))
            }
            out.flush()
        }
        return nil
    }
}
