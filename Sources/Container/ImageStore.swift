import Glibc
import Host
import Images
import JSON
import SkiffKit

/// Root disks built from images, cached by the image's content address
/// (manifest digest, or docker image ID) so that a second `skiff run` of the
/// same image boots at once. Lives in `$SKIFF_IMAGE_DIR`, else
/// `$SKIFF_CACHE_DIR/images` (default ~/.cache/skiff/images), one directory per image:
/// `rootfs.ext4` and `image.json` (what `skiff image ls` shows, and the
/// image's users, so that `-u name` resolves without unpacking again).
public struct ImageStore: Sendable {
    public let directory: String
    /// What unpacking one image may write, replacing `UnpackBudget`'s default
    /// (a multiple of the compressed size): --max-image-size, SKIFF_MAX_IMAGE_SIZE.
    public var maxImageSize: Int64?

    public init(directory: String, maxImageSize: Int64? = nil) {
        self.directory = directory
        self.maxImageSize = maxImageSize
    }

    /// `$SKIFF_IMAGE_DIR`, else the images directory in Skiff's cache; the
    /// unpack limit from `$SKIFF_MAX_IMAGE_SIZE` (like 10G) when set.
    public static func standard() -> ImageStore {
        let limit = getenv("SKIFF_MAX_IMAGE_SIZE").flatMap { UnpackBudget.parseSize(String(cString: $0)) }
        if let directory = getenv("SKIFF_IMAGE_DIR").map({ String(cString: $0) }), !directory.isEmpty {
            return ImageStore(directory: directory, maxImageSize: limit)
        }
        return ImageStore(directory: GuestArtifacts.cacheDirectory() + "/images", maxImageSize: limit)
    }

    /// What the cache knows of one image.
    public struct Entry: Codable, Sendable, Equatable {
        public var id: String
        public var source: String
        public var created: Double  // seconds since the epoch
        public var layerCount: Int
        public var treeBytes: Int64
        public var diskBytes: Int64
        public var unpackSeconds: Double
        public var diskSeconds: Double
        public var users: UserDatabase

        public var shortID: String { String(id.split(separator: ":").last?.prefix(12) ?? "") }
    }

    /// A root disk ready to attach.
    public struct RootDisk: Sendable {
        public let path: String
        public let entry: Entry
        /// False when the cache already had it.
        public let built: Bool
    }

    /// The cached disk for `source`, built first if the cache lacks it.
    public func rootDisk(for source: ImageSource) throws(MachineError) -> RootDisk {
        let hex = try Self.hex(of: source.id)
        let entryDirectory = "\(directory)/\(hex)"
        if let entry = load(entryDirectory) { return RootDisk(path: entryDirectory + "/rootfs.ext4", entry: entry, built: false) }

        try makeDirectory(directory)
        // One builder at a time; whoever waited finds the disk already built.
        let lock = try lockFile()
        defer { close(lock) }
        if let entry = load(entryDirectory) { return RootDisk(path: entryDirectory + "/rootfs.ext4", entry: entry, built: false) }

        let scratch = "\(directory)/.build-\(hex)-\(getpid())"
        removeTree(atPath: scratch)
        try makeDirectory(scratch)
        // Removed on every way out: return, error, and a shutdown signal.
        let signals = ShutdownSignals.register { _ in
            removeTree(atPath: scratch)
            return false
        }
        defer {
            signals.cancel()
            removeTree(atPath: scratch)
        }
        let result = try RootDiskBuilder.build(source, scratch: scratch, diskPath: scratch + "/rootfs.ext4", budget: budget(for: source))
        let entry = Entry(id: source.id, source: source.reference.description, created: Self.now(),
                          layerCount: source.layerCount, treeBytes: result.treeBytes, diskBytes: result.diskBytes,
                          unpackSeconds: result.unpackSeconds, diskSeconds: result.diskSeconds, users: result.users)
        let finished = "\(directory)/.done-\(hex)-\(getpid())"
        do throws(MachineError) {
            guard mkdir(finished, 0o755) == 0 else { throw .system("mkdir \(finished)", errno) }
            guard rename(scratch + "/rootfs.ext4", finished + "/rootfs.ext4") == 0 else { throw .system("rename \(scratch)/rootfs.ext4", errno) }
            let bytes: [UInt8]
            do { bytes = try JSONCodec.encode(entry, pretty: true) } catch { throw .invalidConfiguration("\(error)") }
            try Self.writeNewFile(finished + "/image.json", bytes)
        } catch {
            removeTree(atPath: finished)
            throw .invalidConfiguration("cannot store the root disk in \(directory): \(error)")
        }
        guard rename(finished, entryDirectory) == 0 else {
            let error = errno
            removeTree(atPath: finished)
            throw .system("rename \(finished) to \(entryDirectory)", error)
        }
        return RootDisk(path: entryDirectory + "/rootfs.ext4", entry: entry, built: true)
    }

