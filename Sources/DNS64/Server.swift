import NIOCore
import NIOPosix
import Packet
import Synchronization

/// What the DNS64 server is handed from the config.
public struct DNS64Settings: Sendable {
    public var prefix: NAT64Prefix
    public var exclude: [IPv6Prefix]
    public var allow: [IPPrefix]
    public var listen: [IPEndpoint]
    public var upstreams: [IPEndpoint]
    public var timeout: Duration
    public var attempts: Int
    public var tcpIdleTimeout: Duration
    public var ednsUDPSize: Int
    public var answerPTR: Bool
    public var cacheBytes: Int

    public init(prefix: NAT64Prefix, exclude: [IPv6Prefix], allow: [IPPrefix], listen: [IPEndpoint], upstreams: [IPEndpoint],
                timeout: Duration, attempts: Int, tcpIdleTimeout: Duration, ednsUDPSize: Int, answerPTR: Bool, cacheBytes: Int) {
        self.prefix = prefix
        self.exclude = exclude
        self.allow = allow
        self.listen = listen
        self.upstreams = upstreams
        self.timeout = timeout
        self.attempts = attempts
        self.tcpIdleTimeout = tcpIdleTimeout
        self.ednsUDPSize = ednsUDPSize
        self.answerPTR = answerPTR
        self.cacheBytes = cacheBytes
    }
}

public struct DNS64Counters: Sendable, Equatable, CustomStringConvertible {
    public var queries = 0, synthesized = 0, passedThrough = 0, local = 0, refused = 0, formErr = 0, upstreamFailures = 0
    public var cacheHits = 0, cacheMisses = 0, overload = 0

    public var cacheHitRate: Double { cacheHits + cacheMisses == 0 ? 0 : Double(cacheHits) / Double(cacheHits + cacheMisses) }

    public var description: String {
        "queries=\(queries) synthesized=\(synthesized) passed_through=\(passedThrough) local=\(local) refused=\(refused) formerr=\(formErr) upstream_failures=\(upstreamFailures) cache_hits=\(cacheHits) cache_misses=\(cacheMisses) overload=\(overload)"
    }
}

/// The DNS64 server: UDP and TCP (RFC 7766) on the configured addresses, an
/// access list that defaults to the gateway's own networks, and RFC 6147
/// synthesis in front of the upstream resolvers.
public final class DNS64Server: Sendable {
    public let settings: DNS64Settings
    let synthesis: Synthesis
    let acl: AccessList
    let upstream: Upstream
    let group: any EventLoopGroup
    let cache: AnswerCache
    private let counting = Mutex(DNS64Counters())
    /// Queries being answered now. A flood must not grow memory without bound:
    /// past the limit, UDP queries are dropped (their clients retry).
    private let inFlight = Atomic<Int>(0)
    static let maxInFlight = 4096
    private let connections = Atomic<Int>(0)
    static let maxConnections = 512

    public init(settings: DNS64Settings, group: any EventLoopGroup) throws {
        self.settings = settings
        self.group = group
        synthesis = Synthesis(prefix: settings.prefix, exclude: settings.exclude)
        acl = AccessList(settings.allow)
        cache = AnswerCache(bytes: settings.cacheBytes)
        upstream = try Upstream(servers: settings.upstreams, timeout: settings.timeout, attempts: settings.attempts, group: group)
    }

    public var counters: DNS64Counters {
        var c = counting.withLock { $0 }
        (c.cacheHits, c.cacheMisses) = (cache.statistics.hits, cache.statistics.misses)
        return c
    }

    func count(_ f: (inout DNS64Counters) -> Void) { counting.withLock { f(&$0) } }

    // MARK: - Answering

