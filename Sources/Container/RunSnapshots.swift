import SkiffKit
import CSystem
import Glibc
import Host
import Images

/// `skiff run`'s ready-guest snapshots: one per image and machine shape, in
/// the image's cache entry (so `skiff image rm` and `prune` take them along),
/// keyed by everything that shapes the saved guest. A key that differs in
/// anything (kernel, init, command line, profile, image, memory, CPUs,
/// devices, host kind, the host CPU) is another snapshot: one never restores
/// where it does not fit, and the restore itself still checks CPUID exactly.
///
/// Design choice: the ready point is per image, after init has mounted the
/// image's root (read-only ext4 under a tmpfs overlay) and opened the
/// container's lines, so a restore skips the kernel boot, the disk probe and
/// the mounts. A generic guest waiting before its root disk would serve every
/// image, but needs the disk attached at restore (a config-change interrupt
/// and a re-probe the guest kernel interprets slowly on a PVM host); the OCI
/// runtime's bundles are the case for it.
public enum RunSnapshots {
    /// The snapshot directory for `configuration` (a cold-boot configuration
    /// of `skiff run`) in the image entry `entryDirectory`.
    public static func directory(for configuration: MachineConfiguration, imageID: String, entryDirectory: String) -> String {
        entryDirectory + "/snapshots/" + key(for: configuration, imageID: imageID)
    }

    static func key(for configuration: MachineConfiguration, imageID: String) -> String {
        var lines = machineKeyLines(configuration) + ["image=\(imageID)"]
        lines += configuration.disks.map { "disk=\($0.path),\($0.readOnly)" }
        return key(lines)
    }

    /// Everything but the disks that shapes a guest saved at ready: the
    /// snapshot format, kernel, init, command line, profile, memory, CPUs,
    /// devices, host kind and the host CPU.
    public static func machineKeyLines(_ configuration: MachineConfiguration) -> [String] {
        var lines = [
            "format=\(SnapshotState.formatVersion)",
            "kernel=\(fileIdentity(configuration.kernelPath))",
            "initrd=\(configuration.initrdPath.map(fileIdentity) ?? "none")",
            "appendix=\(digest(configuration.initrdAppendix))",
            "cmdline=\(configuration.commandLine)",
            "compat=\(configuration.compatibility.name)",
            "memory=\(configuration.memoryMiB)", "cpus=\(configuration.cpus)",
            "entropy=\(configuration.entropyDevice)",
            "vsock=\(configuration.vsock.map { String($0.guestCID) } ?? "none")",
            "hidden=\(configuration.hiddenCPUFeatures.joined(separator: ","))",
            "host=\(configuration.host.rawValue)",
            "cpu=\(hostCPUDigest())",
        ]
        lines += configuration.networks.map { "net=\($0.tap),\($0.mac?.description ?? "-"),\($0.address?.description ?? "-")/\($0.prefixLength),\($0.gateway?.description ?? "-")" }
        return lines
    }

    /// A directory name for `lines`: 24 hex digits of their SHA-256.
    public static func key(_ lines: [String]) -> String {
        String(digest(Array(lines.joined(separator: "\n").utf8)).prefix(24))
    }

    /// The request that saves a ready guest to `directory` (a key's directory
    /// in a snapshots directory, made here if need be) when the guest says it
    /// is ready, carrying on afterwards, with its inputs recorded
    /// (`inputs(for:)`); nil if the snapshots directory cannot be made (the
    /// run goes on without saving). The directory's siblings that no run can
    /// restore any more are removed first, each path told to `removed`
    /// (`removeUnrestorable`): before the machine is built, since its threads
    /// are confined once it runs.
    public static func readyGuestRequest(savingTo directory: String, for configuration: MachineConfiguration,
                                         removed: (String) -> Void) -> SnapshotRequest? {
        let slash = directory.lastIndex(of: "/")
        let parent = slash.map { String(directory[..<$0]) } ?? "."
        let key = slash.map { String(directory[directory.index(after: $0)...]) } ?? directory
        guard makeDirectories(parent, mode: 0o755) else { return nil }
        for name in removeUnrestorable(in: parent, keeping: key, host: configuration.host) { removed(parent + "/" + name) }
        return SnapshotRequest(marker: BootMarkerPhase.guestReady.rawValue, directory: directory, thenStop: false,
                               required: false, provenance: inputs(for: configuration))
    }

