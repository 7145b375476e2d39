import Devices
import Glibc
import Host
import Hypervisor
import Testing
import TestSupport
import X86_64
@testable import Container
@testable import SkiffKit

/// The state file: every field round-trips; anything damaged, truncated,
/// foreign or inconsistent is refused with one line saying why.
@Suite struct SnapshotStateTests {
    static let state: SnapshotState = {
        var state = SnapshotState(
            architecture: "x86_64", hostKind: .hardware, memory: [.init(guestAddress: 0, size: 16 << 20)],
            machine: .init(memoryMiB: 16, cpus: 2, compatibility: "none",
                           disks: [DiskConfiguration(path: "/images/root.ext4", readOnly: true)],
                           networks: [("tap0", MACAddress("02:00:00:00:00:01")!)], entropyDevice: true,
                           vsock: VsockConfiguration(guestCID: 7, path: "/run/vm/v.sock")),
            machineState: [1, 2, 3],
            vcpus: [.init(identity: CPUIdentity(bytes: [1, 7]), state: [4, 5]),
                    .init(identity: CPUIdentity(bytes: [1, 8, 0]), state: [6])],
            devices: [("uart 0x3f8", [9, 9]), ("virtio-mmio 0", [])])
        state.provenance = ["kernel": "/k/vmlinux", "marker": "6", "cmdline": "console=ttyS0\nquiet"]
        return state
    }()

    func reason(_ bytes: [UInt8], on host: HostKind = .hardware) -> String {
        do { _ = try SnapshotState.decode(bytes, restoringOn: host, architecture: "x86_64"); return "accepted" } catch { return "\(error)" }
    }

    @Test func everyFieldRoundTrips() throws {
        let decoded = try SnapshotState.decode(Self.state.encoded(), restoringOn: .hardware, architecture: "x86_64")
        var expected = Self.state
        expected.provenance["cmdline"] = "console=ttyS0 quiet" // one line in META
        #expect(decoded == expected)
        #expect(decoded.machine.networks.first?.mac.description == "02:00:00:00:00:01")
        #expect(decoded.devices.map(\.name) == ["uart 0x3f8", "virtio-mmio 0"])
        #expect(decoded.machine.vsock == VsockConfiguration(guestCID: 7, path: "/run/vm/v.sock"))
        var without = Self.state
        without.machine.vsock = nil
        #expect(try SnapshotState.decode(without.encoded(), restoringOn: .hardware, architecture: "x86_64").machine.vsock == nil)
        // The vCPUs' identities are the platform's bytes, carried as they are.
        #expect(decoded.vcpus.map(\.identity.bytes) == [[1, 7], [1, 8, 0]])
    }

