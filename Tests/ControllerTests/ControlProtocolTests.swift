import ControlProtocol
import Common
import Reconcile
import Foundation
import Packet
import Testing

/// The control protocol between sixgatectl and sixgated: typed commands, a
/// version checked first, and the JSON that scripts read kept as it was.
struct ControlProtocolTests {
    @Test func aRequestRoundTrips() throws {
        let line = try JSONEncoder().encode(ControlRequest(.takeConfig, config: "/etc/sixgate/sixgate.toml"))
        let request = try ControlRequest.decode(line).get()
        #expect(request.command == .takeConfig && request.config == "/etc/sixgate/sixgate.toml")
        #expect(request.protocolVersion == ControlRequest.protocolVersion && request.sender == SixgateVersion.string)
    }

    /// A sixgatectl from before the version field sent `{"command": "reload"}`,
    /// which now means something else: refused, naming both versions.
    @Test func anOlderSixgatectlIsRefusedNamingBothVersions() {
        guard case .failure(let refusal) = ControlRequest.decode(Data(#"{"command":"reload","config":"/x"}"#.utf8)) else {
            Issue.record("an unversioned request was accepted")
            return
        }
        #expect(refusal.description == "sixgatectl (an older version) speaks control protocol 1, this sixgated (\(SixgateVersion.string)) speaks "
            + "\(ControlRequest.protocolVersion): use the sixgatectl installed with it")
    }

    @Test func aNewerSixgatectlIsRefusedNamingBothVersions() {
        let line = Data(#"{"protocolVersion":99,"sender":"9.9.9 (commit abc)","command":"something-new"}"#.utf8)
        guard case .failure(let refusal) = ControlRequest.decode(line) else {
            Issue.record("a request of another protocol version was accepted")
            return
        }
        #expect(refusal.description.hasPrefix("sixgatectl 9.9.9 (commit abc) speaks control protocol 99, this sixgated (\(SixgateVersion.string))"))
    }

    @Test func anUnknownCommandAndJunkAreRefused() {
        let unknown = Data(#"{"protocolVersion":\#(ControlRequest.protocolVersion),"sender":"x","command":"format-disk"}"#.utf8)
        guard case .failure(.unknownCommand("format-disk")) = ControlRequest.decode(unknown) else {
            Issue.record("an unknown command was not refused as one")
            return
        }
        guard case .failure(.notJSON) = ControlRequest.decode(Data("status\n".utf8)) else {
            Issue.record("a line that is not JSON was not refused as such")
            return
        }
    }

    /// `status --json` shows a part's state as one string, as before it was typed.
    @Test func partStatesAreOneStringInJSON() throws {
        for (state, text) in [(PartState.starting, "starting"), (.serving, "serving"), (.failed("bind: address in use"), "failed: bind: address in use")] {
            let json = try JSONEncoder().encode(PartStatus(name: "dns64", state: state))
            let object = try JSONSerialization.jsonObject(with: json) as? [String: Any]
            #expect(object?["state"] as? String == text)
            #expect(try JSONDecoder().decode(PartStatus.self, from: json).state == state)
        }
    }

    @Test func driftAreasAreTheirNamesInJSONAndText() throws {
        let drift = Drift(.nft, .missing, "table inet sixgate")
        #expect(drift.isMissingTable && drift.description == "+ nft table inet sixgate")
        let object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(drift)) as? [String: Any]
        #expect(object?["area"] as? String == "nft")
        #expect(Drift.summary([drift, Drift(.route, .extra, "2001:db8::/64")]) == "2 changes: nft +1; route -1")
    }
}
