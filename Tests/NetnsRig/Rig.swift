public enum NetnsRig {}
