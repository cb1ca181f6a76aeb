/// An IPv6 address as two host-order 64-bit halves: comparisons, masks and the
/// RFC 6052 bit shuffling become integer operations instead of byte loops.
public struct IPv6Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// An IPv4 address in the low 32 bits: its words sum like the IPv4 address
    /// in a pseudo-header, for swapping one family's addresses for the other's.
    @inlinable
    public init(v4: IPv4Address) {
        high = 0
        low = UInt64(v4.rawValue)
    }

    /// From 16 bytes in network order, such as an `in6_addr`.
    @inlinable
    public init(networkBytes p: UnsafeRawBufferPointer) {
        precondition(p.count == 16, "an IPv6 address has 16 bytes")
        high = UInt64(bigEndian: p.loadUnaligned(as: UInt64.self))
        low = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
    }

    public init(bytes: some Collection<UInt8>) {
        precondition(bytes.count == 16, "an IPv6 address has 16 bytes")
        var h: UInt64 = 0, l: UInt64 = 0
        for (i, b) in bytes.enumerated() {
            if i < 8 { h = h << 8 | UInt64(b) } else { l = l << 8 | UInt64(b) }
        }
        high = h
        low = l
    }

    public var bytes: [UInt8] {
        (0..<16).map { i in
            let word = i < 8 ? high : low
            return UInt8(truncatingIfNeeded: word >> (56 - 8 * UInt64(i % 8)))
        }
    }

    /// The eight 16-bit groups of the text form.
    public var groups: [UInt16] {
        (0..<8).map { i in
            let word = i < 4 ? high : low
            return UInt16(truncatingIfNeeded: word >> (48 - 16 * UInt64(i % 4)))
        }
    }

    public init(groups: [UInt16]) {
        precondition(groups.count == 8, "an IPv6 address has 8 groups")
        high = groups[0..<4].reduce(0) { $0 << 16 | UInt64($1) }
        low = groups[4..<8].reduce(0) { $0 << 16 | UInt64($1) }
    }

    /// Parses RFC 4291 §2.2 text: hex groups, at most one "::", and an optional
    /// dotted-quad tail. Zone indices ("%eth0") are refused: a configured address
    /// must mean the same thing on every interface. Works on UTF-8 bytes.
    public init?(_ text: some StringProtocol) {
        let u = Array(text.utf8)
        let colon = UInt8(ascii: ":"), dot = UInt8(ascii: ".")
        guard !u.isEmpty, u.count <= 45 else { return nil }
        var groups: [UInt16] = []
        groups.reserveCapacity(8)
        var gap: Int?
        var i = 0
        if u[0] == colon {
            guard u.count >= 2, u[1] == colon else { return nil }
            gap = 0
            i = 2
        }
        while i < u.count {
            var j = i, value: UInt32 = 0
            while j < u.count, j - i < 5, let h = Self.hexValue(u[j]) {
                value = value << 4 | h
                j += 1
            }
            if j < u.count, u[j] == dot {
                // The dotted-quad tail fills the last two groups.
                guard groups.count <= 6, let v4 = IPv4Address(String(decoding: u[i...], as: UTF8.self)) else { return nil }
                groups.append(UInt16(v4.rawValue >> 16))
                groups.append(UInt16(truncatingIfNeeded: v4.rawValue))
                i = u.count
                break
            }
            guard j > i, j - i <= 4, groups.count < 8 else { return nil }
            groups.append(UInt16(value))
            if j == u.count { i = j; break }
            guard u[j] == colon else { return nil }
            if j + 1 < u.count, u[j + 1] == colon {
                guard gap == nil else { return nil }
                gap = groups.count
                i = j + 2
            } else {
                i = j + 1
                guard i < u.count else { return nil }
            }
        }
        if let gap {
            guard groups.count <= 7 else { return nil }
            groups.insert(contentsOf: [UInt16](repeating: 0, count: 8 - groups.count), at: gap)
        } else {
            guard groups.count == 8 else { return nil }
        }
        self.init(groups: groups)
    }

    private static func hexValue(_ b: UInt8) -> UInt32? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(b - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(b - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(b - UInt8(ascii: "A") + 10)
        default: nil
        }
    }

    /// RFC 5952 canonical text: lower case, no leading zeros, the longest run of two
    /// or more zero groups (the first on a tie) as "::". Mixed notation only where
    /// RFC 5952 §5 asks for it: IPv4-mapped addresses and the RFC 6052 well-known
    /// prefix, whose last 32 bits are known to be an IPv4 address.
    public var description: String {
        formatted(mixed: IPv6Prefix.ipv4Mapped.contains(self) || IPv6Prefix.wellKnownNAT64.contains(self))
    }

    /// Prefixes are written without mixed notation ("64:ff9b::/96", not
    /// "64:ff9b::0.0.0.0/96"), so the choice is the caller's.
    func formatted(mixed: Bool) -> String {
        let g = groups
        let hexCount = mixed ? 6 : 8
        var bestStart = -1, bestLen = 0, runStart = -1
        for i in 0...hexCount {
            if i < hexCount, g[i] == 0 {
                if runStart < 0 { runStart = i }
            } else if runStart >= 0 {
                if i - runStart > bestLen { bestStart = runStart; bestLen = i - runStart }
                runStart = -1
            }
        }
        if bestLen < 2 { bestStart = -1 }
        var out = ""
        var i = 0
        while i < hexCount {
            if i == bestStart {
                out += "::"
                i += bestLen
                continue
            }
            if !out.isEmpty, !out.hasSuffix(":") { out += ":" }
            out += String(g[i], radix: 16)
            i += 1
        }
        if mixed {
            if !out.hasSuffix(":") { out += ":" }
            out += IPv4Address(rawValue: UInt32(truncatingIfNeeded: low)).description
        }
        return out
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }
}
