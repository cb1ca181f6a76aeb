import Packet

/// The Neighbor Discovery messages of 6bed4 (spec §5), read and written in
/// place on raw packet memory: an IPv6 header at offset 0, ICMPv6 at 40.
public enum ND {
    public static let routerSolicitation: UInt8 = 133
    public static let routerAdvertisement: UInt8 = 134
    public static let neighborSolicitation: UInt8 = 135
    public static let neighborAdvertisement: UInt8 = 136
    public static let redirect: UInt8 = 137
    static let icmpv6: UInt8 = 58

    public static let allNodes = IPv6Address(high: 0xFF02_0000_0000_0000, low: 1)
    public static let allRouters = IPv6Address(high: 0xFF02_0000_0000_0000, low: 2)
    /// The router's link-local address, source of its RAs and NAs (spec §3.3).
    public static let routerLinkLocal = IPv6Address(high: SixBedFourAddress.linkLocal, low: 0)

    /// Whether the packet of `length` bytes is ICMPv6 ND (types 133 to 137),
    /// judged from the first Next Header as the reference does.
    public static func isND(_ p: UnsafeMutableRawPointer, length: Int) -> Bool {
        length >= 41 && p.u8(6) == icmpv6 && (routerSolicitation...redirect).contains(p.u8(40))
    }

    /// The ICMPv6 checksum of the packet (RFC 4443 §2.3): zero when the
    /// field holds the right value.
    public static func checksum(_ p: UnsafeMutableRawPointer, length: Int) -> UInt16 {
        var c = InternetChecksum()
        c.addPseudoHeader(source: p.ipv6(8), destination: p.ipv6(24), nextHeader: icmpv6, length: length - 40)
        c.add(UnsafeRawBufferPointer(start: p + 40, count: length - 40))
        return c.value
    }

    /// The IPv6 header every ND message has: ICMPv6, hop limit 255.
    static func header(_ p: UnsafeMutableRawPointer, length: Int, source: IPv6Address, destination: IPv6Address, versionWord: UInt32 = 0x6000_0000) {
        p.setU32(0, versionWord)
        p.setU16(4, UInt16(length - 40))
        p.setU8(6, icmpv6)
        p.setU8(7, 255)
        p.setIPv6(8, source)
        p.setIPv6(24, destination)
    }

    /// A source (1) or target (2) link-layer option at `at`: the endpoint's 6 bytes.
    static func linkLayerOption(_ p: UnsafeMutableRawPointer, at: Int, type: UInt8, _ e: UDPEndpoint) {
        p.setU8(at, type)
        p.setU8(at + 1, 1)
        for (i, b) in e.linkLayer.enumerated() { p.setU8(at + 2 + i, b) }
    }

    static func seal(_ p: UnsafeMutableRawPointer, length: Int) {
        p.setU16(42, 0)
        p.setU16(42, checksum(p, length: length))
    }

    /// The checks every ND message passes first (spec §5): hop limit 255,
    /// code 0, at least the 8-byte ICMPv6 header, a valid checksum.
    public static func isWellFormed(_ p: UnsafeMutableRawPointer, length: Int) -> Bool {
        length >= 48 && p.u8(7) == 255 && p.u8(41) == 0 && checksum(p, length: length) == 0
    }

    /// The RS the router answers (spec §5.1): no options, or exactly one
    /// source link-layer option of length 1 whose last two bytes are not both zero.
    public static func isAcceptableRS(_ p: UnsafeMutableRawPointer, length: Int) -> Bool {
        guard isWellFormed(p, length: length), p.u8(40) == routerSolicitation else { return false }
        switch length - 40 {
        case 8: return true
        case 16: return p.u8(48) == 1 && p.u8(49) == 1 && (p.u8(54) | p.u8(55)) != 0
        default: return false
        }
    }

    /// What a router advertisement carries besides the peer's /114.
    public struct Advertisement: Sendable, Equatable {
        /// The router's /64 (its top 64 bits).
        public var prefix: UInt64
        /// Extra routable prefixes (spec §4, `-R`): PIOs without L and A.
        public var routes: [IPv6Prefix]
        /// The NAT64 prefix, sent as a PREF64 option (RFC 8781) and as one
        /// more routable prefix, so that reference peers route it too.
        public var pref64: NAT64Prefix?
        /// Seconds; RFC 8781 carries it in units of 8 s, at most 65528.
        public var pref64Lifetime: Int
        /// Earlier NAT64 prefixes during a renumbering: a PREF64 with lifetime
        /// 0 tells peers to stop using them (RFC 8781 §4), while their routes
        /// stay so that flows already on them carry on.
        public var retiredPref64: [NAT64Prefix]