    /// What a ready guest records (provenance) about the files and the CPU
    /// it was made from, so that a later save can tell whether any run can
    /// still restore it (`removeUnrestorable`): the kernel's and initrd's
    /// identities as the key has them, and the host CPU's signature.
    public static func inputs(for configuration: MachineConfiguration) -> [String: String] {
        ["kernel-file": fileIdentity(configuration.kernelPath),
         "initrd-file": configuration.initrdPath.map(fileIdentity) ?? "none",
         "host-cpu": hostCPUDigest()]
    }

    /// Before a ready guest is booted to be saved as `kept` in an image
    /// entry's `snapshotsDirectory` (or as the OCI runtime's ready guest
    /// `kept` in `bundleReadyGuests()`): removes the snapshots beside it that no run can
    /// restore again, which would otherwise keep their memory files until
    /// `skiff image rm`: made from a kernel or initrd since rebuilt or gone,
    /// on another host CPU, in another format (an older skiff), or without
    /// a record of their inputs (made before skiff kept one). Another shape
    /// of the same image (its memory, CPUs, command line) whose inputs still
    /// stand is kept: a run of that shape restores it. Half-written ones are
    /// `skiff image prune`'s (a live process may be writing one). Returns the
    /// names removed.
    public static func removeUnrestorable(in snapshotsDirectory: String, keeping kept: String, host: HostKind) -> [String] {
        let cpu = hostCPUDigest()
        var removed: [String] = []
        for name in (listDirectory(atPath: snapshotsDirectory) ?? []).sorted() where name != kept && !name.containsText(".tmp-") {
            let path = snapshotsDirectory + "/" + name
            if let loaded = try? SnapshotFiles.load(path, on: host), let kernel = loaded.state.provenance["kernel-file"],
               let initrd = loaded.state.provenance["initrd-file"], loaded.state.provenance["host-cpu"] == cpu,
               stillIdentifies(kernel), initrd == "none" || stillIdentifies(initrd) {
                continue
            }
            SnapshotFiles.removeTree(path)
            removed.append(name)
        }
        return removed
    }

    /// Whether `identity` (`fileIdentity`'s "path:dev:ino:size:mtime") is
    /// still what its path names.
    static func stillIdentifies(_ identity: String) -> Bool {
        var fields = identity.split(separator: ":", omittingEmptySubsequences: false)
        guard fields.count >= 5 else { return false }
        fields.removeLast(4)
        return fileIdentity(fields.joined(separator: ":")) == identity
    }

    /// Where the OCI runtime keeps its ready guests (one per machine shape,
    /// named by `key(machineKeyLines(...))`).
    public static func bundleReadyGuests() -> String {
        GuestArtifacts.cacheDirectory() + "/oci-ready"
    }

    /// `skiff image prune`: removes the OCI runtime's ready guests in
    /// `directory` (the next `create` of each shape boots and saves one
    /// again; a running container keeps its mapping of a removed memory file)
    /// and what a dead process half-wrote, but not a snapshot being written
    /// now. Returns the names removed and the bytes they held (allocated).
    public static func pruneBundleReadyGuests(in directory: String = bundleReadyGuests()) -> (removed: [String], bytes: Int64) {
        var removed: [String] = []
        var bytes: Int64 = 0
        for name in (listDirectory(atPath: directory) ?? []).sorted() where !name.containsText(".tmp-") || ImageStore.isOrphanedScratch(name) {
            let path = directory + "/" + name
            bytes += (try? RootDiskBuilder.measure(path).allocated) ?? 0
            SnapshotFiles.removeTree(path)
            removed.append(name)
        }
        return (removed, bytes)
    }

