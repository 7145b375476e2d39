import Boot
import Glibc
import Images
import KVM
import Memory
import Host

/// Why a machine could not be built or run (the VMM's fault or the input's,
/// never the guest's: what the guest does is a `StopReason`).
public enum MachineError: Error, CustomStringConvertible {
    case kvmUnavailable(KVMSystem.OpenError)
    case kvm(HypervisorError)
    case boot(BootError)
    case memory(GuestMemoryError)
    case unreadable(path: String, errno: Int32)
    /// A kernel, initrd or disk that is a directory, FIFO, device or socket.
    case notRegularFile(path: String, kind: String)
    /// An input larger than where it must go (`what`: "the 128 MiB of guest memory").
    case tooLarge(path: String, size: Int64, limit: Int, what: String)
    case invalidConfiguration(String)
    case system(String, Int32)
    /// `skiff run`: the image could not be read, unpacked or made into a disk.
    case image(ImageError)
    /// A snapshot that cannot be restored here (damaged, foreign, or for another machine).
    case snapshot(SnapshotError)

    public var description: String {
        switch self {
        case let .kvmUnavailable(error): return "\(error)"
        case let .kvm(error): return "KVM: \(error)"
        case let .boot(error): return "\(error)"
        case let .memory(error): return "\(error)"
        case let .unreadable(path, errno): return "\(path): \(String(cString: strerror(errno)))"
        case let .notRegularFile(path, kind): return "\(path): not a regular file (\(kind))"
        case let .tooLarge(path, size, limit, what):
            return "\(path): \(size) bytes, larger than \(what.isEmpty ? "the \(limit)-byte limit" : what)"
        case let .invalidConfiguration(reason): return reason
        case let .system(call, errno): return "\(call): \(String(cString: strerror(errno)))"
        case let .image(error): return "\(error)"
        case let .snapshot(error): return "\(error)"
        }
    }
}

/// Reads a whole regular file of at most `limit` bytes, or says which file
/// and why not. Opened without blocking (a FIFO cannot hang the open) and
/// sized by fstat before a byte is read, so a huge or endless input costs
/// nothing but the error.
func readFile(_ path: String, limit: Int, what: String = "") throws(MachineError) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    guard fd >= 0 else { throw .unreadable(path: path, errno: errno) }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw .unreadable(path: path, errno: errno) }
    guard info.st_mode & S_IFMT == S_IFREG else { throw .notRegularFile(path: path, kind: fileKind(info.st_mode)) }
    guard info.st_size <= limit else { throw .tooLarge(path: path, size: Int64(info.st_size), limit: limit, what: what) }
    var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
    let failure = bytes.withUnsafeMutableBytes { space in
        transferAll(space.count) { done in read(fd, space.baseAddress! + done, space.count - done) }
    }
    if let failure { throw .unreadable(path: path, errno: failure) }
    return bytes
}
