/// The version every sixgate program reports; here because every module sees Packet.
public enum SixgateVersion {
    public static let string = "0.1.0"
}
