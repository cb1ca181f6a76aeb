import Foundation
import PackagePlugin

/// Compiles the tc-BPF programs in bpf/ with clang `-target bpf` on every
/// build and hands the object to the target as Swift source, so that the
/// binaries carry it: no compiled object is ever committed, and nothing
/// has to be found at run time.
@main
struct BPFObjectPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
        let bpf = context.package.directoryURL.appending(path: "bpf")
        let sources = try FileManager.default.contentsOfDirectory(atPath: bpf.path()).filter { $0.hasSuffix(".bpf.c") }.sorted()
        let headers = try FileManager.default.contentsOfDirectory(atPath: bpf.path()).filter { $0.hasSuffix(".h") }.map { bpf.appending(path: $0) }
        let embed = try context.tool(named: "bpf-embed")
        return sources.map { name in
            let source = bpf.appending(path: name)
            let output = context.pluginWorkDirectoryURL.appending(path: name.replacingOccurrences(of: ".bpf.c", with: "BPFObject.swift"))
            return .buildCommand(displayName: "Compiling bpf/\(name) with clang -target bpf", executable: embed.url,
                                 arguments: [source.path(), output.path()], inputFiles: [source] + headers, outputFiles: [output])
        }
    }
}
