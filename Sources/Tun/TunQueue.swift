import Common
import CNetlink
import Glibc

/// One queue of a TUN device: a file descriptor that reads and writes whole IP
/// packets (no packet-information header). A multi-queue device has one per
/// reader thread, so the kernel spreads flows over the cores.
public struct TunQueue: Sendable {
    public let fd: Int32
    public let device: String

    /// A queue on a descriptor opened elsewhere (or any descriptor that
    /// keeps packet boundaries, such as a SOCK_SEQPACKET socket in tests).
    public init(fd: Int32, device: String) {
        self.fd = fd
        self.device = device
    }

    public struct OpenError: Error, CustomStringConvertible {
        public let device: String
        public let code: Int32
        public var description: String {
            "cannot attach to TUN device \(device): \(String(cString: strerror(code)))"
                + (code == EPERM ? " (needs CAP_NET_ADMIN)" : code == EINVAL ? " (it exists with other flags: a single-queue device, or not a TUN device)"
                    : code == ENODEV ? " (it does not exist: sixgatectl apply makes it)" : "")
        }
    }

    /// Opens a queue. With `offload`, every packet carries a virtio-net header
    /// and the kernel may hand over TCP and UDP super-packets and unfinished
    /// checksums. UDP ones need Linux 6.2; older kernels get TCP only.
    /// With `existing`, only a device that is already there is attached to:
    /// the datapaths of the gateway use the devices sixgatectl made (persistent,
    /// with their addresses and routes) and never make a bare one of their own.
    /// A queue the previous program handed over (`Handover`) is taken first.
    public static func open(_ device: String, multiQueue: Bool = true, offload: Bool = false, existing: Bool = false) throws(OpenError) -> TunQueue {
        if existing, if_nametoindex(device) == 0 { throw OpenError(device: device, code: ENODEV) }
        let flags = Int16(IFF_TUN | IFF_NO_PI | (multiQueue ? IFF_MULTI_QUEUE : 0) | (offload ? IFF_VNET_HDR : 0))
        let tcp = UInt(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN)
        var request = ifreq()
        withUnsafeMutableBytes(of: &request.ifr_ifrn.ifrn_name) { buffer in
            buffer.initializeMemory(as: UInt8.self, repeating: 0)
            buffer.copyBytes(from: device.utf8.prefix(15))
        }
        if existing, let inherited = adopt(device, flags: flags) { return inherited }
        let fd = Glibc.open("/dev/net/tun", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw OpenError(device: device, code: errno) }
        request.ifr_ifru.ifru_flags = flags
        guard sixgate_ioctl_ptr(fd, sixgate_tunsetiff(), &request) == 0,
              !offload || sixgate_ioctl_int(fd, sixgate_tunsetoffload(), tcp | Self.uso4 | Self.uso6) == 0
                || (errno == EINVAL && sixgate_ioctl_int(fd, sixgate_tunsetoffload(), tcp) == 0) else {
            let e = errno
            Glibc.close(fd)
            throw OpenError(device: device, code: e)
        }
        return TunQueue(fd: fd, device: device)
    }

    static func handoverKey(_ device: String) -> String { "tun:\(device)" }

    /// The handed-over queue of `device`, when it is still attached to it with
    /// the same flags (and so the same offload header); else nil and closed.
    static func adopt(_ device: String, flags: Int16) -> TunQueue? {
        let fd = Handover.take(handoverKey(device)) { fd in
            var request = ifreq()
            let name = sixgate_ioctl_ptr(fd, sixgate_tungetiff(), &request) == 0
                ? withUnsafeBytes(of: request.ifr_ifrn.ifrn_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) } : nil
            // TUNGETIFF adds IFF_TUN's internal bits: compare those we ask for.
            let mask = Int16(IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE | IFF_VNET_HDR)
            return name == device && request.ifr_ifru.ifru_flags & mask == flags
        }
        return fd.map { TunQueue(fd: $0, device: device) }
    }

    /// Closes the queue, or keeps it open for the program a reload executes.
    public func release() { Handover.release(Self.handoverKey(device), fd) }

    /// TUN_F_USO4 and TUN_F_USO6 (Linux 6.2), newer than the system headers.
    static let uso4: UInt = 0x20, uso6: UInt = 0x40

    /// Reads one packet into `buffer`: its length, or a negative errno.
    @inlinable
    public func read(into buffer: UnsafeMutableRawPointer, capacity: Int) -> Int {
        let n = Glibc.read(fd, buffer, capacity)
        return n >= 0 ? n : -Int(errno)
    }

    /// What a result of `read` means for the queue: nil when it can go on
    /// (a packet, an empty queue, an interrupted call); otherwise why it
    /// cannot, such as its device having been deleted.
    public func failure(ofRead n: Int) -> String? {
        guard n < 0, n != -Int(EAGAIN), n != -Int(EINTR) else { return nil }
        return "reading from TUN device \(device) failed: \(String(cString: strerror(Int32(-n))))"
    }

    @inlinable
    @discardableResult
    public func write(_ buffer: UnsafeMutableRawPointer, length: Int) -> Bool {
        Glibc.write(fd, buffer, length) == length
    }

    /// Reads return -EAGAIN instead of waiting, so that a loop can drain
    /// what is queued after one poll.
    public func setNonBlocking() {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    public func close() { _ = Glibc.close(fd) }
}
