import Boot
import Glibc
import Images
import KVM
import Memory

/// Why a machine could not be built or run (the VMM's fault or the input's,
/// never the guest's: what the guest does is a `StopReason`).
public enum MachineError: Error, CustomStringConvertible {
    case kvmUnavailable(KVMSystem.OpenError)
    case kvm(HypervisorError)
    case boot(BootError)
    case memory(GuestMemoryError)
    case unreadable(path: String, errno: Int32)
    case invalidConfiguration(String)
    case system(String, Int32)
    /// `skiff run`: the image could not be read, unpacked or made into a disk.
    case image(ImageError)

    public var description: String {
        switch self {
        case let .kvmUnavailable(error): return "\(error)"
        case let .kvm(error): return "KVM: \(error)"
        case let .boot(error): return "\(error)"
        case let .memory(error): return "\(error)"
        case let .unreadable(path, errno): return "\(path): \(String(cString: strerror(errno)))"
        case let .invalidConfiguration(reason): return reason
        case let .system(call, errno): return "\(call): \(String(cString: strerror(errno)))"
        case let .image(error): return "\(error)"
        }
    }
}

/// Reads a whole file, or says which file and why not.
func readFile(_ path: String) throws(MachineError) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw .unreadable(path: path, errno: errno) }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw .unreadable(path: path, errno: errno) }
    guard info.st_mode & S_IFMT == S_IFREG else { throw .unreadable(path: path, errno: EISDIR) }
    var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
    var done = 0
    while done < bytes.count {
        let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { throw .unreadable(path: path, errno: count < 0 ? errno : EIO) }
        done += count
    }
    return bytes
}
