/// nftables "user data": type-length-value records the kernel stores without
/// reading them, where nft keeps comments and set display hints. The format is
/// one byte of type, one of length, then the value.
enum Udata {
    static func record(_ type: UInt8, _ value: [UInt8]) -> [UInt8] {
        [type, UInt8(value.count)] + value
    }

    /// A comment record (NUL-terminated, as nft writes it), passed to `body`.
    static func comment(_ text: String, type: UInt8, _ body: (UnsafeRawPointer, UInt32) -> Void) {
        let bytes = record(type, Array(text.utf8.prefix(252)) + [0])
        bytes.withUnsafeBytes { body($0.baseAddress!, UInt32($0.count)) }
    }

    /// Set user data as nft writes it: the key byte order (big endian for
    /// addresses, so `nft list` prints them as addresses) and the comment.
    static func set(comment: String?, _ body: (UnsafeRawPointer, UInt32) -> Void) {
        let bigEndian: UInt32 = 2  // nft's BYTEORDER_BIG_ENDIAN, stored in host order
        var bytes = record(0, withUnsafeBytes(of: bigEndian) { Array($0) })  // NFTNL_UDATA_SET_KEYBYTEORDER
        if let comment { bytes += record(7, Array(comment.utf8.prefix(252)) + [0]) }  // NFTNL_UDATA_SET_COMMENT
        bytes.withUnsafeBytes { body($0.baseAddress!, UInt32($0.count)) }
    }

    /// The comment record of `type` in `data`, if any.
    static func comment(in data: UnsafeRawBufferPointer, type: UInt8) -> String? {
        var i = 0
        while i + 2 <= data.count {
            let t = data[i], len = Int(data[i + 1])
            guard i + 2 + len <= data.count else { return nil }
            if t == type {
                let value = data[(i + 2)..<(i + 2 + len)].prefix { $0 != 0 }
                return String(decoding: value, as: UTF8.self)
            }
            i += 2 + len
        }
        return nil
    }
}

/// libnftnl attribute numbers: some header enums import as Swift enums, others
/// (anonymous ones) as plain integers; both read the same here.
func attr<E: RawRepresentable>(_ e: E) -> UInt16 where E.RawValue: BinaryInteger { UInt16(e.rawValue) }
func attr(_ i: Int) -> UInt16 { UInt16(i) }
func flag<E: RawRepresentable>(_ e: E) -> UInt32 where E.RawValue: BinaryInteger { UInt32(e.rawValue) }
func flag(_ i: Int) -> UInt32 { UInt32(i) }
