import Glibc

extension Engine {
    /// RFC 4884 extensions across the translation (RFC 7915 §4.2, §5.2).
    /// The translated error's ICMP header is at `p + start`; its original
    /// datagram field holds `datagram` bytes, and when the incoming message
    /// `declared` an extension (a length field, and bytes after the datagram
    /// it covers), that extension runs from there to `end`. When the new
    /// type has a length field (`carries`), the datagram is zero-padded to
    /// the new family's `unit` (4 or 8 bytes) and at least 128 bytes, the
    /// extension follows it whole, and the field counts the padded datagram
    /// in units; an extension that would not fit in `limit` bytes, or that
    /// the new type cannot carry, is left out, never cut, and the field is 0.
    /// Returns where the message now starts, its length and the field.
    static func carryExtension(_ p: UnsafeMutableRawPointer, start: Int, datagram: Int, end: Int, declared: Bool, carries: Bool,
                               unit: Int, limit: Int) -> (start: Int, length: Int, field: Int) {
        let extensionLength = end - (start + 8 + datagram)
        let padded = max(128, (datagram + unit - 1) / unit * unit)
        guard declared, carries, extensionLength > 0, 8 + padded + extensionLength <= limit else {
            return (start, min(8 + datagram + (declared ? 0 : max(0, extensionLength)), limit), 0)
        }
        // The header and datagram move towards the front by the padding, so
        // that the extension stays where it is.
        let shift = padded - datagram
        if shift > 0 {
            memmove(p + start - shift, p + start, 8 + datagram)
            memset(p + start - shift + 8 + datagram, 0, shift)
        }
        return (start - shift, 8 + padded + extensionLength, padded / unit)
    }
}
