import Glibc

/// The names in the directory `fd` refers to, without "." and ".." (`fd`
/// itself stays open and unmoved); nil if it cannot be read.
public func listDirectory(_ fd: Int32) -> [String]? {
    let copy = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard copy >= 0 else { return nil }
    guard let stream = fdopendir(copy) else { close(copy); return nil }
    defer { closedir(stream) }
    return names(in: stream)
}

/// The names in the directory at `path`; nil if it cannot be read.
public func listDirectory(atPath path: String) -> [String]? {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    // The stream owns this descriptor (no copy to make, as for a caller's).
    guard let stream = fdopendir(fd) else { close(fd); return nil }
    defer { closedir(stream) }
    return names(in: stream)
}

/// Every name a directory stream yields but "." and "..".
private func names(in stream: OpaquePointer) -> [String] {
    var names: [String] = []
    while let entry = readdir(stream) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// `mkdir -p`: `path` and its missing parents, each made with `mode`.
/// Whether `path` is a directory afterwards.
@discardableResult
public func makeDirectories(_ path: String, mode: mode_t) -> Bool {
    var built = path.hasPrefix("/") ? "" : "."
    for component in path.split(separator: "/") {
        built += "/" + component
        if mkdir(built, mode) != 0 && errno != EEXIST { return false }
    }
    var info = stat()
    return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
}

/// Removes `name` in the directory `parent` and, if it is a directory,
/// everything in it, never following a symlink (a link is removed, not what
/// it points to). Nil when done or when there was nothing to remove; else the
/// operation that failed and its errno.
@discardableResult
public func removeTree(in parent: Int32, _ name: String) -> (operation: String, errno: Int32)? {
    var info = stat()
    guard fstatat(parent, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
        return errno == ENOENT ? nil : ("stat", errno)
    }
    if info.st_mode & S_IFMT == S_IFDIR {
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return ("open", errno) }
        defer { close(fd) }
        for child in listDirectory(fd) ?? [] {
            if let failure = removeTree(in: fd, child) { return failure }
        }
        guard unlinkat(parent, name, AT_REMOVEDIR) == 0 else { return ("rmdir", errno) }
    } else {
        guard unlinkat(parent, name, 0) == 0 else { return ("unlink", errno) }
    }
    return nil
}

/// `rm -rf path`, without following symlinks below it. Whether nothing is
/// left at `path`.
@discardableResult
public func removeTree(atPath path: String) -> Bool {
    let slash = path.utf8.lastIndex(of: UInt8(ascii: "/"))
    let directory = slash.map { $0 == path.utf8.startIndex ? "/" : String(path[..<$0]) } ?? "."
    let name = slash.map { String(path[path.utf8.index(after: $0)...]) } ?? path
    guard !name.isEmpty, name != ".", name != ".." else { return false }
    let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { return errno == ENOENT }
    defer { close(fd) }
    return removeTree(in: fd, name) == nil
}
