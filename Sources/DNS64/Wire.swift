import Packet

/// Why a message was refused. Every one of these becomes FORMERR (or a drop
/// when not even the header could be read), never a crash.
public enum DNSDecodeError: Error, Equatable, Sendable {
    case truncated
    case badLabel
    case compressionLoop
    case nameTooLong
    case badRData(type: UInt16)
    case trailingBytes
    case multipleOPT
    /// The OPT record's option lengths do not add up to its RDATA.
    case badOption
}

/// RFC 1035 wire format, strict on input: every length is checked against
/// the message, compression pointers must point backwards (so they cannot
/// loop), names stay within 255 bytes.
public enum Wire {
    public static func decode(_ bytes: [UInt8]) throws(DNSDecodeError) -> Message {
        var r = Reader(bytes: bytes)
        var m = Message()
        m.id = try r.u16()
        let flags = try r.u16()
        m.isResponse = flags & 0x8000 != 0
        m.opcode = UInt8(flags >> 11 & 0xF)
        m.authoritative = flags & 0x0400 != 0
        m.truncated = flags & 0x0200 != 0
        m.recursionDesired = flags & 0x0100 != 0
        m.recursionAvailable = flags & 0x0080 != 0
        m.authenticData = flags & 0x0020 != 0
        m.checkingDisabled = flags & 0x0010 != 0
        m.rcode = UInt8(flags & 0xF)
        let qd = try r.u16(), an = try r.u16(), ns = try r.u16(), ar = try r.u16()
        for _ in 0..<qd { m.questions.append(Question(name: try r.name(), type: try r.u16(), klass: try r.u16())) }
        for _ in 0..<an { m.answers.append(try r.record()) }
        for _ in 0..<ns { m.authority.append(try r.record()) }
        for _ in 0..<ar {
            let start = r.offset
            let name = try r.name()
            let type = try r.u16()
            if type == RRType.opt, name == .root {
                guard m.edns == nil else { throw .multipleOPT }
                let size = try r.u16(), ttl = try r.u32(), len = Int(try r.u16())
                var e = EDNS(udpSize: max(size, 512), dnssecOK: ttl & 0x8000 != 0)
                e.extendedRCode = UInt8(ttl >> 24)
                e.version = UInt8(ttl >> 16 & 0xFF)
                e.options = try r.bytes(len)
                guard EDNS.forEachOption(e.options) else { throw .badOption }
                m.edns = e
            } else {
                r.offset = start
                m.additional.append(try r.record())
            }
        }
        guard r.offset == bytes.count else { throw .trailingBytes }
        return m
    }

    struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func u8() throws(DNSDecodeError) -> UInt8 {
            guard offset < bytes.count else { throw .truncated }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func u16() throws(DNSDecodeError) -> UInt16 { UInt16(try u8()) << 8 | UInt16(try u8()) }
        mutating func u32() throws(DNSDecodeError) -> UInt32 { UInt32(try u16()) << 16 | UInt32(try u16()) }

        mutating func bytes(_ n: Int) throws(DNSDecodeError) -> [UInt8] {
            guard n >= 0, offset + n <= bytes.count else { throw .truncated }
            defer { offset += n }
            return Array(bytes[offset..<offset + n])
        }

        /// A name at the current offset; after a pointer, reading goes on after
        /// the pointer, not after the name it points to.
        mutating func name() throws(DNSDecodeError) -> DNSName {
            var labels: [[UInt8]] = []
            var length = 1
            var at = offset
            var resume: Int?
            var lowestSeen = at
            while true {
                guard at < bytes.count else { throw .truncated }
                let len = Int(bytes[at])
                switch len >> 6 {
                case 0:
                    if len == 0 {
                        offset = resume ?? at + 1
                        return DNSName(labels: labels)
                    }
                    guard at + 1 + len <= bytes.count else { throw .truncated }
                    length += len + 1
                    guard length <= 255 else { throw .nameTooLong }
                    labels.append(Array(bytes[(at + 1)...(at + len)]))
                    at += 1 + len
                case 3:
                    guard at + 1 < bytes.count else { throw .truncated }
                    let target = (len & 0x3F) << 8 | Int(bytes[at + 1])
                    // Strictly backwards from everything read so far: no loops.
                    guard target < lowestSeen else { throw .compressionLoop }
                    if resume == nil { resume = at + 2 }
                    lowestSeen = target
                    at = target
                default:
                    throw .badLabel
                }
            }
        }

        mutating func record() throws(DNSDecodeError) -> ResourceRecord {
            let name = try name()
            let type = try u16(), klass = try u16(), ttl = try u32()
            let len = Int(try u16())
            let end = offset + len
            guard end <= bytes.count else { throw .truncated }
            let data: RData
            switch type {
            case RRType.a:
                guard len == 4 else { throw .badRData(type: type) }
                data = .a(IPv4Address(bytes: try bytes(4)))
            case RRType.aaaa:
                guard len == 16 else { throw .badRData(type: type) }
                data = .aaaa(IPv6Address(bytes: try bytes(16)))
            case RRType.cname, RRType.dname, RRType.ptr, RRType.ns:
                data = .name(try self.name())
            case RRType.soa:
                let mname = try self.name(), rname = try self.name()
                data = .soa(mname: mname, rname: rname, serial: try u32(), refresh: try u32(), retry: try u32(), expire: try u32(), minimum: try u32())
            default:
                data = .opaque(try bytes(len))
            }
            guard offset == end else { throw .badRData(type: type) }
            return ResourceRecord(name: name, type: type, klass: klass, ttl: ttl, data: data)
        }
    }

