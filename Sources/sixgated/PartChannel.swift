import CProcess
import Foundation
import Glibc

/// What `sixgated run` and one of its part processes say to each other:
/// one JSON datagram per message.
enum PartMessage: Codable, Sendable, Equatable {
    /// run → part, first: the config text to serve (the one the supervisor
    /// runs, not the file as it may have been edited since).
    case run(config: String)
    /// part → run: it serves now, doing what `detail` says (for status).
    case serving(detail: [String])
    /// part → run: why it stops serving, just before it exits 1.
    case failed(reason: String)
    /// run → part: its counters, please.
    case askCounters(id: Int)
    /// part → run: the answer to `askCounters` of the same id.
    case counters(id: Int, values: [String: Int])
    /// run → part: stop, keeping TUN queues and sockets open for the next
    /// program (a reload).
    case handOver
    /// part → run: what it kept, attached to the datagram in this order.
    case handedOver(keys: [String])
}

/// One end of a SOCK_SEQPACKET pair between `sixgated run` and a part
/// process: datagrams keep messages apart, descriptors travel with them, and
/// the end of either process is the end of the channel (a part whose
/// supervisor is gone stops).
final class PartChannel: Sendable {
    /// Where a part process finds its end.
    static let partDescriptor: Int32 = 3
    /// Descriptors per datagram: the kernel's SCM_MAX_FD is 253.
    static let descriptorsPerMessage = 250

    let fd: Int32

    init(fd: Int32) { self.fd = fd }

    /// A new pair, both ends close-on-exec: (ours, the part's).
    static func pair() throws(PartChannelError) -> (PartChannel, Int32) {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw PartChannelError(what: "socketpair", code: errno)
        }
        return (PartChannel(fd: fds[0]), fds[1])
    }

    /// Sends `message` without waiting (a peer that stopped reading must not
    /// stall its supervisor); false when it could not go.
    @discardableResult
    func send(_ message: PartMessage, descriptors: [Int32] = []) -> Bool {
        guard let data = try? JSONEncoder().encode(message), descriptors.count <= Self.descriptorsPerMessage else { return false }
        return data.withUnsafeBytes { bytes in
            descriptors.withUnsafeBufferPointer { fds in
                sixgate_send_fds(fd, bytes.baseAddress, bytes.count, fds.baseAddress, Int32(fds.count)) == bytes.count
            }
        }
    }

    /// The next message and the descriptors that came with it, waiting for
    /// it; nil once the other end is closed. A datagram that does not decode
    /// is skipped (its descriptors closed).
    func receive() -> (PartMessage, [Int32])? {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var fds = [Int32](repeating: -1, count: Self.descriptorsPerMessage)
        while true {
            var count: Int32 = 0
            let n = buffer.withUnsafeMutableBytes { b in
                fds.withUnsafeMutableBufferPointer { f in
                    sixgate_recv_fds(fd, b.baseAddress, b.count, f.baseAddress, Int32(f.count), &count)
                }
            }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return nil }
            let got = Array(fds[0..<Int(count)])
            guard let message = try? JSONDecoder().decode(PartMessage.self, from: Data(buffer[0..<n])) else {
                got.forEach { _ = Glibc.close($0) }
                continue
            }
            return (message, got)
        }
    }

    func close() { _ = Glibc.close(fd) }
}

struct PartChannelError: Error, CustomStringConvertible {
    let what: String
    let code: Int32
    var description: String { "\(what): \(String(cString: strerror(code)))" }
}
