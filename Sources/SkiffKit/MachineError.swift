import Platform
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

/// `readRegularFile` (Host) with the path and the caller's wording in the error.
func readFile(_ path: String, limit: Int, what: String = "") throws(MachineError) -> [UInt8] {
    do { return try readRegularFile(path, limit: limit) } catch {
        switch error {
        case let .unreadable(errno): throw .unreadable(path: path, errno: errno)
        case let .notRegularFile(kind): throw .notRegularFile(path: path, kind: kind)
        case let .tooLarge(size): throw .tooLarge(path: path, size: size, limit: limit, what: what)
        }
    }
}

extension MachineError {
    /// A Host system call's failure, as every other system call's in the
    /// machine's setup is reported.
    public init(_ error: SystemCallError) { self = .system(error.operation, error.errno) }
}

/// Host's threads, eventfds and timerfds as the machine's setup makes them.
extension NativeThread {
    public static func start(_ body: @escaping @Sendable () -> Void) throws(MachineError) -> NativeThread {
        do { return try NativeThread(body) } catch { throw MachineError(error) }
    }
}

extension EventFD {
    static func make(blocking: Bool = false, semaphore: Bool = false) throws(MachineError) -> EventFD {
        do { return try EventFD(blocking: blocking, semaphore: semaphore) } catch { throw MachineError(error) }
    }
}

extension TimerFD {
    static func make(seconds: Double) throws(MachineError) -> TimerFD {
        do { return try TimerFD(seconds: seconds) } catch { throw MachineError(error) }
    }
}
