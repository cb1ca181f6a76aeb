// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "sixgate",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "sixgatectl", targets: ["sixgatectl"]),
        .executable(name: "sixgated", targets: ["sixgated"]),
        .executable(name: "6bed4peer", targets: ["SixBedFourPeer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // libmnl and libnftnl install their headers in /usr/include; libnl's live in
        // /usr/include/libnl3, which pkg-config supplies. module.modulemap links all four.
        .systemLibrary(
            name: "CNetlink",
            pkgConfig: "libnl-route-3.0",
            providers: [.apt(["libmnl-dev", "libnftnl-dev", "libnl-3-dev", "libnl-route-3-dev"])]
        ),
        .plugin(name: "VersionPlugin", capability: .buildTool()),
        .target(name: "Packet"),
        // The process-level system calls of sixgated's part processes (capabilities, descriptor passing, crash signals).
        .target(name: "CProcess"),
        // libbpf, for the tc-BPF translator.
        .systemLibrary(name: "CBPF", pkgConfig: "libbpf", providers: [.apt(["libbpf-dev"])]),
        // bpf/*.bpf.c compiled with clang -target bpf on every build and embedded in the binaries.
        .executableTarget(name: "bpf-embed", path: "Plugins/BPFEmbed"),
        .plugin(name: "BPFObjectPlugin", capability: .buildTool(), dependencies: ["bpf-embed"]),
        // The tc-BPF translator: loading, attaching, its maps.
        .target(name: "TCBPF", dependencies: ["CBPF", "Packet"], plugins: ["BPFObjectPlugin"]),
        // A TUN device's queues: the translator's and the 6bed4 router's and peer's datapaths.
        .target(name: "Tun", dependencies: ["CNetlink", "Packet", "Common"]),
        // The RFC 7915 engine, the EAM table, the pool and the datapath contract: no I/O.
        .target(name: "Translator", dependencies: ["Packet"]),
        // The implementations of the contract, and the factory that picks one.
        .target(name: "Datapaths", dependencies: ["Translator", "Tun", "TCBPF", "Packet"]),
        .target(
            name: "DNS64",
            dependencies: ["Packet", "CNetlink", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")]
        ),
        .target(name: "SixBedFour", dependencies: ["Packet", "Tun", "CNetlink", "Common"]),
        // The multiplexer's peeks at the first bytes of a connection (TLS server_name, HTTP Host) and its routes by name.
        .target(name: "CMux"),
        .target(name: "Mux", dependencies: ["CMux", "Packet"]),
        // What the programs share beyond packets: the version (with the commit VersionPlugin records),
        // a difference between the live system and the config, and the descriptors a reload hands across exec.
        .target(name: "Common", plugins: ["VersionPlugin"]),
        // rtnetlink: namespaces, links, addresses, routes, rules, sysctls (libnl-route).
        .target(name: "Netlink", dependencies: ["CNetlink", "Packet"]),
        // nftables: the table model, rule builder, nft text, libnftnl batches and dumps, and their diff.
        .target(name: "Nftables", dependencies: ["CNetlink", "Packet", "Common"]),
        // The config language: schema, loader, validation, diagnostics, summary, publish.
        .target(name: "Configuration", dependencies: ["Packet", "Translator", "DNS64", "SixBedFour", "Mux", "TOMLKit"]),
        // The typed, versioned messages between sixgatectl and sixgated, and both ends of the control socket.
        .target(name: "ControlProtocol", dependencies: ["Configuration", "Common", "Packet", "Translator"]),
        // The controller's core: desired state, plan, apply, audit, remove, verify, prefix history, state directory.
        .target(
            name: "Reconcile",
            dependencies: ["Packet", "Translator", "TCBPF", "DNS64", "SixBedFour", "Mux", "CNetlink", "Common", "Netlink", "Nftables", "Configuration", "ControlProtocol"]
        ),
        .executableTarget(
            name: "sixgatectl",
            dependencies: ["Reconcile", "Configuration", "ControlProtocol", "Common", "Netlink", "Packet", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "sixgated",
            dependencies: [
                "Reconcile", "Configuration", "ControlProtocol", "Common", "Translator", "Datapaths", "DNS64", "SixBedFour", "Tun", "CProcess", "Mux", .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"), .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "SixBedFourPeer",
            dependencies: ["SixBedFour", "Packet", "Common", "Netlink", "DNS64", "Tun", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Sources/6bed4peer"
        ),

        // bench/translator.sh's load generator (not a product: nothing ships it).
        .executableTarget(name: "udpblast", dependencies: ["CNetlink"], path: "bench/udpblast"),
        // bench/mux.sh's connection load generator and backend.
        .executableTarget(name: "muxload", dependencies: ["Packet"], path: "bench/muxload"),

        // The fuzz harnesses: `make fuzz` builds them with libFuzzer
        // (-sanitize=fuzzer,address -DFUZZING); built plainly, the binary
        // replays a corpus, which the tests run.
        .executableTarget(
            name: "sixgate-fuzz", dependencies: ["Translator", "DNS64", "SixBedFour", "Configuration", "ControlProtocol", "Packet", "TCBPF", "Mux"], path: "Tests/Fuzz",
            exclude: ["Corpus", "README.md", "seeds.py", "lsan.supp", "run.sh"], swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),

        // Test support: builds the namespace topology of the integration tests (c6, c4, gw, s6, s4).
        .target(name: "NetnsRig", path: "demo/NetnsRig"),
        // Test packets that the translator's, the TUN's and 6bed4's tests build and check.
        .target(name: "TestPackets", dependencies: ["Packet"], path: "Tests/TestPackets"),
        .testTarget(name: "PacketTests", dependencies: ["Packet"]),
        .testTarget(name: "MuxTests", dependencies: ["Mux"], exclude: ["openssl-hello.hex"]),
        .testTarget(name: "SixBedFourTests", dependencies: ["SixBedFour", "TestPackets"]),
        .testTarget(name: "TranslatorTests", dependencies: ["Translator", "Tun", "TCBPF", "TestPackets"]),
        .testTarget(name: "DNS64Tests", dependencies: ["DNS64"]),
        .testTarget(name: "ControllerTests", dependencies: ["Configuration", "ControlProtocol", "Reconcile", "Netlink", "Common", "SixBedFour"]),
        .testTarget(name: "CNetlinkTests", dependencies: ["CNetlink"]),
        .testTarget(name: "TunTests", dependencies: ["Tun", "Packet", "Common", "TestPackets"]),
        .executableTarget(name: "RigHold", dependencies: ["NetnsRig"], path: "Tests/RigHold"),
        // `make demo`: the seed's scenarios on a live gateway, printed; IntegrationTests asserts them.
        .target(name: "Demo", dependencies: ["NetnsRig"], path: "demo/Demo"),
        .executableTarget(name: "sixgate-demo", dependencies: ["Demo", "NetnsRig"], path: "demo/sixgate-demo"),
        .testTarget(name: "IntegrationTests", dependencies: ["NetnsRig", "Configuration", "Reconcile", "Demo"], exclude: ["Fixtures"]),
    ]
)
