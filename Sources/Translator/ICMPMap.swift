/// RFC 7915's ICMP translation tables, as pure functions so that every row is
/// testable on its own.
public enum ICMPMap {
    public struct Result: Equatable, Sendable {
        public let type: UInt8
        public let code: UInt8
        /// An ICMPv4 "protocol unreachable" becomes a parameter problem that
        /// points at the Next Header field, and the other way round.
        public let pointer: UInt32?
    }

    /// ICMPv4 -> ICMPv6 (RFC 7915 §4.2); nil means drop.
    public static func to6(type: UInt8, code: UInt8) -> Result? {
        switch (type, code) {
        case (8, 0): return Result(type: 128, code: 0, pointer: nil)
        case (0, 0): return Result(type: 129, code: 0, pointer: nil)
        case (3, 0), (3, 1), (3, 5), (3, 6), (3, 7), (3, 8), (3, 11), (3, 12):
            return Result(type: 1, code: 0, pointer: nil)
        case (3, 2): return Result(type: 4, code: 1, pointer: 6)
        case (3, 3): return Result(type: 1, code: 4, pointer: nil)
        case (3, 4): return Result(type: 2, code: 0, pointer: nil)
        case (3, 9), (3, 10), (3, 13), (3, 15): return Result(type: 1, code: 1, pointer: nil)
        case (11, 0), (11, 1): return Result(type: 3, code: code, pointer: nil)
        case (12, 0), (12, 2): return Result(type: 4, code: 0, pointer: nil)
        default: return nil
        }
    }

    /// ICMPv6 -> ICMPv4 (RFC 7915 §5.2); nil means drop.
    public static func to4(type: UInt8, code: UInt8) -> Result? {
        switch (type, code) {
        case (128, 0): return Result(type: 8, code: 0, pointer: nil)
        case (129, 0): return Result(type: 0, code: 0, pointer: nil)
        case (1, 0), (1, 2), (1, 3): return Result(type: 3, code: 1, pointer: nil)
        case (1, 1): return Result(type: 3, code: 10, pointer: nil)
        case (1, 4): return Result(type: 3, code: 3, pointer: nil)
        case (2, 0): return Result(type: 3, code: 4, pointer: nil)
        case (3, 0), (3, 1): return Result(type: 11, code: code, pointer: nil)
        case (4, 0): return Result(type: 12, code: 0, pointer: nil)
        case (4, 1): return Result(type: 3, code: 2, pointer: nil)
        default: return nil
        }
    }

    /// Parameter-problem pointer, IPv4 header offset -> IPv6 (RFC 7915 Figure 3).
    public static func pointer4to6(_ p: UInt8) -> UInt32? {
        switch p {
        case 0: 0
        case 1: 1
        case 2, 3: 4
        case 8: 7
        case 9: 6
        case 12...15: 8
        case 16...19: 24
        default: nil
        }
    }

    /// Parameter-problem pointer, IPv6 header offset -> IPv4 (RFC 7915 Figure 6).
    public static func pointer6to4(_ p: UInt32) -> UInt8? {
        switch p {
        case 0: 0
        case 1: 1
        case 4, 5: 2
        case 6: 9
        case 7: 8
        case 8...23: 12
        case 24...39: 16
        default: nil
        }
    }

    /// RFC 1191 §7's plateaus, for a Fragmentation Needed that reports MTU 0:
    /// the largest plateau below the length of the packet that did not fit.
    public static func plateau(below length: Int) -> Int {
        for p in [65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296] where p < length { return p }
        return 68
    }
}
