import Packet

/// What a listener reads of a connection to choose its backend.
public enum MuxKind: String, Sendable, CaseIterable {
    /// The TLS ClientHello's server_name; TLS is never terminated.
    case tlsSNI = "tls-sni"
    /// The Host of an HTTP/1 request.
    case httpHost = "http-host"
    /// Nothing: every connection goes to the default backend.
    case tcp
}

/// Where a route sends a connection, and the name it is counted under.
public struct MuxBackend: Sendable, Equatable {
    /// The route's name as configured ("www.example.com", "*.example.com",
    /// "default").
    public var route: String
    public var endpoint: IPEndpoint

    public init(route: String, endpoint: IPEndpoint) {
        self.route = route
        self.endpoint = endpoint
    }
}

/// One public IPv4 address and port shared by IPv6-only backends.
public struct MuxListener: Sendable {
    /// The public address and port: what status and the metrics name.
    public var listen: IPEndpoint
    /// Where the socket listens: `listen`, or the IPv6 address the
    /// translator maps it to, whose connections come from prefix + client.
    public var bind: IPEndpoint
    public var kind: MuxKind
    /// By name; the fallback is the default backend (none: reject).
    public var routes: NameRoutes<MuxBackend>

    public init(listen: IPEndpoint, bind: IPEndpoint? = nil, kind: MuxKind, routes: NameRoutes<MuxBackend>) {
        self.listen = listen
        self.bind = bind ?? listen
        self.kind = kind
        self.routes = routes
    }
}

public struct MuxSettings: Sendable {
    public var listeners: [MuxListener]
    /// Backends see the client as `prefix` + its IPv4 address, as through
    /// the translator.
    public var prefix: NAT64Prefix
    /// Connections open at once, over all listeners; past it new ones are
    /// reset and counted.
    public var maxConnections: Int
    /// A connection that has not named its backend by then is closed.
    public var peekTimeout: Duration
    /// The most bytes read before the name must be known.
    public var maxPeek: Int
    /// A connection with no byte either way for this long is closed.
    public var idleTimeout: Duration
    /// Threads, sharing the listening sockets, each relaying what it accepted.
    public var threads: Int

    public init(listeners: [MuxListener], prefix: NAT64Prefix, maxConnections: Int = 10_000, peekTimeout: Duration = .seconds(5),
                maxPeek: Int = 16 * 1024, idleTimeout: Duration = .seconds(300), threads: Int = 1) {
        self.listeners = listeners
        self.prefix = prefix
        self.maxConnections = maxConnections
        self.peekTimeout = peekTimeout
        self.maxPeek = maxPeek
        self.idleTimeout = idleTimeout
        self.threads = threads
    }
}

/// Per listener and route: what `status` and the metrics show.
public struct MuxRouteCounters: Sendable, Equatable {
    public var connections = 0
    /// Client to backend, and back.
    public var bytesUp = 0
    public var bytesDown = 0
    public var backendFailures = 0

    public init() {}
}

public struct MuxListenerCounters: Sendable, Equatable {
    public var routes: [String: MuxRouteCounters] = [:]
    /// A name no route takes, with no default.
    public var noMatch = 0
    /// Closed before naming a backend within `peekTimeout`.
    public var peekTimeouts = 0
    /// Not TLS or HTTP/1 as the listener expects, malformed, or larger than `maxPeek`.
    public var invalid = 0
    /// Reset because `maxConnections` were open.
    public var overLimit = 0
    /// Closed idle for `idleTimeout`.
    public var idleClosed = 0

    public init() {}
}
