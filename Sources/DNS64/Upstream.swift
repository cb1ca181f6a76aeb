import NIOCore
import NIOPosix
import Packet

/// Asks the upstream resolvers. Each query goes from a fresh socket (a random
/// source port, `UpstreamSockets`) with a random ID, and an answer counts only
/// when it comes from the resolver asked, with that ID and the same question. A truncated answer
/// is asked again over TCP. Failures move on to the next resolver, until the
/// attempts are used up.
public struct Upstream: Sendable {
    public let servers: [IPEndpoint]
    public let timeout: Duration
    public let attempts: Int
    let group: any EventLoopGroup
    /// Where UDP exchanges wait, and where the tasks of cache misses run.
    let loops: [UpstreamSockets]

    public enum Failure: Error, Sendable { case noAnswer }

    public init(servers: [IPEndpoint], timeout: Duration, attempts: Int, group: any EventLoopGroup, loops: UpstreamLoops) {
        self.servers = servers
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.group = group
        self.loops = loops.loops
    }

    /// The loop of the calling thread, so that the answer resumes the task
    /// where it runs; any loop for callers elsewhere (TCP clients).
    var loop: UpstreamSockets { loops.first { $0.isCurrent } ?? loops[Int.random(in: 0..<loops.count)] }

    public func resolve(_ question: Question, dnssecOK: Bool, checkingDisabled: Bool) async throws -> Message {
        for attempt in 0..<attempts {
            let server = servers[attempt % servers.count]
            var q = Message()
            q.id = UInt16.random(in: 0...UInt16.max)
            q.recursionDesired = true
            q.checkingDisabled = checkingDisabled
            q.questions = [question]
            q.edns = EDNS(udpSize: 1232, dnssecOK: dnssecOK)
            let query = q
            do {
                let answer = await loop.exchange(Wire.encode(query), to: server, timeout: timeout) { bytes in
                    (try? Wire.decode(bytes)).flatMap { Self.matches($0, query) ? $0 : nil }
                }
                try Task.checkCancellation()
                if let answer, answer.truncated {
                    if let full = try await withTimeout(timeout, { try await self.tcp(query, to: server) }) { return full }
                } else if let answer {
                    return answer
                }
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                continue  // this resolver failed; the next attempt asks the next one
            }
        }
        throw Failure.noAnswer
    }

    static func matches(_ answer: Message, _ query: Message) -> Bool {
        answer.isResponse && answer.id == query.id && answer.questions == query.questions
    }

    func tcp(_ query: Message, to server: IPEndpoint) async throws -> Message? {
        let address = try SocketAddress(ipAddress: server.address.description, port: Int(server.port))
        let channel = try await ClientBootstrap(group: group).connect(to: address) { ch in
            ch.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: ch) }
        }
        return try await channel.executeThenClose { inbound, outbound in
            let bytes = Wire.encode(query)
            var out = ByteBuffer()
            out.writeInteger(UInt16(bytes.count))
            out.writeBytes(bytes)
            try await outbound.write(out)
            var frames = TCPFrames()
            for try await chunk in inbound {
                frames.append(chunk)
                while let frame = frames.next() {
                    if let m = try? Wire.decode(frame), Self.matches(m, query) { return m }
                }
            }
            return nil
        }
    }
}

/// The upstream threads of a DNS64 server, made apart from it so that they
/// can outlive it: a server that its supervisor restarts gets the same ones.
public struct UpstreamLoops: Sendable {
    let loops: [UpstreamSockets]

    public init(threads: Int) { loops = (0..<max(1, threads)).map { _ in UpstreamSockets() } }
}

/// RFC 1035 §4.2.2 / RFC 7766 framing: a two-byte length before each message.
struct TCPFrames {
    private var buffer: [UInt8] = []

    mutating func append(_ chunk: ByteBuffer) { buffer += chunk.readableBytesView }

    mutating func next() -> [UInt8]? {
        guard buffer.count >= 2 else { return nil }
        let length = Int(buffer[0]) << 8 | Int(buffer[1])
        guard buffer.count >= 2 + length else { return nil }
        let frame = Array(buffer[2..<(2 + length)])
        buffer.removeFirst(2 + length)
        return frame
    }
}

/// `body`'s result, or nil when `limit` passes first (the body is cancelled).
func withTimeout<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T?) async throws -> T? {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        return try await group.next() ?? nil
    }
}
