import Container
import Glibc
import Host

/// A bind-mounted directory, copied into the guest (a shared file system is
/// a later step): its subdirectories and regular files, walked with openat
/// and O_NOFOLLOW so that nothing outside the tree is read; symbolic links,
/// devices, FIFOs and sockets are left out. All binds of a container share one
/// budget, which keeps the hand-over small and inside the guest init's 256
/// records; a tree that does not fit is not copied at all (never half).
enum BoundTree {
    struct Budget {
        static let maximumEntries = 192
        static let maximumBytes = 4 << 20
        static let maximumDepth = 32
        var entries = 0
        var bytes = 0

        /// One more entry of `bytes`, if it fits.
        mutating func take(bytes count: Int) -> Bool {
            guard entries < Self.maximumEntries, count >= 0, count <= BundleConfiguration.maximumBoundFile,
                  bytes + count <= Self.maximumBytes else { return false }
            entries += 1
            bytes += count
            return true
        }
    }

    /// `source`'s tree as files under `destination` (itself first), or nil
    /// when it cannot be read whole or does not fit what is left of `budget`
    /// (which is then unchanged).
    static func copy(_ source: String, to destination: String, budget: inout Budget) -> [GuestFile]? {
        let fd = open(source, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var trial = budget
        var files: [GuestFile] = []
        guard walk(fd, destination, depth: 0, budget: &trial, into: &files) else { return nil }
        budget = trial
        return files
    }

    private static func walk(_ directory: Int32, _ path: String, depth: Int, budget: inout Budget, into files: inout [GuestFile]) -> Bool {
        var info = stat()
        guard depth < Budget.maximumDepth, fstat(directory, &info) == 0, budget.take(bytes: 0) else { return false }
        files.append(GuestFile(path: path, mode: UInt32(info.st_mode & 0o7777), bytes: nil))
        guard let names = listDirectory(directory) else { return false }
        let prefix = path == "/" ? "/" : path + "/"
        for name in names.sorted() where !name.contains(":") {
            guard fstatat(directory, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { return false }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                let child = openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard child >= 0 else { return false }
                defer { close(child) }
                guard walk(child, prefix + name, depth: depth + 1, budget: &budget, into: &files) else { return false }
            case S_IFREG:
                guard budget.take(bytes: Int(info.st_size)),
                      let bytes = try? readRegularFile(name, in: directory, followLinks: false, limit: BundleConfiguration.maximumBoundFile)
                else { return false }
                files.append(GuestFile(path: prefix + name, mode: UInt32(info.st_mode & 0o7777), bytes: bytes))
            default:
                continue // links, devices, FIFOs, sockets: not copied
            }
        }
        return true
    }
}