    /// The wire answer to the wire query `bytes` from `client`; nil to stay
    /// silent. `udpLimit` is nil over TCP.
    public func answer(_ bytes: [UInt8], from client: IPAddress, overUDP: Bool) async -> [UInt8]? {
        count { $0.queries += 1 }
        let query: Message
        do {
            query = try Wire.decode(bytes)
        } catch {
            // FORMERR when there is at least a header to answer to.
            guard bytes.count >= 12, bytes[2] & 0x80 == 0 else { return nil }
            count { $0.formErr += 1 }
            return [bytes[0], bytes[1], 0x80 | bytes[2] & 0x78, RCode.formErr, 0, 0, 0, 0, 0, 0, 0, 0]
        }
        guard !query.isResponse else { return nil }
        let limit = overUDP ? max(512, min(Int(query.edns?.udpSize ?? 512), settings.ednsUDPSize)) : 65535
        func reply(_ rcode: UInt8) -> [UInt8] { Wire.encodeForUDP(.response(to: query, rcode: rcode), limit: limit) }
        guard query.opcode == 0 else { return reply(RCode.notImp) }
        guard query.questions.count == 1, let q = query.question else {
            count { $0.formErr += 1 }
            return reply(RCode.formErr)
        }
        guard acl.allows(client) else {
            count { $0.refused += 1 }
            return reply(RCode.refused)
        }
        do {
            let key = AnswerCache.Key(q, dnssecOK: query.edns?.dnssecOK ?? false, checkingDisabled: query.checkingDisabled)
            // Monotonic seconds: a change of the wall clock cannot keep stale answers.
            let now = UInt64(ProcessClock.shared.seconds)
            var m: Message
            if let hit = cache.lookup(key, now: now) {
                m = hit
            } else {
                m = try await resolve(query, q)
                cache.store(key, m, now: now)
            }
            m.id = query.id
            m.isResponse = true
            m.questions = query.questions
            m.recursionDesired = query.recursionDesired
            m.recursionAvailable = true
            m.edns = query.edns.map { EDNS(udpSize: UInt16(settings.ednsUDPSize), dnssecOK: $0.dnssecOK) }
            return Wire.encodeForUDP(m, limit: limit)
        } catch {
            count { $0.upstreamFailures += 1 }
            return reply(RCode.servFail)
        }
    }

    func resolve(_ query: Message, _ q: Question) async throws -> Message {
        let dnssecOK = query.edns?.dnssecOK ?? false
        if q.type == RRType.aaaa, q.name == SpecialNames.ipv4only {
            count { $0.local += 1 }
            return SpecialNames.ipv4onlyAnswer(query: query, prefix: settings.prefix)
        }
        if q.type == RRType.ptr, settings.answerPTR, let v4name = SpecialNames.inAddrName(forPTR: q.name, prefix: settings.prefix) {
            // RFC 6147 §5.3.1: the PTR of the embedded IPv4 address, answered under the name asked.
            var r = try await upstream.resolve(Question(name: v4name, type: RRType.ptr), dnssecOK: false, checkingDisabled: false)
            r.answers = r.answers.map { rr in
                var x = rr
                if rr.type == RRType.ptr, rr.name == v4name { x.name = q.name }
                return x
            }
            r.authenticData = false
            count { $0.synthesized += 1 }
            return r
        }
        let r = try await upstream.resolve(q, dnssecOK: dnssecOK, checkingDisabled: query.checkingDisabled)
        guard q.type == RRType.aaaa else {
            count { $0.passedThrough += 1 }
            return r
        }
        switch synthesis.decide(query: query, aaaaResponse: r) {
        case .pass(let m):
            count { $0.passedThrough += 1 }
            return m
        case .askForA:
            let a = try await upstream.resolve(Question(name: q.name, type: RRType.a, klass: q.klass), dnssecOK: dnssecOK, checkingDisabled: query.checkingDisabled)
            if let m = synthesis.synthesize(query: query, aaaaResponse: r, aResponse: a) {
                count { $0.synthesized += 1 }
                return m
            }
            count { $0.passedThrough += 1 }
            return r
        }
    }

    // MARK: - Serving

