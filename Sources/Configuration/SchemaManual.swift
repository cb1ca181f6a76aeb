extension Schema {
    /// The config reference as sixgate.toml(5), from the same tables as the
    /// README's, so the two never disagree. `date` is the page's date
    /// (YYYY-MM-DD), `version` the footer's.
    public static func manualPage(date: String, version: String) -> String {
        var out = """
        .TH SIXGATE.TOML 5 "\(date)" "sixgate \(version)" "File Formats Manual"
        .SH NAME
        sixgate.toml \\- configuration of the sixgate IPv6-only gateway
        .SH SYNOPSIS
        .B /etc/sixgate/sixgate.toml
        .SH DESCRIPTION
        One TOML file configures every part of sixgate: the NAT64/SIIT translator,
        DNS64, the 6bed4 router, the multiplexer and the controller, around one
        NAT64 prefix that they all share.
        .BR sixgatectl (8)
        makes the system match it
        .RB ( "sixgatectl apply" );
        .BR sixgated (8)
        runs its parts.
        .PP
        .B sixgatectl check
        validates a file without touching the system: every problem is reported with
        the file, line and key and what to change, and
        .B apply
        refuses a bad file before it changes anything.
        .PP
        Keys not marked
        .I required
        may be left out; the default applies.
        Durations are written like
        .BR 90s ", " 30m ", " 2h ", " 1500ms .

        """
        for t in tables {
            out += ".SH " + (t.name.isEmpty ? "TOP LEVEL" : t.isArray ? "[[\(t.name)]]" : "[\(t.name)]") + "\n"
            out += roff(t.doc) + "\n"
            for k in t.keys {
                out += ".TP\n.B \(k.name)\n"
                out += roff("\(k.type), default `\(k.defaultValue)`.") + "\n"
                out += roff(k.doc) + "\n"
            }
        }
        out += """
        .SH FILES
        .TP
        .I /etc/sixgate/sixgate.toml
        The configuration that sixgate.service applies and runs.
        .TP
        .I /usr/share/doc/sixgate/examples/
        One example per deployment.
        .SH SEE ALSO
        .BR sixgatectl (8),
        .BR sixgated (8),
        .BR 6bed4peer (8)

        """
        return out
    }

    /// Markdown's `code` as bold, and what roff would read as its own
    /// (a backslash, a leading dot or quote) made plain text.
    static func roff(_ markdown: String) -> String {
        var out = "", bold = false
        for c in markdown {
            switch c {
            case "`":
                out += bold ? "\\fR" : "\\fB"
                bold.toggle()
            case "\\": out += "\\e"
            // In code (a key, a flag, a value), a minus; in prose, a hyphen.
            case "-" where bold: out += "\\-"
            default: out.append(c)
            }
        }
        if bold { out += "\\fR" }
        return out.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.first == "." || $0.first == "'" ? "\\&" + $0 : String($0) }
            .joined(separator: "\n")
    }
}
