/// The virtio-net header that a TUN queue opened with IFF_VNET_HDR puts in
/// front of every packet. With it the kernel hands over TCP and UDP
/// super-packets (GSO, up to 64 KiB) and packets whose checksum is still to be
/// completed, so one translation, one read and one write serve many segments.
/// Fields are in host byte order.
public struct Offload: Sendable, Equatable {
    public static let size = 10
    public static let needsChecksum: UInt8 = 1  // VIRTIO_NET_HDR_F_NEEDS_CSUM
    public static let dataValid: UInt8 = 2  // VIRTIO_NET_HDR_F_DATA_VALID: the kernel verified the checksum
    public static let tcp4: UInt8 = 1, tcp6: UInt8 = 4, udpL4: UInt8 = 5, ecn: UInt8 = 0x80  // VIRTIO_NET_HDR_GSO_*

    public var flags: UInt8 = 0
    public var gsoType: UInt8 = 0
    public var headerLength: UInt16 = 0
    public var gsoSize: UInt16 = 0
    public var checksumStart: UInt16 = 0
    public var checksumOffset: UInt16 = 0

    public init() {}

    public init(reading p: UnsafeMutableRawPointer) {
        flags = p.load(fromByteOffset: 0, as: UInt8.self)
        gsoType = p.load(fromByteOffset: 1, as: UInt8.self)
        headerLength = p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)
        gsoSize = p.loadUnaligned(fromByteOffset: 4, as: UInt16.self)
        checksumStart = p.loadUnaligned(fromByteOffset: 6, as: UInt16.self)
        checksumOffset = p.loadUnaligned(fromByteOffset: 8, as: UInt16.self)
    }

    public func write(to p: UnsafeMutableRawPointer) {
        // DATA_VALID only means something from the kernel to us.
        p.storeBytes(of: flags & Self.needsChecksum, toByteOffset: 0, as: UInt8.self)
        p.storeBytes(of: gsoType, toByteOffset: 1, as: UInt8.self)
        p.storeBytes(of: headerLength, toByteOffset: 2, as: UInt16.self)
        p.storeBytes(of: gsoSize, toByteOffset: 4, as: UInt16.self)
        p.storeBytes(of: checksumStart, toByteOffset: 6, as: UInt16.self)
        p.storeBytes(of: checksumOffset, toByteOffset: 8, as: UInt16.self)
    }

    public var isSegmented: Bool { gsoType & ~Self.ecn != 0 }
    /// UDP segmentation (USO): `gsoSize` bytes of payload per datagram, the
    /// same for both families.
    public var isUDPSegmented: Bool { gsoType & ~Self.ecn == Self.udpL4 }
    public var checksumPending: Bool { flags & Self.needsChecksum != 0 }
}
