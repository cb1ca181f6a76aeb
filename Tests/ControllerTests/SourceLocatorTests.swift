@testable import Configuration
@testable import Reconcile
import Testing

@Suite struct SourceLocatorTests {
    func line(_ text: String, _ path: String) -> Int? {
        // Build the ConfigPath from "a.b[1].c".
        var p = ConfigPath.root
        for part in path.split(separator: ".") {
            if let open = part.firstIndex(of: "[") {
                p = p.appending(String(part[..<open]))
                p = p.appending(Int(part[part.index(after: open)..<part.index(before: part.endIndex)])!)
            } else {
                p = p.appending(String(part))
            }
        }
        return SourceLocator(text: text).line(of: p)
    }

    let text = """
        prefix = "64:ff9b::/96"   # a = comment
        [gateway]
        "uplink4" = "eth0"
        clients = [ "2001:db8:1::/64", # first
          "2001:db8:2::/64",
          # a comment line with "quotes", and [brackets]
          "2001:db8:3::/64" ]
        inside6 = "eth1"
        [ nat64 ]
        eam = [
          { ipv4 = "203.0.113.1/32", ipv6 = "2001:db8:2::1/128" },
          { ipv4 = "203.0.113.2/32", ipv6 = "2001:db8:2::2/128" },
        ]
        [dns64]
        a.b = 1
        """

    @Test func findsKeysTablesAndArrayElements() {
        #expect(line(text, "prefix") == 1)
        #expect(line(text, "gateway") == 2)
        #expect(line(text, "gateway.uplink4") == 3)
        #expect(line(text, "gateway.clients") == 4)
        #expect(line(text, "gateway.clients[0]") == 4)
        #expect(line(text, "gateway.clients[1]") == 5)
        #expect(line(text, "gateway.clients[2]") == 7)
        #expect(line(text, "gateway.inside6") == 8, "scanning resumes after a multi-line array")
        #expect(line(text, "nat64") == 9)
        #expect(line(text, "nat64.eam[1]") == 12)
        #expect(line(text, "nat64.eam[1].ipv6") == 12, "falls back to the nearest ancestor")
        #expect(line(text, "dns64.a.b") == 15)
        #expect(line(text, "nat64.unknown") == 9)
    }

    @Test func findsArrayOfTablesEntries() {
        let t = "[[nat64.eam]]\nipv4 = \"x\"\n\n[[nat64.eam]]\nipv4 = \"y\"\n"
        #expect(line(t, "nat64.eam[0].ipv4") == 2)
        #expect(line(t, "nat64.eam[1]") == 4)
        #expect(line(t, "nat64.eam[1].ipv4") == 5)
    }
}
