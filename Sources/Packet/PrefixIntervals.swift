/// Interval arithmetic for sets: merge prefixes, turn ranges back into prefixes.
public enum IntervalMath {
    /// Sorted, overlaps and adjacent ranges merged, as minimal prefixes.
    public static func normalize(_ prefixes: [IPPrefix]) -> [IPPrefix] {
        let v4 = merge(prefixes.compactMap { if case .v4(let p) = $0 { (p.range.lowerBound, p.range.upperBound) } else { nil } })
        let v6 = merge(prefixes.compactMap { if case .v6(let p) = $0 { (p.range.lowerBound, p.range.upperBound) } else { nil } })
        return v4.flatMap { cover(from: $0.0, to: $0.1, bits: 32) } + v6.flatMap { cover(from: $0.0, to: $0.1, bits: 128) }
    }

    public static func merge(_ ranges: [(UInt128, UInt128)]) -> [(UInt128, UInt128)] {
        var out: [(UInt128, UInt128)] = []
        for r in ranges.sorted(by: { $0.0 < $1.0 }) {
            if let last = out.last, last.1 == .max || r.0 <= last.1 + 1 {
                out[out.count - 1].1 = max(last.1, r.1)
            } else {
                out.append(r)
            }
        }
        return out
    }

    /// The fewest prefixes covering exactly [first, last] in a `bits`-wide space.
    public static func cover(from first: UInt128, to last: UInt128, bits: Int) -> [IPPrefix] {
        var out: [IPPrefix] = []
        var start = first
        while true {
            // The largest block aligned at `start` that stays within `last`.
            var size = start == 0 ? bits : min(start.trailingZeroBitCount, bits)
            while size > 0, blockLast(start, size) > last { size -= 1 }
            out.append(make(start, length: bits - size, bits: bits))
            let end = blockLast(start, size)
            if end >= last { return out }
            start = end + 1
        }
    }

    public static func blockLast(_ start: UInt128, _ size: Int) -> UInt128 {
        size >= 128 ? .max : start + ((UInt128(1) << size) - 1)
    }

    public static func make(_ value: UInt128, length: Int, bits: Int) -> IPPrefix {
        if bits == 32 { return .v4(IPv4Prefix(address: IPv4Address(rawValue: UInt32(value)), length: length)) }
        return .v6(IPv6Prefix(address: IPv6Address(high: UInt64(value >> 64), low: UInt64(truncatingIfNeeded: value)), length: length))
    }
}
