/// How the kernel spreads UDP queries over the server's sockets of one
/// address (one per thread).
public enum UDPSteering: String, CaseIterable, Sendable {
    /// To the socket numbered (receiving CPU mod threads): the query is
    /// answered by the thread that the CPU which took it in serves, without
    /// waking a thread on another core. Needs the NIC's receive queues (RSS or
    /// RPS) spread over the CPUs for the threads to share the load.
    case cpu
    /// By a hash of the client's address and port (plain SO_REUSEPORT):
    /// for a NIC with a single receive queue.
    case hash
}
