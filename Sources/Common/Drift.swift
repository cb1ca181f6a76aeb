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

    /// What kind of object differs, in the order apply changes them.
    public enum Area: String, Sendable, Codable {
        case link, address, sysctl, route, rule, nft, bpf
    }

    public var area: Area
    public var change: Change
    public var object: String
    public var detail: String?

    /// The nftables table itself is missing: apply will create it whole.
    public var isMissingTable: Bool { area == .nft && change == .missing && object.hasPrefix("table ") }

    public init(_ area: Area, _ change: Change, _ object: String, _ detail: String? = nil) {
        self.area = area
        self.change = change
        self.object = object
        self.detail = detail
    }

    public var description: String { text(verbose: true) }

    private var sign: String {
        switch change {
        case .missing: "+"
        case .extra: "-"
        case .changed: "~"
        }
    }

    /// One line; unless `verbose`, a long detail (a set's thousands of
    /// elements) is cut, and says how much was left out.
    public func text(verbose: Bool) -> String {
        var d = detail
        if !verbose, let full = d, full.count > 240 {
            d = full.prefix(200) + "… (\(full.count) characters; --verbose shows all)"
        }
        return "\(sign) \(area.rawValue) \(object)" + (d.map { ": \($0)" } ?? "")
    }

    /// "3 changes: route +2 -1; nft ~1": how many of each kind, at a glance.
    public static func summary(_ drift: [Drift]) -> String {
        var areas: [Area] = []
        var counts: [Area: [String: Int]] = [:]
        for d in drift {
            if counts[d.area] == nil { areas.append(d.area) }
            counts[d.area, default: [:]][d.sign, default: 0] += 1
        }
        let parts = areas.map { area in
            area.rawValue + " " + ["+", "-", "~"].compactMap { s in counts[area]?[s].map { "\(s)\($0)" } }.joined(separator: " ")
        }
        return "\(drift.count) change\(drift.count == 1 ? "" : "s"): " + parts.joined(separator: "; ")
    }
}