    @Test func damagedTruncatedAndForeignFilesAreRefused() {
        let bytes = Self.state.encoded()
        #expect(reason(bytes, on: .pvm) == "snapshot does not fit: snapshot taken on hardware KVM; this host is nested PVM (kvm_pvm)")
        #expect(throws: SnapshotError.mismatch("the snapshot's architecture is x86_64; this machine's is aarch64")) {
            try SnapshotState.decode(bytes, restoringOn: .hardware, architecture: "aarch64")
        }
        for length in [0, 7, 12, 40, bytes.count / 2, bytes.count - 1] {
            #expect(reason(Array(bytes.prefix(length))).hasPrefix("not a usable snapshot"), "truncated to \(length)")
        }
        for position in stride(from: 12, to: bytes.count - 40, by: 37) {
            var flipped = bytes
            flipped[position] ^= 0x40
            #expect(reason(flipped).hasPrefix("not a usable snapshot"), "a bit flipped at \(position)")
        }
        var future = bytes
        future[8] = 9
        #expect(reason(future) == "snapshot does not fit: snapshot format version 9; this skiff reads version \(SnapshotState.formatVersion)")
        #expect(reason(Array("not a snapshot at all".utf8)) == "not a usable snapshot: not a Skiff snapshot (no SKIFFSNP magic)")
    }

    /// Files whose checksum is right but whose contents contradict themselves
    /// (a bug, or a crafted file) are refused too.
    @Test func consistentChecksumsDoNotMakeInconsistentStatesAcceptable() {
        var wrongMemory = Self.state
        wrongMemory.machine.memoryMiB = 32
        #expect(reason(wrongMemory.encoded()).contains("disagrees"))
        var oddRegion = Self.state
        oddRegion.memory = [.init(guestAddress: 0, size: 4095)]
        #expect(reason(oddRegion.encoded()).contains("bad memory layout"))
        var noIdentity = Self.state
        noIdentity.vcpus[1].identity = CPUIdentity(bytes: [])
        #expect(reason(noIdentity.encoded()) == "not a usable snapshot: vCPU 1 has an empty CPU identity section")
        var tooManyCPUs = Self.state
        tooManyCPUs.machine.cpus = 3
        #expect(reason(tooManyCPUs.encoded()).contains("disagrees"))
    }

    /// The snapshot fuzzer's seeds are state files (without their checksum,
    /// which the harness appends) that this format reads, taken from real
    /// saves: when the format changes, seeds it refuses at the version
    /// check would leave the fuzzer nothing past the header to explore (the
    /// version-2 seeds did, from format 3 on), so this fails until they are
    /// made again. Their CPU identities are the x86 platform's CPUID tables.
    @Test func theFuzzersSeedsAreStateFilesThisFormatReads() throws {
        let corpus = repositoryRoot + "/Fuzz/corpus/snapshot"
        let seeds = try #require(listDirectory(atPath: corpus)).sorted()
        #expect(seeds.count >= 3)
        let platform = MachineConfiguration(kernelPath: "", commandLine: "").platform
        for seed in seeds {
            let bytes = SnapshotState.sealed(try readRegularFile(corpus + "/" + seed, limit: SnapshotState.maximumFileSize))
            let decoded = [HostKind.pvm, .hardware].compactMap { host in
                try? SnapshotState.decode(bytes, restoringOn: host, architecture: MachineConfiguration.architecture)
            }
            let state = try #require(decoded.first, "seed \(seed): \(reason(bytes, on: .pvm)) / \(reason(bytes, on: .hardware))")
            #expect(!state.devices.isEmpty && !state.machineState.isEmpty, "seed \(seed) reaches the devices")
            for vcpu in state.vcpus {
                #expect(vcpu.identity.cpuidEntries?.contains { $0.function == 0 } == true, "seed \(seed): a CPUID table")
                #expect(platform.mismatch(of: vcpu.identity, here: vcpu.identity) == nil)
            }
        }
    }

    @Test func aSnapshotDirectoryIsCheckedBeforeItIsUsed() throws {
        let directory = "/tmp/skiff-snapshot-files-\(getpid())"
        SnapshotFiles.removeTree(directory)
        mkdir(directory, 0o700)
        defer { SnapshotFiles.removeTree(directory) }
        func loadError() -> String {
            do { _ = try SnapshotFiles.load(directory, on: .hardware); return "loaded" } catch { return "\(error)" }
        }
        #expect(loadError().contains("holds no snapshot"))
        let bytes = Self.state.encoded()
        let fd = open(directory + "/state", O_WRONLY | O_CREAT, 0o600)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        #expect(loadError().contains("memory"), "a state without its memory file")
        let memory = open(directory + "/memory", O_WRONLY | O_CREAT, 0o600)
        ftruncate(memory, 4096)
        close(memory)
        #expect(loadError().contains("16777216 bytes"), "a memory file of the wrong size")
        truncate(directory + "/memory", 16 << 20)
        #expect(loadError() == "loaded")
        #expect(throws: MachineError.self) { try SnapshotFiles.checkDestination(directory) }
        #expect(throws: Never.self) { try SnapshotFiles.checkDestination(directory + "/new") }
    }

    /// Before a boot that saves a ready guest, `skiff run` and skiff-oci
    /// remove the image's snapshots no run can restore (their kernel rebuilt,
    /// another CPU, no record of their inputs, damaged) and keep the one of
    /// the key about to be saved, another shape whose inputs stand, and a
    /// half-written one (a live process may be writing it).
    @Test func aSaveRemovesTheImagesSnapshotsNoRunCanRestore() throws {
        let root = "/tmp/skiff-run-snapshots-\(getpid())"
        let snapshots = root + "/snapshots"
        defer { for name in listDirectory(atPath: snapshots) ?? [] { SnapshotFiles.removeTree(snapshots + "/" + name) }
                for name in ["snapshots", "vmlinux", "vmlinux-old"] { unlink(root + "/" + name); rmdir(root + "/" + name) }
                rmdir(root) }
        mkdir(root, 0o700)
        mkdir(snapshots, 0o700)
        func writeFile(_ path: String, _ bytes: [UInt8]) {
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        writeFile(root + "/vmlinux", [1, 2, 3])
        writeFile(root + "/vmlinux-old", [1])
        let oldIdentity = RunSnapshots.fileIdentity(root + "/vmlinux-old")
        writeFile(root + "/vmlinux-old", [1, 2]) // rebuilt since
        let cpu = RunSnapshots.hostCPUDigest()
        func snapshot(_ name: String, _ inputs: [String: String]?, damaged: Bool = false) {
            let directory = snapshots + "/" + name
            mkdir(directory, 0o700)
            var state = Self.state
            if let inputs { state.provenance.merge(inputs) { $1 } }
            writeFile(directory + "/state", damaged ? [0x53, 0x4b] : state.encoded())
            writeFile(directory + "/memory", [])
            truncate(directory + "/memory", 16 << 20)
        }
        let standing = ["kernel-file": RunSnapshots.fileIdentity(root + "/vmlinux"), "initrd-file": "none", "host-cpu": cpu]
        snapshot("just-saved", nil)
        snapshot("other-shape", standing)
        snapshot("kernel-rebuilt", standing.merging(["kernel-file": oldIdentity]) { $1 })
        snapshot("initrd-gone", standing.merging(["initrd-file": RunSnapshots.fileIdentity(root + "/initrd")]) { $1 })
        snapshot("other-cpu", standing.merging(["host-cpu": "0123"]) { $1 })
        snapshot("no-inputs", nil)
        snapshot("damaged", standing, damaged: true)
        snapshot("writing.tmp-1", nil)

        // What `skiff run` and skiff-oci ask for before the boot that saves "just-saved".
        var removed: [String] = []
        let request = RunSnapshots.readyGuestRequest(savingTo: snapshots + "/just-saved",
                                                     for: MachineConfiguration(kernelPath: root + "/vmlinux", commandLine: "")) {
            removed.append($0)
        }
        #expect(removed == ["damaged", "initrd-gone", "kernel-rebuilt", "no-inputs", "other-cpu"].map { snapshots + "/" + $0 })
        #expect((listDirectory(atPath: snapshots) ?? []).sorted() == ["just-saved", "other-shape", "writing.tmp-1"])
        #expect(request?.provenance == standing, "the new one records its inputs")
        #expect(request == SnapshotRequest(marker: BootMarkerPhase.guestReady.rawValue, directory: snapshots + "/just-saved",
                                           thenStop: false, required: false, provenance: standing))
    }

    @Test func restoringTakesTheSavedMachineWithOverrides() throws {
        let directory = "/tmp/skiff-snapshot-overrides-\(getpid())"
        SnapshotFiles.removeTree(directory)
        mkdir(directory, 0o700)
        defer { SnapshotFiles.removeTree(directory) }
        let fd = open(directory + "/state", O_WRONLY | O_CREAT, 0o600)
        _ = Self.state.encoded().withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        close(open(directory + "/memory", O_WRONLY | O_CREAT, 0o600))
        truncate(directory + "/memory", 16 << 20)
        let snapshot = try SnapshotFiles.load(directory, on: .hardware)
        let plain = try MachineConfiguration.restoring(snapshot)
        #expect(plain.memoryMiB == 16 && plain.cpus == 2 && plain.disks.map(\.path) == ["/images/root.ext4"])
        #expect(plain.networks.map(\.tap) == ["tap0"] && plain.networks.first?.mac?.description == "02:00:00:00:00:01")
        let overridden = try MachineConfiguration.restoring(snapshot, overrides: ["vda=/other.ext4", "eth0=tap9"])
        #expect(overridden.disks.map(\.path) == ["/other.ext4"] && overridden.disks[0].readOnly)
        #expect(overridden.networks.map(\.tap) == ["tap9"])
        #expect(plain.vsock == VsockConfiguration(guestCID: 7, path: "/run/vm/v.sock"))
        #expect(try MachineConfiguration.restoring(snapshot, overrides: ["vsock=/run/other.sock"]).vsock
                == VsockConfiguration(guestCID: 7, path: "/run/other.sock"), "the CID is the guest's; the socket is this process's")
        for bad in ["vdb=/x", "eth1=tap", "vda", "vda=", "sda=/x", "vsock="] {
            #expect(throws: MachineError.self, "\(bad)") { try MachineConfiguration.restoring(snapshot, overrides: [bad]) }
        }
        #expect(plain.compatibility == .none)
        for (saved, profile) in [("pvm", CompatibilityProfile.pvm), ("warp", nil)] {
            var other = Self.state
            other.machine.compatibility = saved
            let fd = open(directory + "/state", O_WRONLY | O_TRUNC)
            _ = other.encoded().withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
            let loaded = try SnapshotFiles.load(directory, on: .hardware)
            if let profile {
                #expect(try MachineConfiguration.restoring(loaded).compatibility == profile)
            } else {
                let error = #expect(throws: MachineError.self) { try MachineConfiguration.restoring(loaded) }
                #expect(error.map { "\($0)".contains("compatibility profile 'warp' is unknown to this skiff") } == true)
            }
        }
    }
}

