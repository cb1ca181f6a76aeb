import Foundation
import PackagePlugin

/// Writes the commit the binaries are built from into the Common module
/// before every build (`--version`, `status`): git's short hash, with
/// "-modified" when the tree differs from it, or "unknown" outside a git
/// checkout (a source tarball). The file is rewritten only when that
/// changes, so that an unchanged tree recompiles nothing.
@main
struct VersionPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
        let out = context.pluginWorkDirectoryURL.appending(path: "commit")
        let file = out.appending(path: "Commit.swift").path()
        let script = """
            mkdir -p '\(out.path())'
            cd '\(context.package.directoryURL.path())'
            c=$(git rev-parse --short=12 HEAD 2>/dev/null) || c=unknown
            if [ "$c" != unknown ] && ! git diff --quiet HEAD -- 2>/dev/null; then c="$c-modified"; fi
            printf '// Generated at build time.\\nextension SixgateVersion { public static let commit = "%s" }\\n' "$c" > '\(file).new'
            if cmp -s '\(file).new' '\(file)'; then rm '\(file).new'; else mv '\(file).new' '\(file)'; fi
            """
        return [.prebuildCommand(displayName: "Recording the commit", executable: URL(fileURLWithPath: "/bin/sh"), arguments: ["-c", script],
                                 outputFilesDirectory: out)]
    }
}