        public init(prefix: UInt64, routes: [IPv6Prefix] = [], pref64: NAT64Prefix? = nil, pref64Lifetime: Int = 1800,
                    retiredPref64: [NAT64Prefix] = []) {
            self.prefix = prefix
            self.routes = routes
            self.pref64 = pref64
            self.pref64Lifetime = pref64Lifetime
            self.retiredPref64 = retiredPref64
        }

        var routable: [IPv6Prefix] { routes + ([pref64].compactMap { $0 } + retiredPref64).map(\.prefix) }

        var pref64Options: [(NAT64Prefix, lifetime: Int)] {
            (pref64.map { [($0, pref64Lifetime)] } ?? []) + retiredPref64.map { ($0, 0) }
        }

        /// The bytes an RA takes.
        public var length: Int { 56 + 32 * (1 + routable.count) + 16 * pref64Options.count }
    }

    /// Writes at `p` the RA for the peer seen at `endpoint` (spec §5.2): from
    /// fe80::, a /114 PIO (L, A) that embeds the endpoint, one PIO per
    /// routable prefix, and the PREF64 option. Returns its length.
    public static func writeRA(_ p: UnsafeMutableRawPointer, _ ad: Advertisement, for endpoint: UDPEndpoint,
                               to destination: IPv6Address = allNodes, versionWord: UInt32 = 0x6000_0000) -> Int {
        let length = ad.length
        header(p, length: length, source: routerLinkLocal, destination: destination, versionWord: versionWord)
        p.setU8(40, routerAdvertisement)
        p.setU8(41, 0)
        p.setU16(42, 0)
        p.setU8(44, 0)  // Cur Hop Limit: unspecified
        p.setU8(45, 0x18)  // M=0, O=0, Prf=11 (low)
        p.setU16(46, 0xFFFF)
        p.setU32(48, 0xFFFF_FFFF)
        p.setU32(52, 0xFFFF_FFFF)
        var at = 56
        func pio(_ prefix: IPv6Address, length: Int, flags: UInt8) {
            p.setU8(at, 3)
            p.setU8(at + 1, 4)
            p.setU8(at + 2, UInt8(length))
            p.setU8(at + 3, flags)
            p.setU32(at + 4, 0xFFFF_FFFF)
            p.setU32(at + 8, 0xFFFF_FFFF)
            p.setU32(at + 12, 0)
            p.setIPv6(at + 16, prefix)
            at += 32
        }
        pio(SixBedFourAddress.encode(prefix: ad.prefix, endpoint: endpoint, lanip: 0), length: 114, flags: 0xC0)
        for r in ad.routable { pio(r.address, length: r.length, flags: 0) }
        for (n, lifetime) in ad.pref64Options {
            p.setU8(at, 38)
            p.setU8(at + 1, 2)
            let plc: UInt16 = [96: 0, 64: 1, 56: 2, 48: 3, 40: 4, 32: 5][n.length] ?? 0
            p.setU16(at + 2, UInt16(min(8191, (lifetime + 7) / 8)) << 3 | plc)
            p.setU32(at + 4, UInt32(n.prefix.address.high >> 32))
            p.setU32(at + 8, UInt32(truncatingIfNeeded: n.prefix.address.high))
            p.setU32(at + 12, UInt32(n.prefix.address.low >> 32))
            at += 16
        }
        seal(p, length: length)
        return length
    }

    /// Writes at `p` the router's NA to `destination` (spec §5.5): R and S
    /// set, the router's complete address as the target whatever was asked,
    /// and its link-layer value. Returns its length (72).
    public static func writeNA(_ p: UnsafeMutableRawPointer, router: UDPEndpoint, prefix: UInt64, to destination: IPv6Address) -> Int {
        writeNA(p, source: routerLinkLocal, destination: destination, flags: 0xC0,
                target: SixBedFourAddress.encode(prefix: prefix, endpoint: router, lanip: 0), linkLayer: router)
    }

    static func writeNA(_ p: UnsafeMutableRawPointer, source: IPv6Address, destination: IPv6Address, flags: UInt8,
                        target: IPv6Address, linkLayer: UDPEndpoint) -> Int {
        header(p, length: 72, source: source, destination: destination)
        p.setU32(40, UInt32(neighborAdvertisement) << 24)
        p.setU32(44, UInt32(flags) << 24)
        p.setIPv6(48, target)
        linkLayerOption(p, at: 64, type: 2, linkLayer)
        seal(p, length: 72)
        return 72
    }

