import CMux
import Glibc
import Packet

/// One client's connection through the multiplexer, owned by one loop
/// thread: first the peek at its first bytes, then the connect to the
/// backend from the client's translated address, then the relay both ways
/// through a pipe each (splice: the bytes never enter this process).
final class Connection {
    enum Stage { case peeking, connecting, relaying }

    /// One way of the relay: `from` → pipe → `to`.
    struct Direction {
        var pipeRead: Int32 = -1
        var pipeWrite: Int32 = -1
        /// Bytes in the pipe, not yet written on.
        var queued = 0
        /// The reading side has ended (EOF).
        var ended = false
        /// The writing side has been shut down after the end.
        var shut = false
    }

    let slot: Int
    let generation: UInt32
    let listener: Int
    let client: Int32
    /// The client's address under the prefix, which the backend sees.
    let source: IPv6Address
    var backend: Int32 = -1
    var stage = Stage.peeking
    var peeked: [UInt8] = []
    /// How much of `peeked` the backend has been sent.
    var sent = 0
    var route: String?
    var up = Direction()
    var down = Direction()
    /// Monotonic milliseconds: when the peek must be done; the last byte moved.
    var deadline: Int64
    var lastActivity: Int64
    /// The client may have sent bytes that no read has taken yet: an edge
    /// came (or the peek's last read filled its buffer) before the backend
    /// could take them.
    var clientSaidMore = false

    init(slot: Int, generation: UInt32, listener: Int, client: Int32, source: IPv6Address, deadline: Int64, now: Int64) {
        self.slot = slot
        self.generation = generation
        self.listener = listener
        self.client = client
        self.source = source
        self.deadline = deadline
        self.lastActivity = now
    }

    /// The epoll token of one of its sockets: generation, slot, side. Slots
    /// stay below 2^31 (connections are bounded far lower).
    func token(backendSide: Bool) -> UInt64 {
        UInt64(generation) << 32 | UInt64(slot) << 1 | (backendSide ? 1 : 0)
    }

    /// Takes the pipes of the relay from `pool`; false when the system has
    /// none to give.
    func openPipes(from pool: inout [(Int32, Int32)]) -> Bool {
        for direction in [\Connection.up, \Connection.down] {
            guard let (r, w) = pool.popLast() ?? Self.newPipe() else { return false }
            self[keyPath: direction].pipeRead = r
            self[keyPath: direction].pipeWrite = w
        }
        return true
    }

    static func newPipe() -> (Int32, Int32)? {
        var fds: [Int32] = [0, 0]
        guard sixgate_mux_pipe(&fds) == 0 else { return nil }
        _ = sixgate_mux_pipe_size(fds[1], 1 << 18)
        return (fds[0], fds[1])
    }

    /// Closes the sockets (`reset`: the client gets a RST rather than a
    /// FIN); pipes left empty go back to `pool`, up to `keep` in it, for the
    /// next connection: most connections are short, and a pipe costs four
    /// system calls to make and to close.
    func close(reset: Bool = false, pool: inout [(Int32, Int32)], keep: Int) {
        if reset {
            Self.reset(client)
        } else {
            Glibc.close(client)
        }
        if backend >= 0 { Glibc.close(backend) }
        for d in [up, down] where d.pipeRead >= 0 {
            if d.queued == 0, pool.count < keep {
                pool.append((d.pipeRead, d.pipeWrite))
            } else {
                Glibc.close(d.pipeRead)
                Glibc.close(d.pipeWrite)
            }
        }
    }

    /// Closes `fd` with a RST.
    static func reset(_ fd: Int32) {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        Glibc.close(fd)
    }
}
