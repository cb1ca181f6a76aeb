/// What answering a query from the cache needs, read straight from the
/// datagram without building a `Message`. It reads only the usual shape of a
/// query: a header with one question, an uncompressed name, at most an OPT
/// record, nothing after it. Anything else goes to the full decoder, which is
/// also where malformed queries get their FORMERR.
struct QueryHead {
    let id: UInt16
    let recursionDesired: Bool
    /// The question name is bytes 12..<nameEnd of the query.
    let nameEnd: Int
    let key: AnswerCache.Key
    /// The client's UDP buffer: 512 bytes, or its EDNS size when larger.
    let udpSize: Int

    init?(_ p: UnsafeRawBufferPointer) {
        guard p.count >= 17 else { return nil }
        let flags = UInt16(p[2]) << 8 | UInt16(p[3])
        // A query (QR clear), opcode QUERY, one question, no records but an OPT.
        guard flags & 0xF800 == 0, p[4] == 0, p[5] == 1, p[6] | p[7] | p[8] | p[9] | p[10] == 0, p[11] <= 1 else { return nil }
        var name: [UInt8] = []
        name.reserveCapacity(32)
        var at = 12
        while true {
            guard at < p.count else { return nil }
            let len = Int(p[at])
            guard len < 64, at + 1 + len <= p.count, at + 1 + len - 12 <= 255 else { return nil }
            name.append(UInt8(len))
            for b in p[(at + 1)..<(at + 1 + len)] { name.append(DNSName.lower(b)) }
            at += 1 + len
            if len == 0 { break }
        }
        guard at + 4 <= p.count else { return nil }
        nameEnd = at
        let type = UInt16(p[at]) << 8 | UInt16(p[at + 1]), klass = UInt16(p[at + 2]) << 8 | UInt16(p[at + 3])
        at += 4
        var dnssecOK = false
        var size = 512
        if p[11] == 1 {
            // The OPT: root name, type 41, size, extended RCODE, version, flags, options.
            // Version 0 only: a later one gets BADVERS, and options whose
            // lengths do not add up get FORMERR, both from the full path.
            guard at + 11 <= p.count, p[at] == 0, p[at + 1] == 0, p[at + 2] == 41, p[at + 6] == 0 else { return nil }
            size = max(512, Int(p[at + 3]) << 8 | Int(p[at + 4]))
            dnssecOK = p[at + 7] & 0x80 != 0
            let end = at + 11 + (Int(p[at + 9]) << 8 | Int(p[at + 10]))
            guard end <= p.count else { return nil }
            guard EDNS.forEachOption(UnsafeRawBufferPointer(rebasing: p[(at + 11)..<end])) else { return nil }
            at = end
        }
        guard at == p.count else { return nil }
        id = UInt16(p[0]) << 8 | UInt16(p[1])
        recursionDesired = flags & 0x0100 != 0
        udpSize = size
        key = AnswerCache.Key(lowercasedWireName: name, type: type, klass: klass, dnssecOK: dnssecOK,
                              checkingDisabled: flags & 0x0010 != 0, edns: p[11] == 1)
    }
}
