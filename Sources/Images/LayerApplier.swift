import CArchiveLazy
import Glibc
import Host

/// Applies image layers, in order, to a root directory as the OCI image spec
/// says: regular files, directories, symlinks, hard links, devices and FIFOs
/// with their modes, owners, mtimes and extended attributes; `.wh.NAME`
/// deletes NAME from the layers below; `.wh..wh..opq` empties its directory of
/// what the layers below put there.
///
/// Containment: every path is resolved by `RootDirectory`, which cannot leave
/// the root; a `..` that climbs above the root, or a hard link to something
/// outside it, is refused with an error naming the layer and the entry. Files
/// are created with O_NOFOLLOW | O_EXCL after removing whatever was in the way,
/// so an earlier symlink is replaced, never written through.
public struct LayerApplier {
    /// What one layer contained.
    public struct Statistics: Equatable, Sendable {
        public var files = 0, directories = 0, symlinks = 0, hardLinks = 0, specialFiles = 0
        public var whiteouts = 0, opaqueDirectories = 0, bytes = 0
    }

    enum FileType {
        static let mask: UInt32 = 0o170000
        static let regular: UInt32 = 0o100000, directory: UInt32 = 0o040000, symlink: UInt32 = 0o120000
        static let character: UInt32 = 0o020000, block: UInt32 = 0o060000, fifo: UInt32 = 0o010000, socket: UInt32 = 0o140000
    }

    public let root: RootDirectory
    /// chown needs privilege; without it, files keep the unpacking user's ids.
    public let preservesOwnership: Bool
    /// What the layers applied through this applier may write, together.
    public let budget: UnpackBudget

    public init(root: RootDirectory, budget: UnpackBudget = UnpackBudget(maxBytes: UnpackBudget.floor)) {
        self.root = root
        self.preservesOwnership = geteuid() == 0
        self.budget = budget
    }

    /// Applies the layer archive at `path` (tar, tar+gzip or tar+zstd; detected
    /// from its content). `name` identifies the layer in errors (its digest).
    @discardableResult
    public func apply(layerAt path: String, name: String) throws(ImageError) -> Statistics {
        let reader = try ArchiveReader(path: path) { .invalidArchive(layer: name, reason: $0) }
        let archive = reader.handle
        var layer = LayerState(name: name)
        try reader.forEachEntry(failure: { .invalidArchive(layer: name, reason: $0) }) { entry throws(ImageError) in
            try applyEntry(entry, archive, &layer)
        }
        // Directory times last: adding entries to a directory changes its mtime.
        for (components, time) in layer.directoryTimes.reversed() {
            try? withParent(components, layer.name, create: false) { parent, base in
                var times = [timespec(tv_sec: time, tv_nsec: 0), timespec(tv_sec: time, tv_nsec: 0)]
                _ = utimensat(parent, base, &times, AT_SYMLINK_NOFOLLOW)
            }
        }
        return layer.statistics
    }

    struct LayerState {
        let name: String
        var statistics = Statistics()
        /// Paths this layer created: an opaque marker spares them.
        var created: Set<[String]> = []
        var directoryTimes: [([String], Int)] = []
    }

