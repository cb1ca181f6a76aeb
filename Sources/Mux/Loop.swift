import CMux
import Glibc
import Packet
import Synchronization

/// One thread of the multiplexer: its own epoll, watching the listening
/// sockets every thread shares (EPOLLEXCLUSIVE: one idle thread is woken per
/// new connection, so none waits behind a busy one), and the connections it
/// accepted, from the peek to the end of the relay.
final class Loop: @unchecked Sendable {
    private let settings: MuxSettings
    private let epoll: Int32
    private let wake: Int32
    private let listeners: Listeners
    private var slots: [Connection?] = []
    private var free: [Int] = []
    /// Each slot's count of connections so far: an event still queued for a
    /// finished connection (the same batch can finish one and accept the
    /// next into its slot) must not reach the next.
    private var generations: [UInt32] = []
    private var scratch = [UInt8](repeating: 0, count: 4096)
    /// Empty pipes of finished relays, for the next ones.
    private var pipes: [(Int32, Int32)] = []
    private static let pipesKept = 256
    /// Open connections over every loop, against `maxConnections`.
    private let open: OpenCount
    let counters: Mutex<[MuxListenerCounters]>

    private static let listenerToken: UInt64 = 1 << 62
    private static let wakeToken: UInt64 = 1 << 63
    private static let chunk = 1 << 18

    init(settings: MuxSettings, listeners: Listeners, open: OpenCount) throws(MuxError) {
        self.settings = settings
        self.listeners = listeners
        self.open = open
        counters = Mutex([MuxListenerCounters](repeating: MuxListenerCounters(), count: settings.listeners.count))
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        wake = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard epoll >= 0, wake >= 0 else { throw MuxError(what: "epoll", code: errno) }
        _ = sixgate_mux_epoll_ctl(epoll, EPOLL_CTL_ADD, wake, UInt32(EPOLLIN.rawValue), Self.wakeToken)
        for (i, fd) in listeners.fds.enumerated() {
            _ = sixgate_mux_epoll_ctl(epoll, EPOLL_CTL_ADD, fd, UInt32(EPOLLIN.rawValue) | EPOLLEXCLUSIVE.rawValue, Self.listenerToken | UInt64(i))
        }
    }

    func stop() {
        var one: UInt64 = 1
        _ = write(wake, &one, 8)
    }

    /// Serves until `stop`, then closes everything.
    func run() {
        var tokens = [UInt64](repeating: 0, count: 256)
        var events = [UInt32](repeating: 0, count: 256)
        var lastSweep = Self.now()
        running: while true {
            let n = sixgate_mux_epoll_wait(epoll, &tokens, &events, 256, 250)
            if n < 0, errno != EINTR { break }
            for i in 0..<max(0, Int(n)) {
                let token = tokens[i]
                if token == Self.wakeToken { break running }
                if token & Self.listenerToken != 0 {
                    accept(listener: Int(token & 0xFFFF))
                } else if let c = slots[Int(token & 0xFFFF_FFFF) >> 1], c.generation == UInt32(token >> 32) {
                    handle(c, backendSide: token & 1 == 1, events: events[i])
                }
            }
            let now = Self.now()
            if now - lastSweep >= 250 {
                sweep(now: now)
                lastSweep = now
            }
        }
        for c in slots.compactMap({ $0 }) { finish(c) }
        for fd in [epoll, wake] + pipes.flatMap({ [$0.0, $0.1] }) { close(fd) }
    }

