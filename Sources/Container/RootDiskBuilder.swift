import SkiffKit
import Glibc
import Host
import Images

/// Turns an image's layers into a read-only ext4 disk: layers applied in
/// order into a scratch tree (whiteouts and containment by `LayerApplier`),
/// then `mkfs.ext4 -d` copies the tree into a file sized to fit.
///
/// No journal (the guest mounts it read-only; a run's writes go to a tmpfs
/// overlay) and no reserved blocks, so the disk is the tree plus metadata.
public struct RootDiskBuilder {
    struct Result {
        var users: UserDatabase
        var treeBytes: Int64
        var inodes: Int
        var diskBytes: Int64
        var unpackSeconds: Double
        var diskSeconds: Double
        var layerStatistics: [LayerApplier.Statistics]
    }

    /// Builds `diskPath` from `source`; `scratch` is an empty directory to work in.
    static func build(_ source: ImageSource, scratch: String, diskPath: String, budget: UnpackBudget) throws(MachineError) -> Result {
        let unpackStart = MonotonicClock.now()
        let rootPath = scratch + "/rootfs"
        let (root, statistics) = try unpack(source, scratch: scratch, into: rootPath, budget: budget)
        let users = UserDatabase(passwd: String(decoding: root.readFile("etc/passwd") ?? [], as: UTF8.self),
                                 group: String(decoding: root.readFile("etc/group") ?? [], as: UTF8.self))
        let unpackSeconds = Double(MonotonicClock.now() - unpackStart) / 1e9

        let diskStart = MonotonicClock.now()
        let (treeBytes, inodes, diskBytes) = try makeDisk(fromTree: rootPath, at: diskPath)
        return Result(users: users, treeBytes: treeBytes, inodes: inodes, diskBytes: diskBytes,
                      unpackSeconds: unpackSeconds, diskSeconds: Double(MonotonicClock.now() - diskStart) / 1e9,
                      layerStatistics: statistics)
    }

    /// Copies the tree at `rootPath` into a new ext4 image at `diskPath`
    /// (an OCI bundle's rootfs, or an unpacked image); returns the tree's
    /// bytes and inodes and the disk's size.
    public static func makeDisk(fromTree rootPath: String, at diskPath: String) throws(MachineError) -> (treeBytes: Int64, inodes: Int, diskBytes: Int64) {
        let tree = try measure(rootPath)
        let diskBytes = size(forTree: tree.bytes, inodes: tree.inodes)
        let inodeCount = tree.inodes + tree.inodes / 4 + 256
        let mkfs = try HostCommand.run([
            mkfsPath(), "-q", "-F", "-t", "ext4", "-O", "^has_journal", "-m", "0", "-b", "4096", "-I", "256",
            "-N", "\(inodeCount)", "-L", "skiff-root", "-d", rootPath, diskPath, "\(diskBytes / 1024)k",
        ])
        guard mkfs.status == 0 else {
            throw .image(.unreadable(path: diskPath, reason: "mkfs.ext4 -d failed with status \(mkfs.status): \(mkfs.output)"))
        }
        return (tree.bytes, tree.inodes, diskBytes)
    }

    /// Applies `source`'s layers, in order, into a new tree at `rootPath`
    /// (`scratch` holds what reading the layers needs, such as a docker archive's tars).
    static func unpack(_ source: ImageSource, scratch: String, into rootPath: String, budget: UnpackBudget)
        throws(MachineError) -> (RootDirectory, [LayerApplier.Statistics]) {
        do {
            let layers = try source.layers(scratch: scratch)
            let root = try RootDirectory(path: rootPath)
            let applier = LayerApplier(root: root, budget: budget)
            var statistics: [LayerApplier.Statistics] = []
            for layer in layers { statistics.append(try applier.apply(layerAt: layer.path, name: layer.name)) }
            return (root, statistics)
        } catch {
            throw .image(error)
        }
    }

    /// The disk size for a tree: its blocks, a quarter more for ext4's
    /// metadata and directories' growth, 256 bytes per inode, and 16 MiB of
    /// headroom, in whole MiB.
    static func size(forTree bytes: Int64, inodes: Int) -> Int64 {
        let raw = bytes + bytes / 4 + Int64(inodes + inodes / 4 + 256) * 256 + (16 << 20)
        return (raw + (1 << 20) - 1) / (1 << 20) * (1 << 20)
    }

    /// What a tree under `path` holds, without following symlinks; hard links count once.
    struct TreeSize {
        /// Sizes rounded up to 4 KiB blocks, as ext4 will store the files.
        var bytes: Int64 = 4096
        var inodes = 1
        /// What the host's file system has allocated (st_blocks): holes cost nothing.
        var allocated: Int64 = 0
    }

    static func measure(_ path: String) throws(MachineError) -> TreeSize {
        let top = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard top >= 0 else { throw .system("open \(path)", errno) }
        var totals = TreeSize()
        var seen = Set<UInt64>()
        try walk(top, path, &totals, &seen)
        return totals
    }

    /// Adds what directory `fd` holds to `totals`; closes `fd`.
    private static func walk(_ fd: Int32, _ path: String, _ totals: inout TreeSize,
                             _ seen: inout Set<UInt64>) throws(MachineError) {
        defer { close(fd) }
        guard let names = listDirectory(fd) else { throw .system("opendir \(path)", errno) }
        for name in names {
            var info = stat()
            guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { throw .system("stat \(path)/\(name)", errno) }
            let isDirectory = info.st_mode & S_IFMT == S_IFDIR
            if !isDirectory && info.st_nlink > 1 && !seen.insert(UInt64(info.st_ino)).inserted { continue }
            totals.inodes += 1
            totals.bytes += (max(Int64(info.st_size), 0) + 4095) / 4096 * 4096
            totals.allocated += Int64(info.st_blocks) * 512
            if isDirectory {
                let child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard child >= 0 else { throw .system("open \(path)/\(name)", errno) }
                try walk(child, path + "/" + name, &totals, &seen)
            }
        }
    }

    /// mkfs.ext4 lives in /sbin, which a non-root PATH may lack.
    static func mkfsPath() throws(MachineError) -> String {
        for candidate in ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4", "/usr/bin/mkfs.ext4"] where access(candidate, X_OK) == 0 {
            return candidate
        }
        throw .invalidConfiguration("mkfs.ext4 not found: install e2fsprogs (scripts/build-guest.sh does, as root)")
    }
}
