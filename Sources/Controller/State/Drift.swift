/// One difference between the live system and the desired state: what `plan`
/// shows, `audit` reports and `apply` repairs.
public struct Drift: Sendable, Equatable, Codable, CustomStringConvertible {
    public enum Change: String, Sendable, Codable {
        /// Desired but absent: apply adds it.
        case missing
        /// Present in what sixgate owns but not desired: apply removes it.
        case extra
        /// Present with other contents: apply replaces it.
        case changed
    }

    public var area: String
    public var change: Change
    public var object: String
    public var detail: String?

    public init(_ area: String, _ change: Change, _ object: String, _ detail: String? = nil) {
        self.area = area
        self.change = change
        self.object = object
        self.detail = detail
    }

    public var description: String {
        let sign = switch change {
        case .missing: "+"
        case .extra: "-"
        case .changed: "~"
        }
        return "\(sign) \(area) \(object)" + (detail.map { ": \($0)" } ?? "")
    }
}
