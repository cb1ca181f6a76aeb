import Glibc
import Packet
import TCBPF
import Translator

/// The tc-BPF program (through BPF_PROG_TEST_RUN) and the engine fed the
/// same packet, with the same prefix, EAM and pool mapping: what the program
/// translates, the engine must translate into the same bytes (but for the
/// Identification of a packet without DF, which each numbers itself, and so
/// the header checksum); what it leaves to the engine it must leave
/// untouched. Input: a flags byte (bit 0: a super-packet), the segment size
/// (2 bytes), then the packet. Needs CAP_BPF (root).
extension Harness {
    static let c6 = IPv6Address("2001:db8:1::2")!

    static let kernelPair: (program: NAT64Program, engine: Engine) = {
        let settings = TranslatorSettings(
            prefix: try! NAT64Prefix(IPv6Prefix.parse("2001:db8:64::/96")),
            // The seeds' s6 only: the seeds' s4 (203.0.113.2) must not hairpin.
            eam: EAMTable([EAMTable.Entry(ipv4: try! IPv4Prefix.parse("203.0.113.3/32"), ipv6: try! IPv6Prefix.parse("2001:db8:2::3/128"))]),
            own4: IPv4Address("192.0.2.1"))
        let engine = Engine(settings: settings, pool: DynamicPool(range: try! IPv4Prefix.parse("192.0.2.128/25"), idleTimeout: 7200, stateFile: nil))
        let program: NAT64Program
        do {
            program = try NAT64Program()
            try program.maps.configure(NAT64Maps.Settings(
                prefix: settings.prefix, eam: Set(settings.eam.entries.map { NAT64Maps.Mapping(ipv4: $0.ipv4, ipv6: $0.ipv6) }),
                ifindex6: 1, ifindex4: 1, lowestIPv6MTU: settings.lowestIPv6MTU, l3Offset: 14))
            // c6's pool address, in both, as the datapath makes it.
            guard let a = engine.pool?.address(for: c6, now: 1000) else { fatalError("no pool address for c6") }
            try program.maps.addPoolMapping(host: c6, address: a, lastUsed: UInt64(time(nil)))
        } catch {
            fatalError("the differential harness needs the tc-BPF program loaded (root, CAP_BPF): \(error)")
        }
        return (program, engine)
    }()

    static func differential(_ data: UnsafeRawBufferPointer) {
        guard data.count >= 3 + 20, data.count - 3 <= 9000 else { return }
        let packet = Array(data[3...])
        let version = packet[0] >> 4
        guard version == 4 || version == 6 else { return }
        let gsoSize = data[0] & 1 == 1 ? Int(data[1]) << 8 | Int(data[2]) : 0
        let frame = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2] + (version == 6 ? [0x86, 0xDD] : [0x08, 0x00]) + packet
        let (program, engine) = kernelPair
        // The kernel refuses some inputs outright (a segment size it does not take): no run, no difference.
        guard let k = try? program.testRun(frame, gsoSize: UInt32(gsoSize)) else { return }
        guard k.translated else {
            precondition(!k.punted || k.frame == frame, "the program changed a packet it left to the engine")
            return
        }
        var offload = Offload()
        if gsoSize > 0 {
            let proto = version == 6 ? packet[6] : packet[9]
            offload.gsoType = proto == 17 ? Offload.udpL4 : (version == 6 ? Offload.tcp6 : Offload.tcp4)
            offload.gsoSize = UInt16(gsoSize)
        }
        let start = Engine.headroom
        (buffer + start).copyMemory(from: packet, byteCount: packet.count)
        guard case .forward(let s, let l) = engine.process(buffer, start: start, length: packet.count, now: 1000, offload: &offload) else {
            preconditionFailure("the program translated a packet the engine does not")
        }
        var ours = Array(UnsafeRawBufferPointer(start: buffer + s, count: l))
        var theirs = Array(k.frame.dropFirst(14))
        precondition(k.frame[12..<14] == (ours[0] >> 4 == 4 ? [0x08, 0x00] : [0x86, 0xDD]), "the program's EtherType")
        precondition(theirs.count == ours.count, "the program's packet is \(theirs.count) bytes, the engine's \(ours.count)")
        if ours[0] >> 4 == 4 {
            precondition(headerChecksumHolds(theirs), "the program's IPv4 header checksum")
            if ours[6] & 0x40 == 0 {
                theirs[4...5] = [0, 0]
                ours[4...5] = [0, 0]
            }
            theirs[10...11] = [0, 0]
            ours[10...11] = [0, 0]
        }
        precondition(theirs == ours, "the program and the engine translate it differently")
    }

    static func headerChecksumHolds(_ p: [UInt8]) -> Bool {
        let length = Int(p[0] & 0x0F) * 4
        guard length >= 20, p.count >= length else { return false }
        var sum: UInt32 = 0
        for i in stride(from: 0, to: length, by: 2) { sum += UInt32(p[i]) << 8 | UInt32(p[i + 1]) }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        return sum == 0xFFFF
    }
}