@Suite struct RunSnapshotKeyTests {
    @Test func theKeyChangesWithEverythingThatShapesTheSavedGuest() {
        let base = MachineConfiguration(kernelPath: "/nonexistent/vmlinux", initrdPath: "/nonexistent/initrd", commandLine: "quiet")
        let key = RunSnapshots.key(for: base, imageID: "sha256:a")
        #expect(key == RunSnapshots.key(for: base, imageID: "sha256:a"), "stable")
        var variants: [MachineConfiguration] = []
        func vary(_ change: (inout MachineConfiguration) -> Void) { var copy = base; change(&copy); variants.append(copy) }
        vary { $0.kernelPath = "/nonexistent/other" }
        vary { $0.initrdPath = nil }
        vary { $0.initrdAppendix = [1] }
        vary { $0.commandLine = "quiet loglevel=8" }
        vary { $0.compatibility = .pvm }
        vary { $0.memoryMiB = 256 }
        vary { $0.cpus = 2 }
        vary { $0.entropyDevice = false }
        vary { $0.hiddenCPUFeatures = ["rdrand"] }
        vary { $0.host = .pvm }
        vary { $0.disks = [DiskConfiguration(path: "/x.img", readOnly: true)] }
        vary { $0.networks = [NetworkConfiguration(tap: "tap0")] }
        vary { $0.vsock = VsockConfiguration(guestCID: 3, path: "v.sock") }
        let keys = variants.map { RunSnapshots.key(for: $0, imageID: "sha256:a") } + [RunSnapshots.key(for: base, imageID: "sha256:b")]
        #expect(Set(keys + [key]).count == keys.count + 1, "every change is another snapshot")
        // The host CPU: the same on every call (whichever CPU runs it), and
        // naming what /proc/cpuinfo names (the vendor; family, model and
        // stepping in leaf 1's eax).
        let signature = RunSnapshots.hostCPUSignature()
        #expect((0..<8).allSatisfy { _ in RunSnapshots.hostCPUSignature() == signature })
        let cpuinfo = RunSnapshots.cpuinfoSignature()
        #if arch(x86_64)
        let vendor = cpuinfo.split(separator: "\n").first { $0.hasPrefix("vendor_id") }.map { String($0.split(separator: " ").last ?? "") }
        #expect(vendor != nil && signature.hasPrefix(vendor! + " 1.0:"), "\(signature) / \(cpuinfo)")
        let leaf1 = signature.split(separator: " ").first { $0.hasPrefix("1.0:") }.flatMap { UInt32($0.dropFirst(4).split(separator: ",")[0], radix: 16) }
        let family = leaf1.map { ($0 >> 8) & 0xF == 0xF ? (($0 >> 8) & 0xF) + (($0 >> 20) & 0xFF) : ($0 >> 8) & 0xF }
        #expect(family.map { cpuinfo.contains("cpu family\t: \($0)\n") } == true, "\(signature) / \(cpuinfo)")
        #else
        #expect(signature == cpuinfo)
        #endif
        // What the run-time spec carries (argv, env, ...) is not in the key: one snapshot serves every run.
        var run = base
        run.handoverPayload = [1, 2, 3]
        run.timeout = 5
        run.console = .none
        #expect(RunSnapshots.key(for: run, imageID: "sha256:a") == key)
        // The OCI runtime's ready guest: the disk (each container's own) and its vsock path are not in the key.
        var bundle = base
        bundle.vsock = VsockConfiguration(guestCID: 3, path: "v.sock")
        var other = bundle
        other.disks = [DiskConfiguration(path: "/run/c2/rootfs.ext4", readOnly: true)]
        other.vsock?.path = "/run/c2/v.sock"
        #expect(RunSnapshots.key(RunSnapshots.machineKeyLines(bundle)) == RunSnapshots.key(RunSnapshots.machineKeyLines(other)))
        #expect(RunSnapshots.key(RunSnapshots.machineKeyLines(bundle)) != RunSnapshots.key(RunSnapshots.machineKeyLines(base)))
    }
}
