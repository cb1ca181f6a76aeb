public enum SixgateVersion {
    public static let string = "0.1.0"
}
