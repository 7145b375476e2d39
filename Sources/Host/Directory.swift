import Glibc

/// The names in the directory `fd` refers to, without "." and ".." (`fd`
/// itself stays open and unmoved); nil if it cannot be read.
public func listDirectory(_ fd: Int32) -> [String]? {
    let copy = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard copy >= 0 else { return nil }
    guard let stream = fdopendir(copy) else { close(copy); return nil }
    defer { closedir(stream) }
    var names: [String] = []
    while let entry = readdir(stream) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// The names in the directory at `path`; nil if it cannot be read.
public func listDirectory(atPath path: String) -> [String]? {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    return listDirectory(fd)
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
