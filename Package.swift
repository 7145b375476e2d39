// swift-tools-version: 6.0
// Skiff: a microVM monitor for Linux on /dev/kvm. Layers (arrows point down only):
// skiff → SkiffCLI → SkiffKit → {KVM, Devices, Boot, Images} → Memory; KVM → CKVM; Devices → CSystem;
// Images → CArchive.
import PackageDescription

let package = Package(
    name: "Skiff",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "skiff", targets: ["skiff"]),
        .library(name: "SkiffKit", targets: ["SkiffKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // <linux/kvm.h> and fixed-arity ioctl wrappers; nothing else is C.
        .target(name: "CKVM"),
        // Host interfaces Glibc does not export (getrandom, TUN/TAP, epoll, eventfd).
        .target(name: "CSystem"),
        // Guest physical memory: mmap'd regions, bounds-checked access. No KVM.
        .target(name: "Memory"),
        // The hypervisor seam: VM, vCPU, exits and register shapes as protocols
        // and values. The VMM depends on it; tests play the hypervisor through it.
        .target(name: "Hypervisor", dependencies: ["Memory"]),
        // The seam implemented over /dev/kvm.
        .target(name: "KVM", dependencies: ["CKVM", "Hypervisor", "Memory"]),
        // libarchive, for image layers (a system library: apt install libarchive-dev).
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
        // OCI images: layout and docker-save input, digests, layers applied into a root tree.
        .target(name: "Images", dependencies: ["CArchive"]),
        // Pure device models: they see guest memory and interrupt lines only.
        .target(name: "Devices", dependencies: ["Memory", "CSystem"]),
        // x86_64 Linux boot structures and loaders.
        .target(name: "Boot", dependencies: ["Memory"]),
        // Assembles a machine, runs it, times it.
        .target(name: "SkiffKit", dependencies: [
            "KVM", "Devices", "Boot", "Memory", "CSystem", "Images",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Command-line interface (a library so that tests can parse arguments).
        .target(name: "SkiffCLI", dependencies: [
            "SkiffKit",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "skiff", dependencies: ["SkiffCLI"]),

        .testTarget(name: "MemoryTests", dependencies: ["Memory"]),
        .testTarget(name: "BootTests", dependencies: ["Boot", "Memory"]),
        // What several test targets share: a seeded random generator, tar and image-layout writers.
        .target(name: "TestSupport", dependencies: ["CArchive", "Images"], path: "Tests/TestSupport"),
        .testTarget(name: "DevicesTests", dependencies: ["Devices", "Memory", "TestSupport"]),
        .testTarget(name: "KVMTests", dependencies: ["KVM", "Memory", "SkiffKit"]),
        .testTarget(name: "ImagesTests", dependencies: ["Images", "CArchive", "TestSupport"]),
        .testTarget(name: "SkiffKitTests", dependencies: ["SkiffKit", "Devices", "Images", "Boot", "TestSupport"]),
        .testTarget(name: "SkiffCLITests", dependencies: ["SkiffCLI"]),
    ],
    swiftLanguageModes: [.v6]
)
