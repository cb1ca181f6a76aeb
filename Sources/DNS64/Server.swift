import NIOCore
import NIOPosix
import Packet
import Synchronization

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
    /// Queries and hits over TCP; the UDP threads count their own.
    private let queries = Atomic<Int>(0)
    private let cacheHits = Atomic<Int>(0)
    private let fronts = Mutex<[UDPFront]>([])
    /// Queries being answered now. A flood must not grow memory without bound:
    /// past the limit, UDP queries are dropped (their clients retry).
    private let inFlight = Atomic<Int>(0)
    static let maxInFlight = 4096
    private let connections = Atomic<Int>(0)
    static let maxConnections = 512

    /// `loops`: upstream threads that outlive this server (see `UpstreamLoops`).
    public init(settings: DNS64Settings, group: any EventLoopGroup, loops: UpstreamLoops? = nil) throws {
        self.settings = settings
        self.group = group
        synthesis = Synthesis(prefix: settings.prefix, exclude: settings.exclude, maxTTL: settings.maxTTL, trustUpstreamAD: settings.trustUpstreamAD)
        acl = AccessList(settings.allow)
        cache = AnswerCache(bytes: settings.cacheBytes)
        upstream = Upstream(servers: settings.upstreams, timeout: settings.timeout, attempts: settings.attempts, group: group,
                            loops: loops ?? UpstreamLoops(threads: settings.threads))
    }

    public var counters: DNS64Counters {
        var c = counting.withLock { $0 }
        let udp = fronts.withLock { $0.map { ($0.queries.load(ordering: .relaxed), $0.hits.load(ordering: .relaxed)) } }
        c.udpPerSocket = udp.map(\.0)
        c.queries = queries.load(ordering: .relaxed) + c.udpPerSocket.reduce(0, +)
        c.cacheHits = cacheHits.load(ordering: .relaxed) + udp.reduce(0) { $0 + $1.1 }
        return c
    }

    func count(_ f: (inout DNS64Counters) -> Void) { counting.withLock { f(&$0) } }
    func countQuery() { queries.wrappingAdd(1, ordering: .relaxed) }

    /// Monotonic seconds: a change of the wall clock cannot keep stale answers.
    var now: UInt64 { UInt64(ProcessClock.shared.seconds) }

    /// The largest response a UDP client takes: its buffer, within our EDNS size.
    func udpLimit(_ clientSize: Int) -> Int { max(512, min(clientSize, settings.ednsUDPSize)) }

    // MARK: - Answering

    /// The answer to a UDP query when it is a cache hit for an allowed client
    /// and fits its buffer, written into `out`: its length. nil sends the
    /// query down the full path (`answer`). Counts neither the query nor the
    /// hit: the UDP threads do, once per batch.
    func answerFromCache(_ query: UnsafeRawBufferPointer, from client: IPAddress, into out: UnsafeMutableRawBufferPointer) -> Int? {
        guard let head = QueryHead(query), acl.allows(client), let hit = cache.lookup(head.key, now: now),
              hit.count <= udpLimit(head.udpSize), hit.count <= out.count else { return nil }
        hit.write(into: out, id: head.id, recursionDesired: head.recursionDesired, qname: UnsafeRawBufferPointer(rebasing: query[12..<head.nameEnd]))
        return hit.count
    }

    /// The wire answer to the wire query `bytes` from `client`; nil to stay
    /// silent. Does not count the query (the callers do, once).
    public func answer(_ bytes: [UInt8], from client: IPAddress, overUDP: Bool) async -> [UInt8]? {
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
        let limit = overUDP ? udpLimit(Int(query.edns?.udpSize ?? 512)) : 65535
        /// The client's EDNS answered with ours (RFC 6891 §6.1.1), and what
        /// the upstream said of its errors.
        func edns(extendedRCode: UInt8 = 0, errors: [UInt8] = []) -> EDNS? {
            query.edns.map {
                var e = EDNS(udpSize: UInt16(settings.ednsUDPSize), dnssecOK: $0.dnssecOK)
                e.extendedRCode = extendedRCode
                e.options = errors
                return e
            }
        }
        func reply(_ rcode: UInt8, extendedRCode: UInt8 = 0) -> [UInt8] {
            var m = Message.response(to: query, rcode: rcode)
            m.edns = edns(extendedRCode: extendedRCode)
            return Wire.encodeForUDP(m, limit: limit)
        }
        // RFC 6891 §6.1.3: we speak EDNS version 0 only.
        if let e = query.edns, e.version > 0 {
            count { $0.badVers += 1 }
            return reply(RCode.noError, extendedRCode: RCode.badVersExtended)
        }
        guard query.opcode == 0 else { return reply(RCode.notImp) }
        guard query.questions.count == 1, let q = query.question else {
            count { $0.formErr += 1 }
            return reply(RCode.formErr)
        }
        guard acl.allows(client) else {
            count { $0.refused += 1 }
            return reply(RCode.refused)
        }
        let key = AnswerCache.Key(q, dnssecOK: query.edns?.dnssecOK ?? false, checkingDisabled: query.checkingDisabled, edns: query.edns != nil)
        if let hit = cache.lookup(key, now: now) {
            cacheHits.wrappingAdd(1, ordering: .relaxed)
            let wire = hit.response(id: query.id, recursionDesired: query.recursionDesired, qname: q.name.wire)
            // Too large for this client: truncated as any other answer.
            if wire.count > limit, let m = try? Wire.decode(wire) { return Wire.encodeForUDP(m, limit: limit) }
            return wire
        }
        count { $0.cacheMisses += 1 }
        do {
            var m = try await resolve(query, q)
            m.id = query.id
            m.isResponse = true
            m.questions = query.questions
            m.recursionDesired = query.recursionDesired
            m.recursionAvailable = true
            m.edns = edns(errors: m.edns?.extendedErrors ?? [])
            if let wire = cache.store(key, m, now: now), wire.count <= limit { return wire }
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
            return SpecialNames.ipv4onlyAnswer(query: query, prefix: settings.prefix, ttl: min(3600, settings.maxTTL))
        }
        if let records = settings.localNames.records(q) {
            count { $0.local += 1 }
            var m = Message.response(to: query)
            m.answers = records
            return m
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
        guard q.type == RRType.aaaa else { return passedThrough(synthesis.passedOn(r)) }
        switch synthesis.decide(query: query, aaaaResponse: r) {
        case .pass(let m):
            return passedThrough(m)
        case .askForA:
            let a = try await upstream.resolve(Question(name: q.name, type: RRType.a, klass: q.klass), dnssecOK: dnssecOK,
                                               checkingDisabled: query.checkingDisabled)
            let m = synthesis.answer(query: query, aaaaResponse: r, aResponse: a)
            // Every AAAA record here is one we made.
            guard m.answers.contains(where: { $0.type == RRType.aaaa }) else { return passedThrough(m) }
            count { $0.synthesized += 1 }
            return m
        }
    }

    private func passedThrough(_ m: Message) -> Message {
        count {
            $0.passedThrough += 1
            if m.failedValidation { $0.validationFailures += 1 }
        }
        return m
    }

    // MARK: - Serving

    /// Answers a UDP query the cache could not answer in a task of its own,
    /// on one of the upstream threads (so that its upstream exchanges resume
    /// where they complete), and hands the answer to `reply`. Past `maxInFlight`, the
    /// query is dropped and counted; its client retries.
    func resolveLater(_ bytes: [UInt8], from client: IPAddress, reply: @escaping @Sendable ([UInt8]) -> Void) {
        guard inFlight.wrappingAdd(1, ordering: .relaxed).oldValue < Self.maxInFlight else {
            inFlight.wrappingSubtract(1, ordering: .relaxed)
            count { $0.overload += 1 }
            return
        }
        // Unstructured, but bounded: by maxInFlight in number, and by the
        // upstream timeout and attempts in time.
        Task(executorPreference: upstream.loops[Int.random(in: 0..<upstream.loops.count)]) {
            defer { self.inFlight.wrappingSubtract(1, ordering: .relaxed) }
            guard let out = await self.answer(bytes, from: client, overUDP: true) else { return }
            reply(out)
        }
    }

    /// Binds UDP and TCP on every listen address, calls `ready`, and serves until cancelled.
    ///
    /// UDP is served by `UDPFront` threads, `threads` per address; TCP,
    /// the upstream exchanges and the tasks of misses by the event loops.
    public func run(ready: @Sendable () -> Void = {}) async throws {
        var udp: [UDPFront] = []
        var tcp: [NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>] = []
        let idle = TimeAmount.nanoseconds(Int64(settings.tcpIdleTimeout.components.seconds) * 1_000_000_000)
        do {
            for endpoint in settings.listen {
                let address = try SocketAddress(ipAddress: endpoint.address.description, port: Int(endpoint.port))
                // TCP first and without SO_REUSEPORT: when another server holds
                // the address, this bind fails instead of sharing its UDP port.
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
                for _ in 0..<settings.threads { udp.append(try UDPFront(server: self, endpoint: endpoint)) }
                if settings.threads > 1, settings.udpSteering == .cpu {
                    try UDPFront.steerByCPU(udp[(udp.count - settings.threads)...])
                }
            }
        } catch {
            for ch in tcp { try? await ch.channel.close() }
            throw error
        }
        fronts.withLock { $0 = udp }
        for u in udp { u.start() }
        ready()
        // Cancelled (a stop, or a restart by a supervisor): the UDP threads
        // end and close their sockets; TCP's close as their tasks end.
        defer { for u in udp { u.stop() } }
        try await withThrowingDiscardingTaskGroup { group in
            for channel in tcp { group.addTask { try await self.serveTCP(channel) } }
        }
    }

    func serveTCP(_ server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>) async throws {
        try await server.executeThenClose { connections in
            try await withThrowingDiscardingTaskGroup { group in
                // Every connection gets a task, also one refused at once: the
                // refusal must go through `executeThenClose` too (see serveConnection).
                for try await connection in connections {
                    group.addTask { await self.serveConnection(connection) }
                }
            }
        }
    }

    /// One TCP connection: queries may come pipelined; each is answered in turn.
    ///
    /// Every accepted channel is closed through `executeThenClose`, whatever
    /// happens to it: a `NIOAsyncChannel` dropped without finishing its
    /// writer traps and takes the whole process down, so a flood of
    /// connections, or of connections reset before we ask who they are from,
    /// would be a remote crash.
    func serveConnection(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        try? await connection.executeThenClose { inbound, outbound in
            // Past the limit a new connection is closed at once (RFC 7766 §6.2.2).
            guard connections.wrappingAdd(1, ordering: .relaxed).oldValue < Self.maxConnections else {
                connections.wrappingSubtract(1, ordering: .relaxed)
                count { $0.overload += 1 }
                return
            }
            defer { connections.wrappingSubtract(1, ordering: .relaxed) }
            // Reset before we got here: nobody to answer.
            guard let client = connection.channel.remoteAddress.flatMap(IPAddress.init) else { return }
            var frames = TCPFrames()
            for try await chunk in inbound {
                frames.append(chunk)
                while let frame = frames.next() {
                    countQuery()
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
