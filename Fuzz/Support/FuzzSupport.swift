// What the file-based fuzz targets share: a scratch directory per process,
// whole files written, trees removed, and a listing to prove that nothing
// was written where it should not be.
import Glibc

/// A directory of this process's own under /tmp (created once), removed
/// when the fuzzer exits (a crash leaves it, beside its reproducer).
public let scratch: String = {
    let path = "/tmp/skiff-fuzz-\(getpid())"
    mkdir(path, 0o700)
    atexit { removeTree(scratch) }
    return path
}()

/// Writes `bytes` to `path`, replacing it.
public func writeFile<Bytes: Collection<UInt8>>(_ path: String, _ bytes: Bytes) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    precondition(fd >= 0, "cannot write \(path)")
    let array = Array(bytes)
    var done = 0
    while done < array.count {
        let count = array.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
        precondition(count > 0, "cannot write \(path)")
        done += count
    }
    close(fd)
}

/// The names in `path` (not . and ..), sorted; empty if it cannot be read.
public func listing(_ path: String) -> [String] {
    guard let directory = opendir(path) else { return [] }
    defer { closedir(directory) }
    var names: [String] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
}

/// Removes `path` and everything below it, without following symbolic
/// links (a fuzzed layer makes plenty). Directories are made writable first.
public func removeTree(_ path: String) {
    var info = stat()
    guard lstat(path, &info) == 0 else { return }
    if info.st_mode & S_IFMT == S_IFDIR {
        chmod(path, 0o700)
        for name in listing(path) { removeTree(path + "/" + name) }
        rmdir(path)
    } else {
        unlink(path)
    }
}