    static func now() -> Int64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Int64(t.tv_sec) * 1000 + Int64(t.tv_nsec) / 1_000_000
    }

    static func milliseconds(_ d: Duration) -> Int64 {
        let c = d.components
        return c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000
    }

    private func count(_ listener: Int, _ change: (inout MuxListenerCounters) -> Void) {
        counters.withLock { change(&$0[listener]) }
    }

    private func accept(listener: Int) {
        while true {
            var address = (UInt64(0), UInt64(0)), v4: Int32 = 0
            let fd = withUnsafeMutableBytes(of: &address) {
                sixgate_mux_accept(listeners.fds[listener], $0.baseAddress?.assumingMemoryBound(to: UInt8.self), &v4)
            }
            guard fd >= 0 else { return }
            // A translated connection comes from prefix + client already.
            let peer = withUnsafeBytes(of: address) { b in
                v4 != 0 ? settings.prefix.embed(IPv4Address(bytes: b.prefix(4))) : IPv6Address(networkBytes: b)
            }
            guard open.value.wrappingAdd(1, ordering: .relaxed).newValue <= settings.maxConnections else {
                open.value.wrappingSubtract(1, ordering: .relaxed)
                count(listener) { $0.overLimit += 1 }
                Connection.reset(fd)
                continue
            }
            let slot = free.popLast() ?? { slots.append(nil); generations.append(0); return slots.count - 1 }()
            // 30 bits: the token's top two are the listeners' and the wake's.
            generations[slot] = (generations[slot] &+ 1) & 0x3FFF_FFFF
            let now = Self.now()
            let c = Connection(slot: slot, generation: generations[slot], listener: listener, client: fd,
                               source: peer,
                               deadline: now + Self.milliseconds(settings.peekTimeout), now: now)
            slots[slot] = c
            _ = sixgate_mux_epoll_ctl(epoll, EPOLL_CTL_ADD, fd, Self.edges, c.token(backendSide: false))
            // The client's first bytes usually follow its handshake at once:
            // reading them now saves a round through epoll.
            if settings.listeners[listener].kind != .tcp { peek(c) } else { choose(c, settings.listeners[listener].routes.backend(for: nil)) }
        }
    }

    /// Both sockets of a connection join epoll once, edge-triggered for
    /// reading and writing: no interest ever changes. In return, every edge
    /// is acted on until the socket would block (the peek and the pump read
    /// until EAGAIN or until the other side cannot take more), or remembered.
    private static let edges = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLOUT.rawValue) | EPOLLET.rawValue

    private func handle(_ c: Connection, backendSide: Bool, events: UInt32) {
        // A hang-up or error: one side is gone both ways (a reset; an orderly
        // end both ways finishes the relay before). Otherwise the client
        // readable or the backend writable moves bytes up, the others down.
        let gone = events & (UInt32(EPOLLHUP.rawValue) | UInt32(EPOLLERR.rawValue)) != 0
        let readable = events & UInt32(EPOLLIN.rawValue) != 0, writable = events & UInt32(EPOLLOUT.rawValue) != 0
        switch c.stage {
        case .peeking where backendSide:
            break
        case .peeking:
            if gone { return finish(c) }
            if readable { peek(c) }
        case .connecting where !backendSide:
            // The client is read once the backend is there; until then only
            // whether it said more counts, or that it is gone.
            if gone { return finish(c) }
            if readable { c.clientSaidMore = true }
        case .connecting:
            if gone { return backendFailed(c) }
            if writable { connected(c, backendReadable: readable) }
        case .relaying where c.sent < c.peeked.count:
            // The backend has not taken all of the peek yet: nothing else moves.
            if gone { return finish(c) }
            guard backendSide, writable else { return }
            flush(c)
            // Edges of either side meanwhile were not acted on: both ways move.
            if c.stage == .relaying, c.sent == c.peeked.count { relay(c, up: true, down: true) }
        case .relaying:
            // Every event reports a writable socket as writable; it matters
            // only to a way whose pipe waits for that socket.
            let up = gone || (backendSide ? writable && c.up.queued > 0 : readable)
            let down = gone || (backendSide ? readable : writable && c.down.queued > 0)
            relay(c, up: up, down: down)
            if slots[c.slot] === c, gone { finish(c) }
        }
    }

    /// Reads until the name is known, the client would block, or it sent too much.
    private func peek(_ c: Connection) {
        while true {
            let room = min(settings.maxPeek - c.peeked.count, scratch.count)
            let n = recv(c.client, &scratch, room, 0)
            if n < 0, errno == EINTR { continue }
            if n < 0, errno == EAGAIN { return }
            guard n > 0 else { return finish(c) }
            c.peeked += scratch[0..<n]
            let listener = settings.listeners[c.listener]
            let peek = listener.kind == .tlsSNI ? ClientHello.peek(c.peeked) : HTTPHost.peek(c.peeked)
            switch peek {
            case .incomplete where c.peeked.count >= settings.maxPeek, .invalid:
                count(c.listener) { $0.invalid += 1 }
                return finish(c, reset: true)
            case .incomplete:
                continue
            case .name(let name):
                // What the client may have sent beyond this read is read by the relay.
                c.clientSaidMore = n == room
                return choose(c, listener.routes.backend(for: name))
            case .noName:
                c.clientSaidMore = n == room
                return choose(c, listener.routes.backend(for: nil))
            }
        }
    }

    /// Connects to `backend` from the client's address under the prefix, or
    /// resets the client when no route takes it.
    private func choose(_ c: Connection, _ backend: MuxBackend?) {
        guard let backend else {
            count(c.listener) { $0.noMatch += 1 }
            return finish(c, reset: true)
        }
        c.route = backend.route
        count(c.listener) { $0.routes[backend.route, default: MuxRouteCounters()].connections += 1 }
        let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return backendFailed(c) }
        c.backend = fd
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, 4)
        let source = IPEndpoint(address: .v6(c.source), port: 0)
        var from = sockaddr_storage(), to = sockaddr_storage()
        let fromLength = source.write(into: &from), toLength = backend.endpoint.write(into: &to)
        guard sixgate_mux_transparent6(fd) == 0,
              withUnsafePointer(to: &from, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, fromLength) } }) == 0
        else { return backendFailed(c) }
        let rc = withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, toLength) } }
        guard rc == 0 || errno == EINPROGRESS else { return backendFailed(c) }
        c.stage = .connecting
        c.deadline = Self.now() + Self.milliseconds(settings.peekTimeout)
        _ = sixgate_mux_epoll_ctl(epoll, EPOLL_CTL_ADD, fd, Self.edges, c.token(backendSide: true))
    }

    /// Writable without an error or hang-up: the connect succeeded (a refused
    /// or unreachable one reports EPOLLERR). A backend that speaks first may
    /// be readable in the same edge.
    private func connected(_ c: Connection, backendReadable: Bool) {
        guard c.openPipes(from: &pipes) else { return backendFailed(c) }
        c.stage = .relaying
        c.lastActivity = Self.now()
        flush(c)
        if c.stage == .relaying, c.sent == c.peeked.count { relay(c, up: c.clientSaidMore, down: backendReadable) }
    }

    /// Sends the backend what the peek read.
    private func flush(_ c: Connection) {
        let n = c.peeked[c.sent...].withUnsafeBytes { send(c.backend, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n < 0 {
            // The backend's next writable edge sends the rest.
            if errno == EAGAIN || errno == EINTR { return }
            return finish(c)
        }
        c.sent += n
        count(c.listener) { $0.routes[c.route ?? "", default: MuxRouteCounters()].bytesUp += n }
    }

    /// Moves what can move the ways asked; the next edges say when more can.
    private func relay(_ c: Connection, up pumpUp: Bool, down pumpDown: Bool) {
        guard let up = pumpUp ? Self.pump(&c.up, from: c.client, to: c.backend) : 0,
              let down = pumpDown ? Self.pump(&c.down, from: c.backend, to: c.client) : 0 else {
            return finish(c)
        }
        if up + down > 0 {
            c.lastActivity = Self.now()
            count(c.listener) {
                $0.routes[c.route ?? "", default: MuxRouteCounters()].bytesUp += up
                $0.routes[c.route ?? "", default: MuxRouteCounters()].bytesDown += down
            }
        }
        if c.up.shut && c.down.shut { finish(c) }
    }

    /// One way: empties the pipe into `to`, refills it from `from`, until
    /// either would wait; the bytes read, or nil when the connection broke.
    private static func pump(_ way: inout Connection.Direction, from: Int32, to: Int32) -> Int? {
        var moved = 0
        while true {
            if way.queued > 0 {
                let n = sixgate_mux_splice(way.pipeRead, to, way.queued)
                if n < 0 { return errno == EAGAIN ? moved : nil }
                way.queued -= n
                continue
            }
            if way.ended {
                if !way.shut {
                    _ = shutdown(to, Int32(SHUT_WR))
                    way.shut = true
                }
                return moved
            }
            let n = sixgate_mux_splice(from, way.pipeWrite, chunk)
            if n < 0 { return errno == EAGAIN ? moved : nil }
            if n == 0 {
                way.ended = true
                continue
            }
            way.queued += n
            moved += n
        }
    }

    private func backendFailed(_ c: Connection) {
        count(c.listener) { $0.routes[c.route ?? "", default: MuxRouteCounters()].backendFailures += 1 }
        finish(c, reset: true)
    }

    /// Closes what peeks too long, connects too long or idles too long.
    private func sweep(now: Int64) {
        let idle = Self.milliseconds(settings.idleTimeout)
        for case let c? in slots {
            switch c.stage {
            case .peeking where now > c.deadline:
                count(c.listener) { $0.peekTimeouts += 1 }
                finish(c, reset: true)
            case .connecting where now > c.deadline:
                backendFailed(c)
            case .relaying where now - c.lastActivity > idle:
                count(c.listener) { $0.idleClosed += 1 }
                finish(c, reset: true)
            default:
                break
            }
        }
    }

    private func finish(_ c: Connection, reset: Bool = false) {
        // Closing a descriptor removes it from the epoll set.
        c.close(reset: reset, pool: &pipes, keep: Self.pipesKept)
        slots[c.slot] = nil
        free.append(c.slot)
        open.value.wrappingSubtract(1, ordering: .relaxed)
    }
}

/// The listening sockets, one per `[[mux]]`, that every loop watches;
/// closed when the last loop lets go of them.
final class Listeners: Sendable {
    let fds: [Int32]

    init(_ settings: MuxSettings) throws(MuxError) {
        var fds: [Int32] = []
        for l in settings.listeners {
            do throws(MuxError) {
                fds.append(try Self.listen(l.bind))
            } catch {
                fds.forEach { _ = close($0) }
                throw error
            }
        }
        self.fds = fds
    }

    deinit { fds.forEach { _ = close($0) } }

    /// A listening socket; IP_FREEBIND (for both families) lets it bind
    /// before the address is up.
    private static func listen(_ endpoint: IPEndpoint) throws(MuxError) -> Int32 {
        let fd = socket(endpoint.address.isV4 ? AF_INET : AF_INET6,
                        Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw MuxError(what: "socket for \(endpoint)", code: errno) }
        var on: Int32 = 1
        for option in [SO_REUSEADDR, SO_REUSEPORT] { _ = setsockopt(fd, SOL_SOCKET, option, &on, 4) }
        // Accepted connections inherit it: no call per connection.
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, 4)
        _ = setsockopt(fd, Int32(IPPROTO_IP), IP_FREEBIND, &on, 4)
        var storage = sockaddr_storage()
        let length = endpoint.write(into: &storage)
        let bound = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0, Glibc.listen(fd, 1024) == 0 else {
            let code = errno
            close(fd)
            throw MuxError(what: "listen on \(endpoint)", code: code)
        }
        return fd
    }
}

/// Connections open over every loop.
final class OpenCount: Sendable {
    let value = Atomic<Int>(0)
}

public struct MuxError: Error, CustomStringConvertible {
    public let what: String
    public let code: Int32
    public var description: String { "\(what): \(String(cString: strerror(code)))" }
}