    /// The image's unpacked tree (`skiff bench` hands it to an OCI runtime as
    /// the container's root), kept next to its disk and built on first use.
    public func unpackedTree(for source: ImageSource) throws(MachineError) -> String {
        let disk = try rootDisk(for: source)
        let entryDirectory = String(disk.path.dropLast("/rootfs.ext4".count))
        let tree = entryDirectory + "/tree"
        if access(tree + "/.skiff-complete", F_OK) == 0 { return tree + "/rootfs" }
        let lock = try lockFile()
        defer { close(lock) }
        if access(tree + "/.skiff-complete", F_OK) == 0 { return tree + "/rootfs" }
        let scratch = entryDirectory + "/.tree-\(getpid())"
        removeTree(atPath: scratch)
        try makeDirectory(scratch)
        do {
            _ = try RootDiskBuilder.unpack(source, scratch: scratch, into: scratch + "/rootfs", budget: budget(for: source))
        } catch {
            removeTree(atPath: scratch)
            throw error
        }
        for name in listDirectory(atPath: scratch) ?? [] where name != "rootfs" {
            removeTree(atPath: scratch + "/" + name)
        }
        try Self.writeNewFile(scratch + "/.skiff-complete", [])
        removeTree(atPath: tree)
        guard rename(scratch, tree) == 0 else { throw .system("rename \(scratch)", errno) }
        return tree + "/rootfs"
    }

    func budget(for source: ImageSource) -> UnpackBudget {
        UnpackBudget.forImage(compressedBytes: source.layerBytes, override: maxImageSize)
    }

    /// Every cached image, newest first.
    public func list() -> [Entry] {
        let names = listDirectory(atPath: directory) ?? []
        return names.filter { !$0.hasPrefix(".") }.compactMap { load("\(directory)/\($0)") }
            .sorted { $0.created > $1.created }
    }

    /// Removes the images whose ID starts with `prefix` (with or without
    /// "sha256:"); it must name exactly one. A disk a running VM holds is refused.
    @discardableResult
    public func remove(_ prefix: String) throws(MachineError) -> Entry {
        let wanted = prefix.hasPrefix("sha256:") ? String(prefix.dropFirst(7)) : prefix
        guard !wanted.isEmpty, wanted.allSatisfy(\.isHexDigit) else {
            throw .invalidConfiguration("'\(prefix)' is not an image ID (see skiff image ls)")
        }
        let matches = list().filter { $0.id.dropFirst(7).hasPrefix(wanted.lowercased()) }
        guard matches.count == 1, let entry = matches.first else {
            throw .invalidConfiguration(matches.isEmpty ? "no cached image \(prefix)" : "'\(prefix)' matches \(matches.count) images; give more of the ID")
        }
        try removeEntry(entry)
        return entry
    }

    /// What `prune` removed and the space it gave back.
    public struct PruneReport: Sendable {
        public var removed: [Entry] = []
        /// Scratch directories that a killed or crashed skiff left behind.
        public var leftovers: [String] = []
        /// Allocated bytes (st_blocks), not apparent sizes: sparse disks count as stored.
        public var reclaimedBytes: Int64 = 0
    }