    /// The reference peer's RS (spec §5.1), byte for byte: 56 bytes.
    public static func writeRS(_ p: UnsafeMutableRawPointer) -> Int {
        header(p, length: 56, source: IPv6Address(high: 0, low: 0), destination: allRouters)
        p.setU32(40, UInt32(routerSolicitation) << 24)
        p.setU32(44, 0)
        p.setU32(48, 0x0101_0000)
        p.setU32(52, 1)
        seal(p, length: 56)
        return 56
    }

    /// A peer's probe of another peer (spec §5.8): an NS for `target` from
    /// `source`, sent straight to the target's endpoint, carrying the
    /// sender's link-layer value. Returns its length (72).
    public static func writeNS(_ p: UnsafeMutableRawPointer, source: IPv6Address, target: IPv6Address, linkLayer: UDPEndpoint) -> Int {
        header(p, length: 72, source: source, destination: target)
        p.setU32(40, UInt32(neighborSolicitation) << 24)
        p.setU32(44, 0)
        p.setIPv6(48, target)
        linkLayerOption(p, at: 64, type: 1, linkLayer)
        seal(p, length: 72)
        return 72
    }

    /// A peer's answer to a probe: an NA from `source` (the target asked),
    /// solicited and overriding. Returns its length (72).
    public static func writeProbeAnswer(_ p: UnsafeMutableRawPointer, source: IPv6Address, to destination: IPv6Address, linkLayer: UDPEndpoint) -> Int {
        writeNA(p, source: source, destination: destination, flags: 0x60, target: source, linkLayer: linkLayer)
    }

    /// What a peer takes from an RA (spec §5.2, peer rules 2 to 5).
    public struct Learned: Sendable, Equatable {
        /// The /114 (L and A set, length 114; the last one wins).
        public var prefix114: IPv6Address?
        /// PIOs without L or A, lengths 16 to 128, at most 10.
        public var routes: [IPv6Prefix] = []
        public var pref64: NAT64Prefix?
        public var pref64Lifetime = 0
        /// PREF64 options with lifetime 0: prefixes to stop using (RFC 8781 §4).
        public var withdrawnPref64: [NAT64Prefix] = []
    }

    /// Reads an RA the way the peer accepts it: well formed, from fe80::,
    /// options walked until one of length zero. nil when it is not acceptable
    /// (a PIO with L and A that is not a /114 discards the whole RA). The
    /// destination is not checked: our peer takes the corrective RA that
    /// reference peers drop (spec §5.3).
    public static func readRA(_ p: UnsafeMutableRawPointer, length: Int) -> Learned? {
        guard isWellFormed(p, length: length), p.u8(40) == routerAdvertisement, length >= 56,
              p.ipv6(8) == routerLinkLocal else { return nil }
        var learned = Learned()
        var at = 56
        while at + 2 <= length {
            let type = p.u8(at), size = Int(p.u8(at + 1)) * 8
            guard size > 0, at + size <= length else { break }
            if type == 3, size == 32 {
                let plen = Int(p.u8(at + 2)), flags = p.u8(at + 3), prefix = p.ipv6(at + 16)
                if flags & 0xC0 == 0xC0 {
                    guard plen == 114 else { return nil }
                    learned.prefix114 = prefix
                } else if (16...128).contains(plen), learned.routes.count < 10 {
                    learned.routes.append(IPv6Prefix(address: prefix, length: plen))
                }
            } else if type == 38, size == 16 {
                let field = p.u16(at + 2)
                let plen = [0: 96, 1: 64, 2: 56, 3: 48, 4: 40, 5: 32][Int(field & 7)]
                let address = IPv6Address(high: UInt64(p.u32(at + 4)) << 32 | UInt64(p.u32(at + 8)), low: UInt64(p.u32(at + 12)) << 32)
                if let plen, let n = try? NAT64Prefix(IPv6Prefix(address: address, length: plen)) {
                    // Lifetime 0: a prefix withdrawn, not one to use.
                    if field >> 3 == 0 {
                        learned.withdrawnPref64.append(n)
                    } else {
                        learned.pref64 = n
                        learned.pref64Lifetime = Int(field >> 3) * 8
                    }
                }
            }
            at += size
        }
        return learned
    }
}