    /// Path, device, inode, size and modification time: a rebuilt kernel or
    /// init is another file even at the same path.
    static func fileIdentity(_ path: String) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { return path + ":missing" }
        return "\(path):\(info.st_dev):\(info.st_ino):\(info.st_size):\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
    }

    /// The host CPU's signature as snapshots record it (its SHA-256).
    static func hostCPUDigest() -> String { digest(Array(hostCPUSignature().utf8)) }

    /// The host CPU: what decides the CPUID a guest is given. On x86 the
    /// CPUID instruction's own answers (vendor; family, model and stepping;
    /// the feature leaves 1, 7, 0xD and 0x80000001; address sizes), read in
    /// a few microseconds: /proc/cpuinfo, read before, cost 60 to 110 µs of
    /// every warm `skiff run` (the kernel formats the first CPU's block).
    /// Per-CPU fields (the APIC ID in leaf 1's ebx, the topology leaves) are
    /// left out, so any CPU of the host gives the same signature. Elsewhere,
    /// /proc/cpuinfo's first processor block.
    static func hostCPUSignature() -> String {
        #if arch(x86_64)
        func cpuid(_ leaf: UInt32, _ subleaf: UInt32 = 0) -> [UInt32] {
            var registers: [UInt32] = [0, 0, 0, 0]
            registers.withUnsafeMutableBufferPointer { csystem_cpuid(leaf, subleaf, $0.baseAddress) }
            return registers
        }
        let basic = cpuid(0), extended = cpuid(0x8000_0000)
        let vendor = [basic[1], basic[3], basic[2]].flatMap { word in (0..<4).map { UInt8(truncatingIfNeeded: word >> (8 * $0)) } }
        var words = [String(decoding: vendor, as: UTF8.self)]
        func add(_ leaf: UInt32, _ subleaf: UInt32 = 0, registers: [Int]) {
            let maximum = leaf >= 0x8000_0000 ? extended[0] : basic[0]
            guard leaf <= maximum else { return }
            let values = cpuid(leaf, subleaf)
            words.append(String(leaf, radix: 16) + "." + String(subleaf) + ":" + registers.map { String(values[$0], radix: 16) }.joined(separator: ","))
        }
        add(1, registers: [0, 2, 3])
        add(7, registers: [1, 2, 3])
        add(0xD, registers: [0, 3])
        add(0xD, 1, registers: [0])
        add(0x8000_0001, registers: [2, 3])
        add(0x8000_0008, registers: [0])
        return words.joined(separator: " ")
        #else
        return cpuinfoSignature()
        #endif
    }

    /// /proc/cpuinfo's first processor block (vendor, family, model,
    /// stepping, flags). Only the first block is read: the file has one per
    /// CPU (100 KB and more on a large host).
    static func cpuinfoSignature() -> String {
        let fd = open("/proc/cpuinfo", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "unknown" }
        defer { close(fd) }
        var block: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while block.count < 1 << 16 {
            let count = chunk.withUnsafeMutableBytes { space in retryingInterrupts { read(fd, space.baseAddress, space.count) } }
            guard count > 0 else { break }
            block += chunk[..<count]
            if let end = firstBlankLine(block) { block.removeSubrange(end...); break }
        }
        let wanted = ["vendor_id", "cpu family", "model", "stepping", "flags"]
        var found: [String] = []
        for line in block.split(separator: UInt8(ascii: "\n")) {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
            let name = Substring(String(decoding: line[..<colon], as: UTF8.self)).trimmed(" \t")
            if wanted.contains(name) { found.append(String(decoding: line, as: UTF8.self)) }
            if found.count == wanted.count { break }
        }
        return found.joined(separator: "\n")
    }

    /// Where the first "\n\n" starts, if any.
    private static func firstBlankLine(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 2 else { return nil }
        return (0..<bytes.count - 1).first { bytes[$0] == 10 && bytes[$0 + 1] == 10 }
    }

    static func digest(_ bytes: [UInt8]) -> String {
        var hasher = SHA256()
        hasher.update(bytes)
        return hasher.finalize()
    }
}

extension Substring {
    func trimmed(_ set: String) -> String {
        var text = self
        while let first = text.first, set.contains(first) { text = text.dropFirst() }
        while let last = text.last, set.contains(last) { text = text.dropLast() }
        return String(text)
    }
}
