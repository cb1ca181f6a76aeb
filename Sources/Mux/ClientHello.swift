/// The server_name of a TLS ClientHello (RFC 8446 §4.1.2, RFC 6066 §3), read
/// from the first bytes of a connection as they arrive: the ClientHello may
/// be split over several TCP segments, and over several TLS records.
/// Nothing is decrypted or answered; the bytes go on to the backend as they
/// came.
public enum ClientHello {
    /// A ClientHello needs at most this many bytes (the record layer's
    /// 2^14-byte fragments may carry a larger one, which no client sends).
    public static let largest = 1 << 16

    public static func peek(_ bytes: [UInt8]) -> Peek {
        // The handshake message, gathered from the records that carry it.
        var message: [UInt8] = []
        var at = 0
        while true {
            guard bytes.count >= at + 5 else { return .incomplete }
            guard bytes[at] == 22 else { return .invalid(at == 0 ? "not a TLS handshake" : "a record other than the handshake inside the ClientHello") }
            guard bytes[at + 1] == 3 else { return .invalid("not a TLS record (version \(bytes[at + 1]).\(bytes[at + 2]))") }
            let length = Int(bytes[at + 3]) << 8 | Int(bytes[at + 4])
            guard length > 0, length <= 1 << 14 else { return .invalid("a TLS record of \(length) bytes") }
            let end = at + 5 + length
            message += bytes[(at + 5)..<min(end, bytes.count)]
            if message.count >= 4 {
                guard message[0] == 1 else { return .invalid("a handshake other than a ClientHello") }
                let need = 4 + (Int(message[1]) << 16 | Int(message[2]) << 8 | Int(message[3]))
                guard need <= largest else { return .invalid("a ClientHello of \(need) bytes") }
                if message.count >= need { return serverName(in: message[4..<need]) }
            }
            guard end <= bytes.count else { return .incomplete }
            at = end
        }
    }

    /// The body of a complete ClientHello.
    static func serverName(in body: ArraySlice<UInt8>) -> Peek {
        var r = Reader(body)
        guard r.skip(2 + 32),  // legacy_version, random
              let session = r.u8(), session <= 32, r.skip(Int(session)),
              let suites = r.u16(), suites >= 2, suites % 2 == 0, r.skip(Int(suites)),
              let compressions = r.u8(), compressions >= 1, r.skip(Int(compressions))
        else { return .invalid("a malformed ClientHello") }
        // TLS 1.2 allows no extensions at all.
        guard !r.atEnd else { return .noName }
        guard let total = r.u16(), var extensions = r.slice(Int(total)), r.atEnd else { return .invalid("malformed ClientHello extensions") }
        var found: Peek = .noName
        var seen = Set<UInt16>()
        while !extensions.atEnd {
            guard let type = extensions.u16(), let length = extensions.u16(), var data = extensions.slice(Int(length)) else {
                return .invalid("malformed ClientHello extensions")
            }
            // RFC 8446 §4.2: no extension twice; one server_name only.
            guard seen.insert(type).inserted else { return .invalid("extension \(type) twice") }
            guard type == 0 else { continue }
            guard let listLength = data.u16(), var list = data.slice(Int(listLength)), data.atEnd else { return .invalid("a malformed server_name") }
            while !list.atEnd {
                guard let nameType = list.u8(), let nameLength = list.u16(), let name = list.slice(Int(nameLength)) else {
                    return .invalid("a malformed server_name")
                }
                guard nameType == 0 else { continue }  // host_name is the only type defined
                guard case .noName = found, let host = HostName.normalized(name.rest) else { return .invalid("a server_name that is not a host name") }
                found = .name(host)
            }
        }
        return found
    }
}

/// Reads big-endian fields from a slice, nil past its end.
struct Reader {
    private(set) var rest: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) { rest = bytes }

    var atEnd: Bool { rest.isEmpty }

    mutating func u8() -> UInt8? { rest.popFirst() }

    mutating func u16() -> UInt16? {
        guard rest.count >= 2 else { return nil }
        defer { rest = rest.dropFirst(2) }
        return UInt16(rest[rest.startIndex]) << 8 | UInt16(rest[rest.startIndex + 1])
    }

    mutating func skip(_ n: Int) -> Bool { slice(n) != nil }

    /// The next `n` bytes as a reader of their own.
    mutating func slice(_ n: Int) -> Reader? {
        guard rest.count >= n else { return nil }
        defer { rest = rest.dropFirst(n) }
        return Reader(rest.prefix(n))
    }
}
