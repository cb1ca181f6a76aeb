import NIOCore
import NIOPosix
import Packet

/// Asks the upstream resolvers. Each query goes from a fresh socket (a random
/// source port) with a random ID, and an answer counts only when it comes from
/// the resolver asked, with that ID and the same question. A truncated answer
/// is asked again over TCP. Failures move on to the next resolver, until the
/// attempts are used up.
public struct Upstream: Sendable {
    public let servers: [SocketAddress]
    public let timeout: Duration
    public let attempts: Int
    let group: any EventLoopGroup

    public enum Failure: Error, Sendable { case noAnswer }

    public init(servers: [IPEndpoint], timeout: Duration, attempts: Int, group: any EventLoopGroup) throws {
        self.servers = try servers.map { try SocketAddress(ipAddress: $0.address.description, port: Int($0.port)) }
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.group = group
    }

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
                let answer = try await udp(query, to: server)
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

    /// One UDP exchange: a fresh socket, one datagram out, the first
    /// matching answer in, or nil at the timeout. A plain channel handler and
    /// a timer on its event loop: this is every cache miss's path, so it
    /// stays free of extra tasks.
    func udp(_ query: Message, to server: SocketAddress) async throws -> Message? {
        // The caller's loop when it runs on one (see EventLoopTaskExecutor).
        let loop = MultiThreadedEventLoopGroup.currentEventLoop ?? group.next()
        let answer = loop.makePromise(of: Message?.self)
        let channel = try await DatagramBootstrap(group: loop)
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(AnswerHandler(query: query, server: server, answer: answer)) }
            }
            .bind(host: server.protocol == .inet6 ? "::" : "0.0.0.0", port: 0).get()
        let timer = loop.scheduleTask(in: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)) {
            answer.succeed(nil)
        }
        defer {
            timer.cancel()
            channel.close(promise: nil)
        }
        channel.writeAndFlush(AddressedEnvelope(remoteAddress: server, data: ByteBuffer(bytes: Wire.encode(query))), promise: nil)
        return try await withTaskCancellationHandler {
            try await answer.futureResult.get()
        } onCancel: {
            answer.fail(CancellationError())
        }
    }

    func tcp(_ query: Message, to server: SocketAddress) async throws -> Message? {
        let channel = try await ClientBootstrap(group: group).connect(to: server) { ch in
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

/// Completes `answer` with the first datagram that comes from the server
/// asked and answers its question with its ID; anything else is ignored.
final class AnswerHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    let query: Message
    let server: SocketAddress
    let answer: EventLoopPromise<Message?>

    init(query: Message, server: SocketAddress, answer: EventLoopPromise<Message?>) {
        self.query = query
        self.server = server
        self.answer = answer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard envelope.remoteAddress == server,
              let m = try? Wire.decode(Array(envelope.data.readableBytesView)), Upstream.matches(m, query) else { return }
        answer.succeed(m)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // An ICMP unreachable from the server, for one: this attempt failed.
        answer.fail(error)
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
