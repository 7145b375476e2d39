// swift-tools-version: 6.0
// Skiff: a microVM monitor for Linux on /dev/kvm. Layers (arrows point down only):
// skiff → SkiffCLI → Container → SkiffKit → {X86_64 → Platform, Hypervisor, Devices, Images, Seccomp} → Memory → Host;
// SkiffKit builds machines through Platform's GuestPlatform, which X86_64 implements;
// SkiffKit opens KVM, which implements Hypervisor over CKVM; Devices, Seccomp → CSystem;
// Images → CArchiveLazy (dlopen). Container is `skiff run`'s pipeline; SkiffKit the VMM.
// skiff-bench → Bench → SkiffKit: the bench (Foundation) stays out of the `skiff` executable.
// skiff-oci → OCIRuntime → SkiffKit: the OCI runtime (runc's command line) and its monitor process.
// skiff, skiff-oci → CProcessStart: what is settled before the Swift runtime starts.
import PackageDescription

/// How `skiff` and `skiff-oci` are linked, for a start that maps little
/// (issue 11; scripts/bench-start.sh measures it):
/// - the Swift runtime statically: a dynamically linked Swift executable
///   spends milliseconds in the loader before `main`; and libstdc++ (which
///   the runtime is written in) statically as well: loading and relocating
///   libstdc++.so took about 0.3 ms of each start and 1 MiB of resident pages;
///   Nettle (SHA-256) likewise, through Sources/skiff/link/libnettle.so;
/// - by lld with packed relative relocations (DT_RELR, glibc 2.36 and later):
///   the loader reads 8 KB of them instead of 950 KB of RELA entries;
/// - the functions a start calls laid out side by side, in the order of
///   Sources/skiff/start-path.order (scripts/make-start-order.sh writes it),
///   so that a start maps the text it runs rather than every 64 KiB window
///   one of them sits in. Names it lists that no longer exist are ignored;
/// - exporting only what the shared libraries need: the loader searches the
///   executable's dynamic symbols for every symbol the libraries bind, and
///   5,000 exported Swift symbols cost 400 KiB of mapped tables;
/// - without a RUNPATH: release builds pass `--disable-local-rpath` (README,
///   scripts/bench-*.sh). Otherwise SwiftPM gives every executable a RUNPATH
///   of `$ORIGIN`, and the loader looks for libm and libc in 18 places under
///   the build directory (glibc-hwcaps/x86-64-v4, tls/haswell/..., each an
///   openat and a stat that fail) before its cache: 39 failed system calls
///   and a readlink of /proc/self/exe, 0.06 ms of `main`'s start and 0.1 ms
///   of the first instruction (30 alternated runs). Nothing is loaded from
///   beside the executable (the Swift runtime is static; libarchive's
///   dlopen goes by its soname);
/// - with full RELRO (`-z now`): libc's functions are bound at load and the
///   GOT is then read-only, so a write through a guest-controlled pointer
///   cannot redirect them (what Rust's defaults give Firecracker). No cost
///   measured: 40 alternated starts, first instruction 3.66 ms without,
///   3.69 with, on a noisy hour;
/// - with `.rodata` read-only: Sources/skiff/link/relro.ld moves the
///   writable `.rodata` sections Swift emits (constants holding pointers the
///   loader relocates) into `.data.rel.ro`; lld had made all of `.rodata`
///   (1 MB) writable because of them.
let leanExecutable: [LinkerSetting] = [.unsafeFlags([
    "-static-stdlib", "-l_FoundationCollections", "-l_FoundationCShims",
    // libstdc++ statically too, through Sources/skiff/link/libstdc++.so (a linker script).
    "-L\(Context.packageDirectory)/Sources/skiff/link",
    "-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
    // Full RELRO: every symbol bound at load, then the GOT read-only.
    "-Xlinker", "-z", "-Xlinker", "now",
    // The writable `.rodata` input sections Swift emits go into RELRO (the script says why).
    "-Xlinker", "-T\(Context.packageDirectory)/Sources/skiff/link/relro.ld",
    "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/Sources/skiff/start-path.order",
    "-Xlinker", "--no-warn-symbol-ordering", "-Xlinker", "--no-export-dynamic",
])]

