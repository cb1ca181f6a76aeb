/// The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
///
/// The accumulator keeps a 64-bit sum so that long buffers need no carry folding
/// until the end; `value` folds and complements it.
public struct InternetChecksum: Sendable {
    @usableFromInline var sum: UInt64 = 0

    public init() {}

    /// Adds bytes as big-endian 16-bit words. An odd final byte is padded with zero,
    /// so feed buffers in even-length pieces except for the last.
    @inlinable
    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        var i = 0
        let n = bytes.count
        while i + 1 < n {
            sum &+= UInt64(bytes[i]) << 8 | UInt64(bytes[i + 1])
            i += 2
        }
        if i < n { sum &+= UInt64(bytes[i]) << 8 }
    }

    @inlinable
    public mutating func add(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { add($0) }
    }

    @inlinable
    public mutating func add(_ word: UInt16) { sum &+= UInt64(word) }

    @inlinable
    public mutating func add(_ a: IPv4Address) {
        sum &+= UInt64(a.rawValue >> 16) &+ UInt64(a.rawValue & 0xFFFF)
    }

    @inlinable
    public mutating func add(_ a: IPv6Address) {
        sum &+= Self.wordSum(a.high) &+ Self.wordSum(a.low)
    }

    /// RFC 768/793 pseudo-header for IPv4.
    @inlinable
    public mutating func addPseudoHeader(source: IPv4Address, destination: IPv4Address, protocol proto: UInt8, length: Int) {
        add(source)
        add(destination)
        sum &+= UInt64(proto) &+ UInt64(length)
    }

    /// RFC 8200 §8.1 pseudo-header for IPv6.
    @inlinable
    public mutating func addPseudoHeader(source: IPv6Address, destination: IPv6Address, nextHeader: UInt8, length: Int) {
        add(source)
        add(destination)
        sum &+= UInt64(nextHeader) &+ UInt64(length & 0xFFFF) &+ UInt64(length >> 16)
    }

    /// The checksum to write into the header: the complement of the folded sum.
    @inlinable
    public var value: UInt16 { ~Self.fold(sum) }

    @inlinable
    static func wordSum(_ w: UInt64) -> UInt64 {
        (w >> 48) &+ (w >> 32 & 0xFFFF) &+ (w >> 16 & 0xFFFF) &+ (w & 0xFFFF)
    }

    @inlinable
    static func fold(_ s: UInt64) -> UInt16 {
        var s = s
        while s > 0xFFFF { s = (s & 0xFFFF) &+ (s >> 16) }
        return UInt16(s)
    }

    /// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for a header checksum `checksum`
    /// after 16-bit words summing to `old` were replaced by words summing to `new`.
    /// Unlike eqn. 2 it never yields 0xFFFF from a valid header; it can yield
    /// 0x0000, which UDP callers must write as 0xFFFF.
    @inlinable
    public static func update(_ checksum: UInt16, removing old: UInt16, adding new: UInt16) -> UInt16 {
        ~fold(UInt64(~checksum) &+ UInt64(~old) &+ UInt64(new))
    }

    @inlinable
    public static func update(_ checksum: UInt16, removing old: IPv4Address, adding new: IPv4Address) -> UInt16 {
        update(checksum, removingSum: UInt64(old.rawValue >> 16) &+ UInt64(old.rawValue & 0xFFFF),
               addingSum: UInt64(new.rawValue >> 16) &+ UInt64(new.rawValue & 0xFFFF))
    }

    @inlinable
    public static func update(_ checksum: UInt16, removing old: IPv6Address, adding new: IPv6Address) -> UInt16 {
        update(checksum, removingSum: wordSum(old.high) &+ wordSum(old.low),
               addingSum: wordSum(new.high) &+ wordSum(new.low))
    }

    /// The general form: remove one word sum and add another. Translators use it
    /// to swap a whole pseudo-header (IPv6 addresses out, IPv4 addresses in).
    @inlinable
    public static func update(_ checksum: UInt16, removingSum old: UInt64, addingSum new: UInt64) -> UInt16 {
        ~fold(UInt64(~checksum) &+ UInt64(~fold(old)) &+ UInt64(fold(new)))
    }
}
