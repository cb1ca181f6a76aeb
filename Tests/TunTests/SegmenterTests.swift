import TestPackets
import Packet
import Testing
import Tun

@Suite struct SegmenterTests {
    /// A TCP super-packet as the kernel hands it (pseudo-header sum in the
    /// field, FIN and PSH set) is cut into MSS-sized IPv6 packets with their
    /// own sequence numbers and full checksums; FIN and PSH only on the last.
    @Test func cutsTCPSuperPacketsAsTheKernelWould() {
        let src = IPv6Address("2001:db8:6bed:4:c000:20b:9645:1")!, dst = IPv6Address("2001:db8:2::2")!
        let payload = (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        var bytes = written { p in
            p.setU32(0, 0x6000_0000)
            p.setU16(4, UInt16(20 + payload.count))
            p.setU8(6, 6)
            p.setU8(7, 64)
            p.setIPv6(8, src)
            p.setIPv6(24, dst)
            p.setU16(40, 40000)
            p.setU16(42, 5201)
            p.setU32(44, 0xFFFF_FF00)  // wraps within the packet
            p.setU32(48, 7)
            p.setU8(52, 5 << 4)
            p.setU8(53, 0x19)  // FIN, PSH, ACK
            p.setU16(54, 512)
            return 60
        } + payload
        var pseudo = InternetChecksum()
        pseudo.addPseudoHeader(source: src, destination: dst, nextHeader: 6, length: 20 + payload.count)
        bytes[56] = UInt8(~pseudo.value >> 8)
        bytes[57] = UInt8(~pseudo.value & 0xFF)
        var o = Offload()
        o.flags = Offload.needsChecksum
        o.gsoType = Offload.tcp6
        o.gsoSize = 1208
        o.checksumStart = 40
        o.checksumOffset = 16
        var out: [[UInt8]] = []
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: 2048, alignment: 8)
        defer { scratch.deallocate() }
        withPacket(bytes) { p, n in
            #expect(Segmenter.packets(of: p, length: n, offload: o, maxLength: 1280, scratch: scratch) { out.append(Array(UnsafeRawBufferPointer(start: $0, count: $1))) })
        }
        #expect(out.map(\.count) == [1268, 1268, 644])
        let seqs: [UInt32] = out.map { seg in seg.withUnsafeBytes { UInt32(bigEndian: $0.loadUnaligned(fromByteOffset: 44, as: UInt32.self)) } }
        let first: UInt32 = 0xFFFF_FF00
        #expect(seqs == [first, first &+ 1208, first &+ 2416])
        #expect(out.map { $0[53] } == [0x10, 0x10, 0x19], "FIN and PSH on the last only")
        #expect(out.allSatisfy { seg in
            var c = InternetChecksum()
            c.addPseudoHeader(source: src, destination: dst, nextHeader: 6, length: seg.count - 40)
            c.add(Array(seg[40...]))
            return c.value == 0 && Int(seg[4]) << 8 | Int(seg[5]) == seg.count - 40
        }, "each checksum verifies independently, each length is its own")
        #expect(out.flatMap { $0[60...] } == payload)
    }
}
