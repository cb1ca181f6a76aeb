/// Monotonic seconds since the process started.
final class ProcessClock: Sendable {
    static let shared = ProcessClock()
    private let start = ContinuousClock.now
    var seconds: Int64 { (ContinuousClock.now - start).components.seconds }
}