    /// Removes every cached image not in use, and the scratch (half-built
    /// disks, unfinished removals) of skiff processes that no longer exist.
    public func prune() throws(MachineError) -> PruneReport {
        var report = PruneReport()
        // A store never used: nothing cached, nothing to lock.
        guard access(directory, F_OK) == 0 else { return report }
        for entry in list() {
            guard let hex = try? Self.hex(of: entry.id) else { continue }
            let size = (try? RootDiskBuilder.measure("\(directory)/\(hex)").allocated) ?? 0
            do { try removeEntry(entry) } catch { continue }
            report.removed.append(entry)
            report.reclaimedBytes += size
        }
        let lock = try lockFile()
        defer { close(lock) }
        // Snapshots half-written by a process that died, in entries still in use.
        for entry in list() {
            guard let hex = try? Self.hex(of: entry.id) else { continue }
            let snapshots = "\(directory)/\(hex)/snapshots"
            for name in listDirectory(atPath: snapshots) ?? [] where Self.isOrphanedScratch(name) {
                SnapshotFiles.removeTree(snapshots + "/" + name)
                report.leftovers.append("\(hex.prefix(12))/snapshots/\(name)")
            }
        }
        for name in listDirectory(atPath: directory) ?? [] {
            guard Self.isOrphanedScratch(name) else { continue }
            let path = "\(directory)/\(name)"
            report.reclaimedBytes += (try? RootDiskBuilder.measure(path).allocated) ?? 0
            removeTree(atPath: path)
            report.leftovers.append(name)
        }
        return report
    }

    /// `.build-HEX-PID`, `.done-HEX-PID`, `.remove-HEX-PID` (and a snapshot's
    /// `KEY.tmp-PID`) of a PID that is gone.
    static func isOrphanedScratch(_ name: String) -> Bool {
        guard [".build-", ".done-", ".remove-"].contains(where: { name.hasPrefix($0) }) || name.containsText(".tmp-"),
              let dash = name.lastIndex(of: "-"), let pid = pid_t(name[name.index(after: dash)...]), pid > 0 else { return false }
        return kill(pid, 0) != 0 && errno == ESRCH
    }

    private func removeEntry(_ entry: Entry) throws(MachineError) {
        let hex = try Self.hex(of: entry.id)
        let entryDirectory = "\(directory)/\(hex)"
        let lock = try lockFile()
        defer { close(lock) }
        // A running VM holds a shared lock on its disk (DiskImage); ours must be exclusive.
        let disk = open(entryDirectory + "/rootfs.ext4", O_RDONLY | O_CLOEXEC)
        if disk >= 0 {
            defer { close(disk) }
            guard flock(disk, LOCK_EX | LOCK_NB) == 0 else {
                throw .invalidConfiguration("image \(entry.shortID) is in use by a running VM")
            }
        }
        let doomed = "\(directory)/.remove-\(hex)-\(getpid())"
        guard rename(entryDirectory, doomed) == 0 else { throw .system("rename \(entryDirectory)", errno) }
        removeTree(atPath: doomed)
    }

    private func load(_ entryDirectory: String) -> Entry? {
        guard access(entryDirectory + "/rootfs.ext4", R_OK) == 0,
              let data = try? readRegularFile(entryDirectory + "/image.json", limit: 1 << 20) else { return nil }
        return try? JSONCodec.decode(Entry.self, from: data)
    }

    /// Seconds since the epoch, as `Entry.created` records them.
    static func now() -> Double {
        let time = WallClock.now()
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    /// Creates `path` (it must not exist) holding `bytes`.
    static func writeNewFile(_ path: String, _ bytes: [UInt8]) throws(MachineError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .system("create \(path)", errno) }
        defer { close(fd) }
        if let error = bytes.withUnsafeBytes({ writeAll(fd, $0) }) { throw .system("write \(path)", error) }
    }

    private func lockFile() throws(MachineError) -> Int32 {
        let path = directory + "/.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .unreadable(path: path, errno: errno) }
        guard retryingInterrupts({ flock(fd, LOCK_EX) }) == 0 else {
            let error = errno
            close(fd)
            throw .system("flock \(path)", error)
        }
        return fd
    }

    private func makeDirectory(_ path: String) throws(MachineError) {
        guard makeDirectories(path, mode: 0o755) else {
            throw .invalidConfiguration("cannot create \(path): \(String(cString: strerror(errno)))")
        }
    }

    static func hex(of id: String) throws(MachineError) -> String {
        let parts = id.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, parts[0] == "sha256", parts[1].count == 64, parts[1].allSatisfy(\.isHexDigit) else {
            throw .image(.invalidLayout("unsupported image digest '\(id)'"))
        }
        return String(parts[1])
    }
}
