import Common

/// The smallest change that turns the live table into the desired one, as drift
/// lines and as a batch. Rules are matched by content, so a rule deleted or added
/// by hand costs one rule change. A changed chain definition, set type or
/// counter, table flags, or an object of another kind cannot be altered in place
/// while rules use it; then the whole table is replaced, still in one transaction.
public struct NftDiff: Sendable {
    public private(set) var drift: [Drift] = []
    public private(set) var rebuild = false
    private let live: NftTable?
    private let desired: NftTable
    /// Per chain present in both: live rule index -> desired rule index, for the
    /// rules that stay.
    private var kept: [String: [Int: Int]] = [:]

    public var isEmpty: Bool { drift.isEmpty }

    public init(live: NftTable?, desired: NftTable) {
        self.live = live
        self.desired = desired
        guard let live else {
            drift.append(Drift(.nft, .missing, "table inet \(desired.name)",
                               "\(desired.chains.count) chains, \(desired.sets.count) sets, \(desired.chains.reduce(0) { $0 + $1.rules.count }) rules"))
            return
        }
        if live.comment != desired.comment { structural("table comment") }
        if live.flags != desired.flags { structural("table flags \(live.flags) (0x1 is dormant: no rule applies)") }
        for o in live.foreignObjects { structural("object \(o)") }
        compare(live.counters, desired.counters, key: \.name, what: "counter")
        compare(live.sets.map(\.header), desired.sets.map(\.header), key: \.name, what: "set")
        compare(live.chains.map(\.header), desired.chains.map(\.header), key: \.name, what: "chain")
        for set in desired.sets {
            guard let old = live.sets.first(where: { $0.name == set.name }), old.header == set.header, old.elements != set.elements else { continue }
            let gone = Set(old.elements).subtracting(set.elements), new = Set(set.elements).subtracting(old.elements)
            drift.append(Drift(.nft, .changed, "set \(set.name)", "elements " + (new.map { "+\($0)" } + gone.map { "-\($0)" }).sorted().joined(separator: " ")))
        }
        for chain in live.chains where chain.hook == nil || desired.chain(chain.name) == nil {
            for r in chain.rules { drift.append(Drift(.nft, .extra, "rule in chain \(chain.name)", r.displayText)) }
        }
        for chain in desired.chains {
            guard let old = live.chain(chain.name), old.header == chain.header else { continue }
            let pairs = Self.commonRules(old.rules, chain.rules)
            kept[chain.name] = pairs
            let stays = Set(pairs.values)
            for (i, r) in old.rules.enumerated() where pairs[i] == nil {
                drift.append(Drift(.nft, .extra, "rule in chain \(chain.name)", "handle \(r.handle ?? 0): \(r.displayText)"))
            }
            for (j, r) in chain.rules.enumerated() where !stays.contains(j) {
                drift.append(Drift(.nft, .missing, "rule in chain \(chain.name)", r.displayText))
            }
        }
    }

    private mutating func structural(_ what: String) {
        drift.append(Drift(.nft, .changed, what, "the table is replaced as a whole"))
        rebuild = true
    }

    private mutating func compare<T: Equatable>(_ live: [T], _ desired: [T], key: KeyPath<T, String>, what: String) {
        for d in desired {
            guard let l = live.first(where: { $0[keyPath: key] == d[keyPath: key] }) else {
                drift.append(Drift(.nft, .missing, "\(what) \(d[keyPath: key])"))
                continue
            }
            if l != d { structural("\(what) \(d[keyPath: key])") }
        }
        for l in live where !desired.contains(where: { $0[keyPath: key] == l[keyPath: key] }) {
            drift.append(Drift(.nft, .extra, "\(what) \(l[keyPath: key])"))
        }
    }