    /// Binds UDP and TCP on every listen address, calls `ready`, and serves until cancelled.
    public func run(ready: @Sendable () -> Void = {}) async throws {
        var udp: [NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>] = []
        var tcp: [NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>] = []
        let idle = TimeAmount.nanoseconds(Int64(settings.tcpIdleTimeout.components.seconds) * 1_000_000_000)
        for endpoint in settings.listen {
            let address = try SocketAddress(ipAddress: endpoint.address.description, port: Int(endpoint.port))
            udp.append(try await DatagramBootstrap(group: group)
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(to: address) { ch in
                    ch.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>(wrappingChannelSynchronously: ch)
                    }
                })
            tcp.append(try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(to: address) { ch in
                    ch.eventLoop.makeCompletedFuture {
                        // RFC 7766 §6.2.3: idle connections are closed.
                        try ch.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: idle))
                        try ch.pipeline.syncOperations.addHandler(CloseWhenIdle())
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: ch)
                    }
                })
        }
        ready()
        try await withThrowingDiscardingTaskGroup { group in
            for channel in udp { group.addTask { try await self.serveUDP(channel) } }
            for channel in tcp { group.addTask { try await self.serveTCP(channel) } }
        }
    }

    func serveUDP(_ channel: NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>) async throws {
        try await channel.executeThenClose { inbound, outbound in
            try await withThrowingDiscardingTaskGroup { group in
                for try await envelope in inbound {
                    guard let client = envelope.remoteAddress.ipAddress.flatMap(IPAddress.init) else { continue }
                    guard inFlight.wrappingAdd(1, ordering: .relaxed).oldValue < Self.maxInFlight else {
                        inFlight.wrappingSubtract(1, ordering: .relaxed)
                        count { $0.overload += 1 }
                        continue
                    }
                    let bytes = Array(envelope.data.readableBytesView)
                    group.addTask {
                        defer { self.inFlight.wrappingSubtract(1, ordering: .relaxed) }
                        guard let out = await self.answer(bytes, from: client, overUDP: true) else { return }
                        try? await outbound.write(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: ByteBuffer(bytes: out)))
                    }
                }
            }
        }
    }

    func serveTCP(_ server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>) async throws {
        try await server.executeThenClose { connections in
            try await withThrowingDiscardingTaskGroup { group in
                for try await connection in connections {
                    // Past the limit a new connection is closed at once (RFC 7766 §6.2.2).
                    guard self.connections.wrappingAdd(1, ordering: .relaxed).oldValue < Self.maxConnections else {
                        self.connections.wrappingSubtract(1, ordering: .relaxed)
                        count { $0.overload += 1 }
                        connection.channel.close(promise: nil)
                        continue
                    }
                    group.addTask {
                        defer { self.connections.wrappingSubtract(1, ordering: .relaxed) }
                        try? await self.serveConnection(connection)
                    }
                }
            }
        }
    }

    /// One TCP connection: queries may come pipelined; each is answered in turn.
    func serveConnection(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async throws {
        guard let client = connection.channel.remoteAddress?.ipAddress.flatMap(IPAddress.init) else { return }
        try await connection.executeThenClose { inbound, outbound in
            var frames = TCPFrames()
            for try await chunk in inbound {
                frames.append(chunk)
                while let frame = frames.next() {
                    guard let out = await answer(frame, from: client, overUDP: false) else { continue }
                    var buffer = ByteBuffer()
                    buffer.writeInteger(UInt16(out.count))
                    buffer.writeBytes(out)
                    try await outbound.write(buffer)
                }
            }
        }
    }
}

/// Monotonic seconds since the process started.
final class ProcessClock: Sendable {
    static let shared = ProcessClock()
    private let start = ContinuousClock.now
    var seconds: Int64 { (ContinuousClock.now - start).components.seconds }
}

/// Closes a connection when IdleStateHandler says it has been quiet too long.
final class CloseWhenIdle: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
    }
}
