import Packet

extension Offload {
    /// The upper-layer header moved from `from` to `to` bytes into the packet,
    /// and the packet changed family.
    mutating func moved(from: Int, to: Int, toIPv6: Bool) {
        if checksumPending { checksumStart = UInt16(to) }
        if headerLength > 0 { headerLength = UInt16(clamping: Int(headerLength) - from + to) }
        if isSegmented, !isUDPSegmented { gsoType = gsoType & Self.ecn | (toIPv6 ? Self.tcp6 : Self.tcp4) }
    }
}