    // MARK: - Encoding

    public static func encode(_ m: Message) -> [UInt8] { encodeKeepingTTLOffsets(m).wire }

    /// The wire form and where each record's TTL is in it (the OPT record's
    /// flags are not a TTL and are not listed).
    public static func encodeKeepingTTLOffsets(_ m: Message) -> (wire: [UInt8], ttlOffsets: [Int]) {
        var w = Writer()
        w.u16(m.id)
        var flags: UInt16 = UInt16(m.opcode & 0xF) << 11 | UInt16(m.rcode & 0xF)
        if m.isResponse { flags |= 0x8000 }
        if m.authoritative { flags |= 0x0400 }
        if m.truncated { flags |= 0x0200 }
        if m.recursionDesired { flags |= 0x0100 }
        if m.recursionAvailable { flags |= 0x0080 }
        if m.authenticData { flags |= 0x0020 }
        if m.checkingDisabled { flags |= 0x0010 }
        w.u16(flags)
        w.u16(UInt16(m.questions.count))
        w.u16(UInt16(m.answers.count))
        w.u16(UInt16(m.authority.count))
        w.u16(UInt16(m.additional.count + (m.edns == nil ? 0 : 1)))
        for q in m.questions {
            w.name(q.name)
            w.u16(q.type)
            w.u16(q.klass)
        }
        for r in m.answers + m.authority + m.additional { w.record(r) }
        if let e = m.edns {
            w.bytes([0])
            w.u16(RRType.opt)
            w.u16(e.udpSize)
            w.u32(UInt32(e.extendedRCode) << 24 | UInt32(e.version) << 16 | (e.dnssecOK ? 0x8000 : 0))
            w.u16(UInt16(e.options.count))
            w.bytes(e.options)
        }
        return (w.out, w.ttlOffsets)
    }

    struct Writer {
        var out: [UInt8] = []
        /// The names (and their suffixes) already written and where, for
        /// compression (RFC 1035 §4.1.4). A message has a handful of names, so
        /// a list searched in order beats a dictionary that hashes and
        /// allocates every suffix.
        var written: [(labels: ArraySlice<[UInt8]>, at: Int)] = []
        var ttlOffsets: [Int] = []

        init() { out.reserveCapacity(512) }

        mutating func u16(_ v: UInt16) {
            out.append(UInt8(v >> 8))
            out.append(UInt8(v & 0xFF))
        }
        mutating func u32(_ v: UInt32) { u16(UInt16(v >> 16)); u16(UInt16(v & 0xFFFF)) }
        mutating func bytes(_ b: [UInt8]) { out += b }

        mutating func name(_ n: DNSName) {
            var labels = n.labels[...]
            while let first = labels.first {
                if let w = written.first(where: { DNSName.sameLabels($0.labels, labels) }) {
                    u16(0xC000 | UInt16(w.at))
                    return
                }
                if out.count < 0x4000 { written.append((labels, out.count)) }
                out.append(UInt8(first.count))
                out += first
                labels = labels.dropFirst()
            }
            out.append(0)
        }

        mutating func record(_ r: ResourceRecord) {
            name(r.name)
            u16(r.type)
            u16(r.klass)
            ttlOffsets.append(out.count)
            u32(r.ttl)
            let lengthAt = out.count
            u16(0)
            switch r.data {
            case .a(let a): bytes(a.bytes)
            case .aaaa(let a): bytes(a.bytes)
            case .name(let n):
                // RFC 3597 §4: only the well-known types' names may be compressed.
                if r.type == RRType.dname { plainName(n) } else { name(n) }
            case .soa(let mname, let rname, let serial, let refresh, let retry, let expire, let minimum):
                name(mname)
                name(rname)
                u32(serial); u32(refresh); u32(retry); u32(expire); u32(minimum)
            case .opaque(let b): bytes(b)
            }
            let len = out.count - lengthAt - 2
            out[lengthAt] = UInt8(len >> 8)
            out[lengthAt + 1] = UInt8(len & 0xFF)
        }

        mutating func plainName(_ n: DNSName) {
            for l in n.labels {
                out.append(UInt8(l.count))
                out += l
            }
            out.append(0)
        }
    }
}
