/// The version every sixgate program reports.
public enum SixgateVersion {
    public static let number = "0.1.0"
    /// "0.1.0 (commit 3dc0c8b1e2f4)".
    public static let string = "\(number) (commit \(commit))"
}