    private func applyEntry(_ entry: OpaquePointer, _ archive: OpaquePointer, _ layer: inout LayerState) throws(ImageError) {
        guard let rawPath = skiff_archive_entry_pathname(entry).map({ String(cString: $0) }) else {
            throw .invalidArchive(layer: layer.name, reason: "an entry without a path")
        }
        guard let components = RootDirectory.components(of: rawPath) else {
            throw .escapesRoot(layer: layer.name, path: rawPath)
        }
        guard let base = components.last else { return } // the root itself: nothing to create
        try budget.admitEntry(depth: components.count, layer: layer.name, path: rawPath)
        let directory = Array(components.dropLast())

        if base == ".wh..wh..opq" {
            layer.statistics.opaqueDirectories += 1
            try emptyDirectory(directory, sparing: layer.created, layer.name, rawPath)
            return
        }
        if base.hasPrefix(".wh.") {
            let victim = directory + [String(base.dropFirst(4))]
            guard victim.last != "." && victim.last != ".." && !(victim.last ?? "").isEmpty else {
                throw .unsafeEntry(layer: layer.name, path: rawPath, reason: "whiteout of no name")
            }
            layer.statistics.whiteouts += 1
            try withParent(victim, layer.name, create: false, missingIsFine: true) { parent, name throws(ImageError) in
                try removeTree(parent, name, path: rawPath)
            }
            return
        }

        let mode = UInt32(skiff_archive_entry_mode(entry))
        let permissions = mode_t(mode & 0o7777)
        let uid = uid_t(truncatingIfNeeded: skiff_archive_entry_uid(entry))
        let gid = gid_t(truncatingIfNeeded: skiff_archive_entry_gid(entry))
        let mtime = Int(skiff_archive_entry_mtime(entry))
        layer.created.insert(components)

        if let linkTarget = skiff_archive_entry_hardlink(entry).map({ String(cString: $0) }) {
            guard let targetComponents = RootDirectory.components(of: linkTarget), !targetComponents.isEmpty else {
                throw .escapesRoot(layer: layer.name, path: "\(rawPath) (hard link to \(linkTarget))")
            }
            try withParent(targetComponents, layer.name, create: false) { targetParent, targetName throws(ImageError) in
                try withParent(components, layer.name, create: true) { parent, name throws(ImageError) in
                    try removeTree(parent, name, path: rawPath)
                    guard linkat(targetParent, targetName, parent, name, 0) == 0 else {
                        throw .io(path: rawPath, operation: "hard link to \(linkTarget):", errno: errno)
                    }
                }
            }
            layer.statistics.hardLinks += 1
            return
        }

        switch mode & FileType.mask {
        case FileType.directory:
            try withParent(components, layer.name, create: true) { parent, name throws(ImageError) in
                var info = stat()
                if fstatat(parent, name, &info, AT_SYMLINK_NOFOLLOW) == 0 && info.st_mode & S_IFMT != S_IFDIR {
                    try removeTree(parent, name, path: rawPath)
                }
                if mkdirat(parent, name, permissions) != 0 && errno != EEXIST {
                    throw .io(path: rawPath, operation: "mkdir", errno: errno)
                }
                applyOwnership(parent, name, uid, gid)
                fchmodat(parent, name, permissions, 0)
                applyExtendedAttributes(entry, parent, name)
            }
            layer.directoryTimes.append((components, mtime))
            layer.statistics.directories += 1
        case FileType.regular:
            try withParent(components, layer.name, create: true) { parent, name throws(ImageError) in
                try removeTree(parent, name, path: rawPath)
                let fd = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
                guard fd >= 0 else { throw .io(path: rawPath, operation: "create", errno: errno) }
                defer { close(fd) }
                layer.statistics.bytes += try copyData(archive, entry, to: fd, layer.name, rawPath)
                if preservesOwnership { fchown(fd, uid, gid) }
                fchmod(fd, permissions) // after chown, which clears set-id bits
                applyExtendedAttributes(entry, parent, name, fd: fd)
                var times = [timespec(tv_sec: mtime, tv_nsec: 0), timespec(tv_sec: mtime, tv_nsec: 0)]
                futimens(fd, &times)
            }
            layer.statistics.files += 1
        case FileType.symlink:
            let target = skiff_archive_entry_symlink(entry).map { String(cString: $0) } ?? ""
            guard !target.isEmpty else { throw .unsafeEntry(layer: layer.name, path: rawPath, reason: "symlink without a target") }
            try withParent(components, layer.name, create: true) { parent, name throws(ImageError) in
                try removeTree(parent, name, path: rawPath)
                // The target is stored as it is: it is resolved inside the root whenever it is used.
                guard symlinkat(target, parent, name) == 0 else { throw .io(path: rawPath, operation: "symlink", errno: errno) }
                if preservesOwnership { fchownat(parent, name, uid, gid, AT_SYMLINK_NOFOLLOW) }
                var times = [timespec(tv_sec: mtime, tv_nsec: 0), timespec(tv_sec: mtime, tv_nsec: 0)]
                utimensat(parent, name, &times, AT_SYMLINK_NOFOLLOW)
            }
            layer.statistics.symlinks += 1
        case FileType.character, FileType.block, FileType.fifo:
            try withParent(components, layer.name, create: true) { parent, name throws(ImageError) in
                try removeTree(parent, name, path: rawPath)
                let device = dev_t(skiff_archive_entry_rdev(entry))
                guard mknodat(parent, name, mode_t(mode & (FileType.mask | 0o7777)), device) == 0 else {
                    // Device nodes need privilege; the guest's devtmpfs provides the usual ones anyway.
                    if errno == EPERM { return }
                    throw .io(path: rawPath, operation: "mknod", errno: errno)
                }
                applyOwnership(parent, name, uid, gid)
                fchmodat(parent, name, permissions, 0)
            }
            layer.statistics.specialFiles += 1
        default:
            break // sockets and unknown types: nothing an image needs
        }
    }

