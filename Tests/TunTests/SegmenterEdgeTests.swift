import TestPackets
import Packet
import Testing
import Tun

extension SegmenterTests {
    static let src4 = "192.0.2.128", dst4 = "203.0.113.2", src6 = "2001:db8:64::c633:6402", dst6 = "2001:db8:2::2"

    /// Runs the Segmenter on `bytes`; what it returned, and each packet it made.
    static func cut(_ bytes: [UInt8], _ o: Offload, maxLength: Int = 65535) -> (Bool, [[UInt8]]) {
        var out: [[UInt8]] = []
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: 65535, alignment: 8)
        defer { scratch.deallocate() }
        let ok = withPacket(bytes) { p, n in
            Segmenter.packets(of: p, length: n, offload: o, maxLength: maxLength, scratch: scratch) { out.append(Array(UnsafeRawBufferPointer(start: $0, count: $1))) }
        }
        return (ok, out)
    }

    /// An IPv4 UDP super-packet (USO) becomes datagrams of `gsoSize`
    /// payload bytes and a shorter last one, each with its own total and
    /// UDP length, the next IPv4 ID, and header and UDP checksums that
    /// verify on their own.
    @Test func cutsUDPSuperPacketsOverIPv4() {
        let payload = (0..<2500).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let bytes = Build.ipv4(src: Self.src4, dst: Self.dst4, proto: 17, id: 0xFFFE, flags: 0,
                               payload: Build.udp(sport: 4000, dport: 9000, data: payload, src: Self.src4, dst: Self.dst4))
        var o = Offload()
        o.flags = Offload.needsChecksum
        o.gsoType = Offload.udpL4
        o.gsoSize = 1000
        o.checksumStart = 20
        o.checksumOffset = 6
        let (ok, out) = Self.cut(bytes, o)
        #expect(ok)
        #expect(out.map(\.count) == [1028, 1028, 528])
        #expect(out.map { Int($0[2]) << 8 | Int($0[3]) } == out.map(\.count), "each total length is its own")
        #expect(out.map { Int($0[4]) << 8 | Int($0[5]) } == [0xFFFE, 0xFFFF, 0x0000], "the IPv4 ID counts up, wrapping")
        #expect(out.map { Int($0[24]) << 8 | Int($0[25]) } == [1008, 1008, 508], "each UDP length is its own")
        #expect(out.allSatisfy { Verify.ipv4Header($0) && Verify.l4of4($0) }, "each header and UDP checksum verifies")
        #expect(out.flatMap { $0[28...] } == payload)
    }

    /// `maxLength` bounds the packets below what `gsoSize` allows (6bed4
    /// carries at most 1280 bytes), and of the TCP flags CWR goes only to
    /// the first segment, FIN and PSH only to the last.
    @Test func boundsTCPSegmentsByMaxLengthOverIPv4() {
        let payload = (0..<2000).map { UInt8(truncatingIfNeeded: $0 &* 11) }
        var tcp = Build.tcp(sport: 40000, dport: 5201, src: Self.src4, dst: Self.dst4)
        tcp[13] = 0x99  // CWR, FIN, PSH, ACK
        let bytes = Build.ipv4(src: Self.src4, dst: Self.dst4, proto: 6, id: 7, payload: tcp + payload)
        var o = Offload()
        o.flags = Offload.needsChecksum
        o.gsoType = Offload.tcp4
        o.gsoSize = 1460
        o.checksumStart = 20
        o.checksumOffset = 16
        let (ok, out) = Self.cut(bytes, o, maxLength: 1000)
        #expect(ok)
        #expect(out.map(\.count) == [1000, 1000, 120], "segments of 1000 - 40 bytes, not 1460")
        let seqs = out.map { UInt32($0[24]) << 24 | UInt32($0[25]) << 16 | UInt32($0[26]) << 8 | UInt32($0[27]) }
        #expect(seqs == [1, 961, 1921])
        #expect(out.map { $0[33] } == [0x90, 0x10, 0x19], "CWR on the first, FIN and PSH on the last")
        #expect(out.map { Int($0[4]) << 8 | Int($0[5]) } == [7, 8, 9])
        #expect(out.allSatisfy { Verify.ipv4Header($0) && Verify.l4of4($0) })
        #expect(out.flatMap { $0[40...] } == payload)
    }

    /// A packet that is no super-packet goes through whole, once, with the
    /// checksum the kernel left pending (the pseudo-header sum in the
    /// field) completed.
    @Test func completesThePendingChecksumOfAWholePacket() {
        let whole = Build.ipv6(src: Self.src6, dst: Self.dst6, next: 17,
                               payload: Build.udp(sport: 5000, dport: 9000, data: Array("a datagram".utf8), src: Self.src6, dst: Self.dst6))
        var pending = whole
        var pseudo = InternetChecksum()
        pseudo.addPseudoHeader(source: IPv6Address(Self.src6)!, destination: IPv6Address(Self.dst6)!, nextHeader: 17, length: whole.count - 40)
        pending[46] = UInt8(~pseudo.value >> 8)
        pending[47] = UInt8(~pseudo.value & 0xFF)
        var o = Offload()
        o.flags = Offload.needsChecksum
        o.checksumStart = 40
        o.checksumOffset = 6
        let (ok, out) = Self.cut(pending, o)
        #expect(ok && out == [whole])
        // Without a pending checksum it is passed on as it is.
        #expect(Self.cut(pending, Offload()) == (true, [pending]))
    }

    /// What cannot be cut is refused, and nothing is handed on: a type
    /// that does not match the protocol, a segment size of 0, a packet too
    /// short to hold its headers.
    @Test func refusesWhatItCannotCut() {
        let udp = Build.ipv4(src: Self.src4, dst: Self.dst4, proto: 17, payload: Build.udp(sport: 1, dport: 2, data: Array(repeating: 1, count: 100), src: Self.src4, dst: Self.dst4))
        var tcpType = Offload()
        tcpType.gsoType = Offload.tcp4
        tcpType.gsoSize = 50
        #expect(Self.cut(udp, tcpType) == (false, []), "UDP under a TCP type")
        var noSize = Offload()
        noSize.gsoType = Offload.udpL4
        #expect(Self.cut(udp, noSize) == (false, []), "no segment size")
        var uso = Offload()
        uso.gsoType = Offload.udpL4
        uso.gsoSize = 50
        #expect(Self.cut(Array(udp.prefix(24)), uso) == (false, []), "shorter than its headers")
        #expect(Self.cut(udp, uso).1.count == 2, "the same packet, well described, is cut")
    }
}
