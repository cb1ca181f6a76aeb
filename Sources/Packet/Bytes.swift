/// Big-endian field access on raw packet memory. Packets are rewritten in
/// place through these, so the packet path never copies into Swift arrays.
extension UnsafeMutableRawPointer {
    @inlinable @inline(__always)
    public func u8(_ at: Int) -> UInt8 { load(fromByteOffset: at, as: UInt8.self) }

    @inlinable @inline(__always)
    public func u16(_ at: Int) -> UInt16 { UInt16(u8(at)) << 8 | UInt16(u8(at + 1)) }

    @inlinable @inline(__always)
    public func u32(_ at: Int) -> UInt32 { UInt32(u16(at)) << 16 | UInt32(u16(at + 2)) }

    @inlinable @inline(__always)
    public func setU8(_ at: Int, _ v: UInt8) { storeBytes(of: v, toByteOffset: at, as: UInt8.self) }

    @inlinable @inline(__always)
    public func setU16(_ at: Int, _ v: UInt16) {
        setU8(at, UInt8(v >> 8))
        setU8(at + 1, UInt8(truncatingIfNeeded: v))
    }

    @inlinable @inline(__always)
    public func setU32(_ at: Int, _ v: UInt32) {
        setU16(at, UInt16(v >> 16))
        setU16(at + 2, UInt16(truncatingIfNeeded: v))
    }

    @inlinable
    public func ipv4(_ at: Int) -> IPv4Address { IPv4Address(rawValue: u32(at)) }

    @inlinable
    public func setIPv4(_ at: Int, _ a: IPv4Address) { setU32(at, a.rawValue) }

    @inlinable
    public func ipv6(_ at: Int) -> IPv6Address {
        IPv6Address(high: UInt64(u32(at)) << 32 | UInt64(u32(at + 4)), low: UInt64(u32(at + 8)) << 32 | UInt64(u32(at + 12)))
    }

    @inlinable
    public func setIPv6(_ at: Int, _ a: IPv6Address) {
        setU32(at, UInt32(a.high >> 32))
        setU32(at + 4, UInt32(truncatingIfNeeded: a.high))
        setU32(at + 8, UInt32(a.low >> 32))
        setU32(at + 12, UInt32(truncatingIfNeeded: a.low))
    }
}

extension InternetChecksum {
    /// Sums `count` bytes at `base + offset`.
    @inlinable
    public mutating func add(_ base: UnsafeMutableRawPointer, offset: Int, count: Int) {
        add(UnsafeRawBufferPointer(start: base + offset, count: count))
    }
}
