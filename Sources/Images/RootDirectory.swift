import Glibc
import Host

/// A directory that stands for an image's `/`, and path resolution that can
/// never leave it.
///
/// Layer entries name paths inside the image, and earlier entries may have
/// made any component a symlink (`/lib -> usr/lib`, or `/x -> /etc` meant
/// against the host). Every path is therefore resolved here component by
/// component with `openat(O_NOFOLLOW)`, following symlinks by hand the way the
/// image's own kernel would inside a chroot: absolute targets restart at this
/// root and `..` stops at it. Nothing is ever opened by a host path below the root.
public final class RootDirectory {
    public let path: String
    let fd: Int32
    static let symlinkLimit = 40

    public init(path: String, create: Bool = true) throws(ImageError) {
        if create { mkdir(path, 0o755) }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(path: path, operation: "open", errno: errno) }
        self.path = path
        self.fd = fd
    }

    deinit { close(fd) }

    /// Splits a path from a layer into components: leading `/` and `.` dropped,
    /// `..` applied lexically. A `..` that would climb above the root is refused.
    static func components(of path: String) -> [String]? {
        var result: [String] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..":
                guard !result.isEmpty else { return nil }
                result.removeLast()
            default: result.append(String(part))
            }
        }
        return result
    }

    /// An open directory along a resolution: its fd, and whether we own it.
    struct Directory {
        let fd: Int32
        let owned: Bool
    }

    /// Resolves all but the last of `components` to a directory inside the
    /// root, creating missing directories (mode 0755) when `create`. Returns
    /// an fd the caller closes with `release`, and the final name.
    func parent(of components: [String], create: Bool) throws(ResolveError) -> (Int32, String) {
        guard let name = components.last else { throw .isRoot }
        let fd = try resolveDirectory(Array(components.dropLast()), create: create)
        return (fd, name)
    }

    enum ResolveError: Error {
        case isRoot
        case tooManySymlinks
        case notADirectory(String)
        case system(String, Int32)
    }

    /// Opens the directory `components` name, following symlinks inside the root.
    func resolveDirectory(_ components: [String], create: Bool) throws(ResolveError) -> Int32 {
        var stack: [Int32] = []  // open directories below the root, innermost last
        var remaining = ArraySlice(components)
        var symlinks = 0
        func current() -> Int32 { stack.last ?? fd }
        func unwind() { for open in stack { close(open) } }

        while let component = remaining.first {
            remaining = remaining.dropFirst()
            if component == "." || component.isEmpty { continue }
            if component == ".." {
                if let innermost = stack.popLast() { close(innermost) }
                continue
            }
            var next = openat(current(), component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 && errno == ENOENT && create {
                if mkdirat(current(), component, 0o755) != 0 && errno != EEXIST {
                    let error = errno
                    unwind()
                    throw .system("mkdir \(component)", error)
                }
                next = openat(current(), component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            if next >= 0 {
                stack.append(next)
                continue
            }
            let error = errno
            // ELOOP or ENOTDIR: a symlink (follow it here) or something that is not a directory.
            guard let target = readLink(current(), component) else {
                unwind()
                if error == ENOTDIR || error == ELOOP { throw .notADirectory(component) }
                throw .system("open \(component)", error)
            }
            symlinks += 1
            guard symlinks <= Self.symlinkLimit else {
                unwind()
                throw .tooManySymlinks
            }
            if target.hasPrefix("/") {
                unwind()
                stack = []
            }
            let parts = target.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
            remaining = ArraySlice(parts + Array(remaining))
        }
        // Hand back an fd the caller may close: the innermost, or a duplicate of the root.
        let result = stack.popLast() ?? fcntl(fd, F_DUPFD_CLOEXEC, 0)
        unwind()
        guard result >= 0 else { throw .system("dup", errno) }
        return result
    }

    func readLink(_ directory: Int32, _ name: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlinkat(directory, name, &buffer, Int(PATH_MAX))
        guard count >= 0 else { return nil }
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The contents of a regular file inside the root (such as etc/passwd),
    /// resolved like any layer path; nil if it is missing, not a regular
    /// file, or larger than `limit`.
    public func readFile(_ path: String, limit: Int = 1 << 20) -> [UInt8]? {
        guard let components = Self.components(of: path),
              let (directory, name) = try? parent(of: components, create: false) else { return nil }
        defer { close(directory) }
        let file = openat(directory, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard file >= 0 else { return nil }
        defer { close(file) }
        var info = stat()
        guard fstat(file, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_size <= limit else { return nil }
        var data = [UInt8](repeating: 0, count: Int(info.st_size))
        var done = 0
        let failure = data.withUnsafeMutableBytes { space in
            transferAll(space.count) { done in read(file, space.baseAddress! + done, space.count - done) }
        }
        guard failure == nil else { return nil }
        return data
    }
}
