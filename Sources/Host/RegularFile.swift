import Glibc

/// Why a whole-file read was refused; the caller adds the path and its own wording.
public enum RegularFileError: Error, Equatable {
    /// open, fstat or read failed with this errno.
    case unreadable(errno: Int32)
    /// Not a regular file: a directory, FIFO, device or socket (`fileKind`'s words).
    case notRegularFile(kind: String)
    /// Larger than the caller's limit.
    case tooLarge(size: Int64)
}

/// Reads a whole regular file of at most `limit` bytes. Opened without
/// blocking (a FIFO cannot hang the open) and sized by fstat before a byte is
/// read, so a huge or endless input costs nothing but the error. The one
/// such routine: the VMM's kernel and initrd, cached guest records, OCI
/// bundle configs and monitor specs all come through here.
///
/// `directory`: `path` is relative to that open directory (openat), and
/// `followLinks: false` refuses a symbolic link as the last component
/// (a walk of a tree that must not lead out of it).
public func readRegularFile(_ path: String, in directory: Int32 = AT_FDCWD, followLinks: Bool = true,
                            limit: Int) throws(RegularFileError) -> [UInt8] {
    let fd = openat(directory, path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (followLinks ? 0 : O_NOFOLLOW))
    guard fd >= 0 else { throw .unreadable(errno: errno) }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw .unreadable(errno: errno) }
    guard info.st_mode & S_IFMT == S_IFREG else { throw .notRegularFile(kind: fileKind(info.st_mode)) }
    guard info.st_size <= limit else { throw .tooLarge(size: Int64(info.st_size)) }
    var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
    let failure = bytes.withUnsafeMutableBytes { space in
        transferAll(space.count) { done in read(fd, space.baseAddress! + done, space.count - done) }
    }
    if let failure { throw .unreadable(errno: failure) }
    return bytes
}

/// Replaces `path` with a file of `bytes` and `mode`, atomically: written
/// beside it (`path.tmp-PID`), synced first if `durable` (a crash then
/// leaves the old file or the new one, never a torn one), and renamed over
/// it. Returns what failed and its errno (the temporary removed), nil once
/// `path` holds `bytes`. The one such routine: container records, source
/// stamps.
public func replaceFile(_ path: String, with bytes: [UInt8], mode: mode_t, durable: Bool) -> (operation: String, errno: Int32)? {
    let temporary = path + ".tmp-\(getpid())"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { return ("open \(temporary)", errno) }
    var failure: (operation: String, errno: Int32)?
    if let error = bytes.withUnsafeBytes({ writeAll(fd, $0) }) {
        failure = ("write \(temporary)", error)
    } else if durable, fsync(fd) != 0 {
        failure = ("fsync \(temporary)", errno)
    }
    close(fd)
    if failure == nil, rename(temporary, path) != 0 { failure = ("rename \(temporary)", errno) }
    if failure != nil { unlink(temporary) }
    return failure
}

/// What kind of file `mode` describes, for messages.
public func fileKind(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFDIR: return "a directory"
    case S_IFIFO: return "a FIFO"
    case S_IFCHR: return "a character device"
    case S_IFBLK: return "a block device"
    case S_IFSOCK: return "a socket"
    case S_IFLNK: return "a symbolic link"
    default: return "a regular file"
    }
}

/// The running executable's absolute path (/proc/self/exe), or nil where
/// /proc is not mounted. Used to find sibling executables (skiff-bench,
/// the monitor) and the source tree a development build runs from.
public func executablePath() -> String? {
    var buffer = [UInt8](repeating: 0, count: 4096)
    let length = buffer.withUnsafeMutableBufferPointer { space in
        space.baseAddress!.withMemoryRebound(to: CChar.self, capacity: space.count) { readlink("/proc/self/exe", $0, space.count - 1) }
    }
    return length > 0 ? String(decoding: buffer[0..<length], as: UTF8.self) : nil
}

/// `name` in the directory of the running executable: the executables
/// Skiff installs side by side find each other this way.
public func siblingExecutable(_ name: String) -> String {
    guard let own = executablePath(), let slash = own.lastIndex(of: "/") else { return name }
    return String(own[...slash]) + name
}