    private func applyOwnership(_ parent: Int32, _ name: String, _ uid: uid_t, _ gid: gid_t) {
        if preservesOwnership { fchownat(parent, name, uid, gid, AT_SYMLINK_NOFOLLOW) }
    }

    /// Copies extended attributes (security.capability, say) onto the new file or directory.
    private func applyExtendedAttributes(_ entry: OpaquePointer, _ parent: Int32, _ name: String, fd: Int32? = nil) {
        guard skiff_archive_entry_xattr_reset(entry) > 0 else { return }
        let target = fd ?? openat(parent, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard target >= 0 else { return }
        defer { if fd == nil { close(target) } }
        var key: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while skiff_archive_entry_xattr_next(entry, &key, &value, &size) == ARCHIVE_OK {
            if let key { fsetxattr(target, key, value, size, 0) }
        }
    }

    /// Writes the entry's data blocks at their offsets: a sparse entry's holes
    /// stay holes (and cost nothing against the budget), and the file ends at
    /// the entry's size even when it ends in a hole. Returns the data bytes.
    private func copyData(_ archive: OpaquePointer, _ entry: OpaquePointer, to fd: Int32,
                          _ layer: String, _ path: String) throws(ImageError) -> Int {
        var total = 0
        while true {
            var block: UnsafeRawPointer?
            var size = 0
            var offset: Int64 = 0
            let status = skiff_archive_read_data_block(archive, &block, &size, &offset)
            if status == ARCHIVE_EOF { break }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN, offset >= 0 else {
                throw .invalidArchive(layer: layer, reason: "\(path): \(archiveError(archive))")
            }
            guard size > 0, let block else { continue }
            try budget.spend(size, layer: layer, path: path)
            if let error = transferAll(size, { done in pwrite(fd, block + done, size - done, off_t(offset) + off_t(done)) }) {
                throw .io(path: path, operation: "write", errno: error)
            }
            total += size
        }
        if skiff_archive_entry_size_is_set(entry) != 0 {
            let size = skiff_archive_entry_size(entry)
            // A sparse file's holes cost no data, but the disk is sized by what files claim.
            guard size <= budget.maxBytes else {
                throw .tooLarge(layer: layer, path: path, reason: "a \(size)-byte file; the image may write at most \(budget.maxBytes >> 20) MiB")
            }
            guard size >= 0, ftruncate(fd, off_t(size)) == 0 else { throw .io(path: path, operation: "truncate", errno: errno) }
        }
        return total
    }

    /// Runs `body` with the resolved parent directory of `components` and the final name.
    private func withParent(_ components: [String], _ layer: String, create: Bool, missingIsFine: Bool = false,
                            _ body: (Int32, String) throws(ImageError) -> Void) throws(ImageError) {
        let path = "/" + components.joined(separator: "/")
        let parent: Int32, name: String
        do {
            (parent, name) = try root.parent(of: components, create: create)
        } catch {
            switch error {
            case .isRoot: throw .unsafeEntry(layer: layer, path: path, reason: "names the root itself")
            case .tooManySymlinks: throw .unsafeEntry(layer: layer, path: path, reason: "too many levels of symbolic links")
            case let .notADirectory(component):
                if missingIsFine { return }
                throw .unsafeEntry(layer: layer, path: path, reason: "'\(component)' is not a directory")
            case let .system(operation, code):
                if missingIsFine && code == ENOENT { return }
                throw .io(path: path, operation: operation, errno: code)
            }
        }
        defer { close(parent) }
        try body(parent, name)
    }

    /// Removes the children of `directory` that this layer did not create.
    private func emptyDirectory(_ directory: [String], sparing created: Set<[String]>, _ layer: String, _ path: String) throws(ImageError) {
        let fd: Int32
        do { fd = try root.resolveDirectory(directory, create: true) } catch {
            throw .unsafeEntry(layer: layer, path: path, reason: "its directory cannot be resolved inside the root")
        }
        defer { close(fd) }
        for child in listDirectory(fd) ?? [] where !created.contains(directory + [child]) {
            try removeTree(fd, child, path: path)
        }
    }
}

/// Removes `name` in `parent` and, if it is a directory, everything in it.
/// Never follows a symlink: a link is removed, not what it points to.
func removeTree(_ parent: Int32, _ name: String, path: String) throws(ImageError) {
    if let failure = Host.removeTree(in: parent, name) { throw .io(path: path, operation: failure.operation, errno: failure.errno) }
}
