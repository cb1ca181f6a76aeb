@testable import Configuration
@testable import Reconcile
@testable import Nftables
import Foundation
import NetnsRig
import Testing

/// JSON from `nft -j`, with the kernel's handles removed and keys sorted, so
/// that two tables built in different ways compare by content.
func canonicalNftJSON(_ text: String) throws -> String {
    func strip(_ v: Any) -> Any {
        if let d = v as? [String: Any] { return d.filter { $0.key != "handle" }.mapValues(strip) }
        if let a = v as? [Any] { return a.map(strip) }
        return v
    }
    let object = try JSONSerialization.jsonObject(with: Data(text.utf8))
    let data = try JSONSerialization.data(withJSONObject: strip(object), options: [.sortedKeys, .prettyPrinted])
    return String(decoding: data, as: UTF8.self)
}

@Suite(.serialized) struct NftCrossCheckTests {
    static let examples = exampleNames.map { "examples/\($0).toml" }

    /// The same desired table loaded two ways: by `nft -f` from the rendered
    /// text in namespace B, and through our netlink batch in namespace A. nft
    /// lists both identically, and our dump of B parses to the desired model.
    @Test(arguments: examples)
    func netlinkMatchesTheNftTool(example: String) throws {
        let config = try ConfigLoader.load(path: repoRoot + "/" + example)
        let desired = DesiredTable.table(for: config)
        let a = try NetnsRig(links: []), b = try NetnsRig(links: [])
        defer { a.teardown(); b.teardown() }

        let file = b.scratch + "/table.nft"
        try desired.nftText.write(toFile: file, atomically: true, encoding: .utf8)
        try b.checked("gw", ["nft", "-f", file])
        let parsed = try #require(try NetfilterSocket(namespace: b.ns("gw")).readTable(DesiredTable.name))
        #expect(parsed.comment == desired.comment)
        #expect(parsed.counters == desired.counters)
        #expect(parsed.sets == desired.sets)
        for chain in desired.chains {
            let got = parsed.chain(chain.name)
            #expect(got?.header == chain.header)
            for (i, rule) in chain.rules.enumerated() {
                let live = got?.rules.indices.contains(i) == true ? got?.rules[i] : nil
                #expect(live == rule, "rule \(i) of \(chain.name): \(rule.displayText)\n  ours: \(rule.exprs)\n  nft:  \(live?.exprs ?? [])")
            }
            #expect(got?.rules.count == chain.rules.count)
        }
        #expect(NftDiff(live: parsed, desired: desired).isEmpty)

        let socket = try NetfilterSocket(namespace: a.ns("gw"))
        let batch = NftBatch(table: DesiredTable.name, firstSeq: socket.nextSeq())
        NftDiff(live: nil, desired: desired).write(to: batch)
        try socket.send(batch)

        let ours = try a.checked("gw", ["nft", "-j", "list", "table", "inet", DesiredTable.name]).stdout
        let theirs = try b.checked("gw", ["nft", "-j", "list", "table", "inet", DesiredTable.name]).stdout
        #expect(try canonicalNftJSON(ours) == canonicalNftJSON(theirs))
        #expect(try NetfilterSocket(namespace: a.ns("gw")).readTable(DesiredTable.name) == desired)
    }
}