let package = Package(
    name: "Skiff",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "skiff", targets: ["skiff"]),
        .executable(name: "skiff-bench", targets: ["skiff-bench"]),
        .executable(name: "skiff-oci", targets: ["skiff-oci"]),
        .library(name: "SkiffKit", targets: ["SkiffKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // <linux/kvm.h> and fixed-arity ioctl wrappers; nothing else is C.
        .target(name: "CKVM"),
        // Host interfaces Glibc does not export (getrandom, TUN/TAP, epoll, eventfd).
        .target(name: "CSystem"),
        // Settled before the Swift runtime starts, in the executables only:
        // its crash backtracer off (process_start.c says why).
        .target(name: "CProcessStart"),
        // System calls as Skiff uses them: the one EINTR retry, transfers of
        // exact lengths, reading to the end, pipes, starting a program and
        // waiting for it, threads, eventfds, timerfds, the epoll event loop,
        // replacing a file, removing a tree.
        .target(name: "Host", dependencies: ["CSystem"]),
        // seccomp-BPF: allow lists compiled to BPF, installed per thread, and
        // the SIGSYS reporter. The VMM's lists live in SkiffKit (VMMSeccompPolicy).
        .target(name: "Seccomp", dependencies: ["CSystem"]),
        // Guest physical memory: mmap'd regions, bounds-checked access. No KVM.
        .target(name: "Memory", dependencies: ["Host"]),
        // The hypervisor seam: VM, vCPU, exits and register shapes as protocols
        // and values. The VMM depends on it; tests play the hypervisor through it.
        .target(name: "Hypervisor", dependencies: ["Memory"]),
        // The seam implemented over /dev/kvm.
        .target(name: "KVM", dependencies: ["CKVM", "Host", "Hypervisor", "Memory"]),
        // libarchive linked, for the tests that write archives (apt install libarchive-dev).
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
        // Nettle's SHA-256 for image digests, snapshot checksums and cache keys
        // (apt install nettle-dev); linked statically into the executables.
        .systemLibrary(name: "CNettle", providers: [.apt(["nettle-dev"])]),
        // libarchive loaded with dlopen on first use (it pulls in libxml2 and ICU,
        // which `skiff` must not load at every start); declarations from its headers.
        .target(name: "CArchiveLazy"),
        // OCI images: layout and docker-save input, digests, layers applied into a root tree.
        .target(name: "Images", dependencies: ["CArchiveLazy", "CNettle", "Host", "JSON"]),
        // JSON read strictly and written stably, and Codable over it: what the
        // executables use instead of FoundationEssentials' coders.
        .target(name: "JSON"),
        // Pure device models: they see guest memory and interrupt lines only.
        .target(name: "Devices", dependencies: ["Host", "Memory", "CSystem"]),
        // The architecture seam: GuestPlatform (memory layout, kernel loading,
        // what a VM needs before its vCPUs, vCPU setup, exit hooks), and what
        // every architecture shares (BootError, the initramfs cpio writer).
        .target(name: "Platform", dependencies: ["Devices", "Hypervisor", "Memory"]),
        // x86_64 behind that seam: Linux boot structures and loaders, CPU
        // setup, the MP table, the PVM host's workarounds (X86Platform).
        .target(name: "X86_64", dependencies: ["Platform", "Devices", "Hypervisor", "Memory"]),
        // Assembles a machine, runs it, times it.
        .target(name: "SkiffKit", dependencies: ["KVM", "Devices", "Platform", "X86_64", "Host", "Memory", "CSystem", "Images", "Seccomp", "CKVM"]),
        // `skiff run`: image → root disk (cached) → run spec → a machine,
        // restored from the image's ready snapshot or booted and saved.
        .target(name: "Container", dependencies: ["SkiffKit", "Images", "Host", "Platform", "Devices", "JSON", "CSystem"]),
        // Command-line interface (a library so that tests can parse arguments).
        .target(name: "SkiffCLI", dependencies: ["SkiffKit", "Container", "CSystem", "Host", "Seccomp", "JSON"]),
        .executableTarget(name: "skiff", dependencies: ["SkiffCLI", "CProcessStart"], exclude: ["start-path.order", "link"],
                          linkerSettings: leanExecutable),
        // VM against container (runc/crun) and QEMU: spawns runtimes, writes JSON
        // and SVG with Foundation, so it lives outside the `skiff` executable,
        // whose start it measures; `skiff bench` runs `skiff-bench`.
        .target(name: "Bench", dependencies: ["SkiffKit", "Container", "Host", "Images"]),
        .executableTarget(name: "skiff-bench", dependencies: [
            "Bench", "SkiffCLI", "SkiffKit", "Host",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Skiff as an OCI runtime: runc's command line, container state, the monitor process.
        .target(name: "OCIRuntime", dependencies: ["SkiffKit", "Container", "Images", "Host", "CSystem", "Seccomp", "JSON"]),
        .executableTarget(name: "skiff-oci", dependencies: ["OCIRuntime", "SkiffKit", "CProcessStart"], linkerSettings: leanExecutable),

        .testTarget(name: "HostTests", dependencies: ["Host"]),
        .testTarget(name: "JSONTests", dependencies: ["JSON", "TestSupport"]),
        .testTarget(name: "SeccompTests", dependencies: ["Seccomp", "CSystem", "TestSupport"]),
        .testTarget(name: "MemoryTests", dependencies: ["Memory"]),
        .testTarget(name: "X86_64Tests", dependencies: ["X86_64", "Platform", "Devices", "Hypervisor", "Memory"]),
        // What several test targets share: a seeded random generator, tar and image-layout writers.
        .target(name: "TestSupport", dependencies: ["CArchive", "Images"], path: "Tests/TestSupport"),
        .testTarget(name: "DevicesTests", dependencies: ["Devices", "Host", "Memory", "TestSupport"]),
        .testTarget(name: "KVMTests", dependencies: ["KVM", "Memory", "SkiffKit", "X86_64", "Platform"]),
        .testTarget(name: "ImagesTests", dependencies: ["Images", "CArchive", "TestSupport"]),
        .testTarget(name: "SkiffKitTests", dependencies: ["SkiffKit", "Container", "Bench", "Devices", "Images", "Platform", "X86_64", "TestSupport", "CSystem", "Host"]),
        .testTarget(name: "SkiffCLITests", dependencies: ["SkiffCLI"]),
        .testTarget(name: "OCIRuntimeTests", dependencies: ["OCIRuntime", "SkiffKit", "Container", "Images", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)

/// Generic type metadata reached through accessor calls rather than mangled
/// names: by default the compiler refers to a concrete generic type (an
/// `[UInt8]`'s storage, an `Optional<StopReason>`) by its mangled name, and
/// the runtime demangles that name the first time the type is used: about
/// 0.6 ms of CPU per `skiff boot` went to swift_getTypeByMangledName, a good
/// part of it before the first guest instruction (perf, 150 starts; the
/// accessors cost 18 KB of code). Every code target, the executables' and
/// the libraries' alike.
let directMetadataAccess: SwiftSetting = .unsafeFlags(["-Xfrontend", "-disable-concrete-type-metadata-mangled-name-accessors"])
for target in package.targets where target.type != .system && target.type != .test {
    target.swiftSettings = (target.swiftSettings ?? []) + [directMetadataAccess]
}

// Coverage-guided fuzz targets (libFuzzer), only when asked for: they are
// built with `--sanitize fuzzer --sanitize address` by scripts/fuzz.sh,
// which sets SKIFF_FUZZ=1 and a build directory of their own.
if Context.environment["SKIFF_FUZZ"] == "1" {
    let fuzzSettings: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]
    package.targets += [
        .target(name: "FuzzSupport", path: "Fuzz/Support"),
        .executableTarget(name: "fuzz-image-layout", dependencies: ["Images", "FuzzSupport"], path: "Fuzz/image-layout", swiftSettings: fuzzSettings),
        .executableTarget(name: "fuzz-docker-archive", dependencies: ["Images", "FuzzSupport"], path: "Fuzz/docker-archive", swiftSettings: fuzzSettings),
        .executableTarget(name: "fuzz-layer", dependencies: ["Images", "FuzzSupport"], path: "Fuzz/layer", swiftSettings: fuzzSettings),
        .executableTarget(name: "fuzz-json", dependencies: ["JSON", "Images"], path: "Fuzz/json", swiftSettings: fuzzSettings),
        .executableTarget(name: "fuzz-kernel", dependencies: ["X86_64", "Platform", "Memory"], path: "Fuzz/kernel", swiftSettings: fuzzSettings),
        .executableTarget(name: "fuzz-snapshot", dependencies: ["SkiffKit", "Devices", "Hypervisor", "Memory"], path: "Fuzz/snapshot", swiftSettings: fuzzSettings),
        .executableTarget(name: "fuzz-virtio", dependencies: ["Devices", "Memory"], path: "Fuzz/virtio", swiftSettings: fuzzSettings),
    ]
}

