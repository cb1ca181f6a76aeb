import Configuration
import Reconcile
import Foundation
import Packet
import Testing

/// What `check` tells an operator about a bad file: where, what, and what
/// to change, without noise.
struct CheckMessagesTests {
    static let base = """
        prefix = "2001:db8:64::/96"
        [gateway]
        uplink4 = "eth0"
        inside6 = "eth1"
        clients = ["2001:db8:1::/64"]
        [dns64]
        enabled = false

        """

    func problems(_ text: String) -> [ConfigDiagnostic] {
        do {
            _ = try ConfigLoader.parse(text, source: "t.toml")
            return []
        } catch {
            return error.diagnostics
        }
    }

    @Test func aLongValueIsCutNotEchoedWhole() {
        let long = String(repeating: "x", count: 5000)
        let p = problems(Self.base.replacingOccurrences(of: "\"2001:db8:64::/96\"", with: "\"\(long)\""))
        #expect(p.count == 1)
        #expect(p.first?.problem == "\"\(String(repeating: "x", count: 40))…\" (5000 characters) is not a valid address", "\(p)")
    }

    /// A [[mux]] address inside a mapping of several addresses is refused;
    /// a mapping of that one address is deliberate: the multiplexer listens
    /// on its IPv6 side and a tcp entry needs no process.
    @Test func aMappedMultiplexerAddressMustBeMappedAlone() throws {
        let mux = "[[mux]]\nlisten = \"203.0.113.20:443\"\nkind = \"tls-sni\"\n[[mux.route]]\nname = \"a.example\"\nbackend = \"[2001:db8:2::1]:443\"\n"
            + "[[mux]]\nlisten = \"203.0.113.20:5222\"\nkind = \"tcp\"\ndefault = \"[2001:db8:2::2]:5222\"\n"
        let block = problems(Self.base + "[[nat64.eam]]\nipv4 = \"203.0.113.16/28\"\nipv6 = \"2001:db8:2::10/124\"\n" + mux)
        #expect(block.map(\.key) == ["mux[0].listen", "mux[1].listen"]
                && block.first?.problem == "203.0.113.20 is in the mapping 203.0.113.16/28 <-> 2001:db8:2::10/124, which is not of this one address", "\(block)")
        let alone = try ConfigLoader.parse(Self.base + "[[nat64.eam]]\nipv4 = \"203.0.113.20\"\nipv6 = \"2001:db8:ff::20\"\n" + mux, source: "t.toml")
        #expect(alone.translatedAddress(of: alone.mux[0]) == IPv6Address("2001:db8:ff::20"))
        #expect(!alone.routedInKernel(alone.mux[0]) && alone.routedInKernel(alone.mux[1]))
        #expect(alone.muxSettings.listeners.map(\.bind.description) == ["[2001:db8:ff::20]:443"], "the tcp entry is the kernel's")
    }

    /// A [[mux]] is refused with the key to change: an address the
    /// translator uses, a tcp entry without its backend, a name twice, a
    /// backend that is not IPv6, a malformed wildcard.
    @Test func badMultiplexersAreNamed() {
        let nat = "[nat64]\npool4 = \"192.0.2.128/25\"\n"
        let pooled = problems(Self.base + nat + "[[mux]]\nlisten = \"192.0.2.130:443\"\nkind = \"tls-sni\"\n[[mux.route]]\nname = \"a.example\"\nbackend = \"[2001:db8:2::1]:443\"\n")
        #expect(pooled.map(\.key) == ["mux[0].listen"] && pooled.first?.problem == "192.0.2.130 is in the dynamic pool 192.0.2.128/25", "\(pooled)")
        let tcp = problems(Self.base + "[[mux]]\nlisten = \"203.0.113.20:5222\"\nkind = \"tcp\"\n")
        #expect(tcp.map(\.problem) == ["a tcp [[mux]] needs its backend as default"] && tcp.first?.fix == "Add default = \"[2001:db8:2::30]:5222\"", "\(tcp)")
        let twice = problems(Self.base + "[[mux]]\nlisten = \"203.0.113.20:443\"\nkind = \"tls-sni\"\n"
                             + "[[mux.route]]\nname = \"A.example\"\nbackend = \"[2001:db8:2::1]:443\"\n[[mux.route]]\nname = \"a.example\"\nbackend = \"[2001:db8:2::2]:443\"\n")
        #expect(twice.map(\.key) == ["mux[0].route[1].name"] && twice.first?.line == 15, "\(twice.map { "\($0.line ?? -1) \($0.key) \($0.problem)" })")
        let v4 = problems(Self.base + "[[mux]]\nlisten = \"203.0.113.20:443\"\nkind = \"tls-sni\"\n[[mux.route]]\nname = \"a.example\"\nbackend = \"192.0.2.9:443\"\n")
        #expect(v4.map(\.key) == ["mux[0].route[0].backend"] && v4.first?.fix == "Write it like \"[2001:db8:2::10]:443\"", "\(v4.map { "\($0.key) \($0.problem)" })")
        let wild = problems(Self.base + "[[mux]]\nlisten = \"203.0.113.20:443\"\nkind = \"tls-sni\"\n[[mux.route]]\nname = \"*.*.example\"\nbackend = \"[2001:db8:2::1]:443\"\n")
        #expect(wild.map(\.key) == ["mux[0].route[0].name"], "\(wild)")
        let named = problems(Self.base + "[[nat64.eam]]\nipv4 = \"203.0.113.32/28\"\nipv6 = \"2001:db8:2::20/124\"\nname = \"www.example.com\"\n")
        #expect(named.map(\.problem) == ["names www.example.com but 203.0.113.32/28 is not one address"], "\(named)")
        let srv = problems(Self.base + "[[mux]]\nlisten = \"203.0.113.20:5222\"\nkind = \"tcp\"\ndefault = \"[2001:db8:2::1]:5222\"\nservice = \"xmpp\"\n")
        #expect(srv.map(\.key) == ["mux[0].service", "mux[0].service"] && srv.first?.fix == "Write it like \"_xmpp-client._tcp\"", "\(srv)")
        let noPort = problems(Self.base + "[[mux]]\nlisten = \"203.0.113.20\"\nkind = \"http-host\"\n[[mux.route]]\nname = \"a.example\"\nbackend = \"[2001:db8:2::1]:80\"\n")
        #expect(noPort.map(\.key) == ["mux[0].listen"], "\(noPort)")
    }

    /// A duration whose milliseconds overflow is too long, not a crash
    /// (found by `make fuzz`).
    @Test func anEnormousDurationIsRefused() {
        let p = problems(Self.base.replacingOccurrences(of: "enabled = false", with: "enabled = false\ntimeout = \"1844674407370955161s\""))
        #expect(p.map(\.problem) == ["\"1844674407370955161s\" is longer than allowed"], "\(p)")
    }

    @Test func anUnterminatedStringIsNamed() {
        let p = problems(Self.base.replacingOccurrences(of: "uplink4 = \"eth0\"", with: "uplink4 = \"eth0"))
        #expect(p.count == 1 && p.first?.line == 3, "\(p)")
        #expect(p.first?.problem == "a string is not closed: its closing quote is missing", "\(p)")
    }

    /// toml++ asserts (the process ends) where a table name starts with a
    /// character that cannot start a key; sixgate refuses it first, with
    /// its line, and any non-ASCII character outside strings and comments.
    /// Strings and comments may hold any character. (Found by `make fuzz`.)
    @Test func aBadTableNameOrKeyIsRefusedNotACrash() {
        for bad in ["[é]\n", "[\u{FFFD}]\n", "[!gateway]\n", "[[ .a]]\n"] {
            let p = problems(bad)
            #expect(p.count == 1 && p.first?.problem == "a table name that does not start with a letter, a digit, _, - or a quote", "\(bad): \(p)")
        }
        for bad in ["x = [}]\n", "x = [1,\n# c\n}]\n", "x = { a = [[}]] }\n"] {
            let p = problems(bad)
            #expect(p.count == 1 && p.first?.problem == "a } where an array wants a value or ]", "\(bad): \(p)")
        }
        let p = problems("[gateway]\nuplink4 = \"eth0\"\nnäme = 1\n")
        #expect(p.count == 1 && p.first?.line == 3 && p.first?.problem == "a non-ASCII character outside a string or a comment", "\(p)")
        #expect(problems(Self.base.replacingOccurrences(of: "[dns64]", with: "# Grüße\n[dns64]")).isEmpty)
        #expect(problems("prefix = \"2001:db8:64::/96\"\n[gateway]\nuplink4 = \"eth0\"\ninside6 = \"eth1\"\nclients = ['2001:db8:1::/64'] # ü\n[dns64]\nenabled = false\nupstreams = [\"\"\"ü\nü\"\"\"]\n").allSatisfy { !$0.problem.contains("non-ASCII") })
    }

    @Test func aDirectoryIsNamed() throws {
        let dir = FileManager.default.temporaryDirectory.path
        #expect(throws: ConfigError.self) { try ConfigLoader.load(path: dir) }
        do {
            _ = try ConfigLoader.load(path: dir)
        } catch {
            #expect(error.diagnostics.first?.problem == "is a directory, not a config file", "\(error)")
            #expect(error.diagnostics.first?.fix.contains("sixgate.toml") == true)
        }
    }

    @Test func anAddressOfTheOtherFamilyIsNamed() {
        let v4 = problems(Self.base.replacingOccurrences(of: "clients = [\"2001:db8:1::/64\"]", with: "clients = [\"2001:db8:1::/64\", \"192.0.2.0/24\"]"))
        #expect(v4.first?.key == "gateway.clients[1]" && v4.first?.problem == "\"192.0.2.0/24\" is an IPv4 prefix, and gateway.clients takes IPv6 ones", "\(v4)")
        let v6 = problems(Self.base + "[nat64]\npool4 = \"2001:db8:5::/64\"\n")
        #expect(v6.first?.problem == "\"2001:db8:5::/64\" is an IPv6 prefix, and nat64.pool4 takes IPv4 ones", "\(v6)")
    }

    /// A refused prefix is reported once: the default standing in for it is
    /// not blamed for what depends on it (an EAM of private addresses, a
    /// client network inside the well-known prefix).
    @Test func aRefusedPrefixBringsNoFollowOnErrors() {
        let p = problems(Self.base.replacingOccurrences(of: "2001:db8:64::/96", with: "2001:db8:64::/95")
            .replacingOccurrences(of: "clients = [\"2001:db8:1::/64\"]", with: "clients = [\"64:ff9b::/96\"]")
            + "[nat64]\n[[nat64.eam]]\nipv4 = \"10.0.0.1/32\"\nipv6 = \"2001:db8:2::1/128\"\n")
        #expect(p.map(\.key) == ["prefix"], "\(p)")
    }
}