    /// A longest common subsequence of rules, as live index -> desired index:
    /// the rules to keep.
    public static func commonRules(_ live: [NftRule], _ desired: [NftRule]) -> [Int: Int] {
        let n = live.count, m = desired.count
        var table = [[Int]](repeating: [Int](repeating: 0, count: m + 1), count: n + 1)
        for i in stride(from: n - 1, through: 0, by: -1) {
            for j in stride(from: m - 1, through: 0, by: -1) {
                table[i][j] = live[i] == desired[j] ? table[i + 1][j + 1] + 1 : max(table[i + 1][j], table[i][j + 1])
            }
        }
        var out: [Int: Int] = [:]
        var i = 0, j = 0
        while i < n, j < m {
            if live[i] == desired[j] {
                out[i] = j
                i += 1
                j += 1
            } else if table[i + 1][j] >= table[i][j + 1] {
                i += 1
            } else {
                j += 1
            }
        }
        return out
    }

    /// Writes the change into `batch`; nothing when there is no drift.
    public func write(to batch: NftBatch) {
        guard !drift.isEmpty else { return }
        guard let live, !rebuild else {
            if live != nil { batch.deleteTable() }
            Self.create(desired, in: batch)
            return
        }
        // Removals first, so that names are free and nothing still uses what
        // goes: every rule before any chain, since a rule may jump to a chain.
        for chain in live.chains {
            guard let pairs = kept[chain.name] else { continue }
            for (i, r) in chain.rules.enumerated() where pairs[i] == nil {
                if let h = r.handle { batch.deleteRule(handle: h, chain: chain.name) }
            }
        }
        for chain in live.chains where kept[chain.name] == nil {
            batch.flushChain(chain.name)
        }
        for chain in live.chains where chain.hook == nil || desired.chain(chain.name) == nil {
            batch.deleteChain(chain.name)
        }
        for s in live.sets where !desired.sets.contains(where: { $0.name == s.name }) { batch.deleteSet(s.name) }
        for c in live.counters where !desired.counters.contains(where: { $0.name == c.name }) { batch.deleteCounter(c.name) }

        for c in desired.counters where !live.counters.contains(where: { $0.name == c.name }) { batch.addCounter(c) }
        for s in desired.sets {
            if let old = live.sets.first(where: { $0.name == s.name }) {
                if old.elements != s.elements { batch.replaceElements(s) }
            } else {
                batch.addSet(s)
            }
        }
        for chain in desired.chains {
            if let old = live.chain(chain.name), let pairs = kept[chain.name] {
                Self.insertMissing(chain, live: old, kept: pairs, batch: batch)
            } else {
                batch.addChain(chain)
                for r in chain.rules { batch.addRule(r, chain: chain.name) }
            }
        }
    }

    /// Adds the desired rules that are not kept, each at its place relative to
    /// the kept live rules: a run after a kept rule goes in reverse with "after",
    /// a run before the first kept rule in order with "before".
    private static func insertMissing(_ chain: NftChain, live: NftChain, kept: [Int: Int], batch: NftBatch) {
        let keptHandle = Dictionary(uniqueKeysWithValues: kept.map { ($0.value, live.rules[$0.key].handle ?? 0) })
        var run: [NftRule] = []
        var anchor: UInt64?
        func flush(before next: UInt64?) {
            if let anchor {
                for r in run.reversed() { batch.addRule(r, chain: chain.name, at: .after(anchor)) }
            } else if let next {
                for r in run { batch.addRule(r, chain: chain.name, at: .before(next)) }
            } else {
                for r in run { batch.addRule(r, chain: chain.name) }
            }
            run = []
        }
        for (j, r) in chain.rules.enumerated() {
            if let h = keptHandle[j] {
                flush(before: h)
                anchor = h
            } else {
                run.append(r)
            }
        }
        flush(before: nil)
    }

    /// The whole table. Exclusive: if a table of the name appeared meanwhile,
    /// the kernel refuses rather than adding a second copy of every rule.
    public static func create(_ t: NftTable, in batch: NftBatch) {
        batch.addTable(comment: t.comment, exclusive: true)
        for c in t.counters { batch.addCounter(c) }
        for s in t.sets { batch.addSet(s) }
        for chain in t.chains {
            batch.addChain(chain)
            for r in chain.rules { batch.addRule(r, chain: chain.name) }
        }
    }
}

extension NftSet {
    /// The set without its elements, for comparing definitions.
    public var header: NftSet { NftSet(name: name, keyType: keyType, comment: comment, elements: []) }
}
