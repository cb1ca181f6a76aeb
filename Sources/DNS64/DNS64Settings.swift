import Packet

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
    /// Event-loop threads, each with its own UDP socket per listen address.
    public var threads: Int
    /// Which of those sockets a datagram goes to.
    public var udpSteering: UDPSteering
    /// The longest TTL of a synthesised record (and of ipv4only.arpa), seconds.
    public var maxTTL: UInt32
    /// The upstreams' AD bit is trusted (see `Synthesis.trustUpstreamAD`).
    public var trustUpstreamAD: Bool
    /// Names the gateway publishes, answered here.
    public var localNames = LocalNames()

    public init(prefix: NAT64Prefix, exclude: [IPv6Prefix], allow: [IPPrefix], listen: [IPEndpoint], upstreams: [IPEndpoint],
                timeout: Duration, attempts: Int, tcpIdleTimeout: Duration, ednsUDPSize: Int, answerPTR: Bool, cacheBytes: Int, threads: Int = 1,
                udpSteering: UDPSteering = .cpu, maxTTL: UInt32 = DNS64Defaults.maxTTL, trustUpstreamAD: Bool = false) {
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
        self.threads = max(1, threads)
        self.udpSteering = udpSteering
        self.maxTTL = maxTTL
        self.trustUpstreamAD = trustUpstreamAD
    }
}
