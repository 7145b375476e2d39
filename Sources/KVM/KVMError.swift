import Glibc
@_exported import Hypervisor
import Host

/// A failed KVM operation: the seam's error, what was attempted and its errno.
public typealias KVMError = HypervisorError

/// Runs a system call that returns -1 with errno on failure (retried on
/// EINTR by Host), throwing what was attempted and the errno.
@discardableResult
func syscallRetrying(_ operation: @autoclosure () -> String, _ call: () -> Int32) throws(KVMError) -> Int32 {
    let result = retryingInterrupts(call)
    guard result >= 0 else { throw KVMError(operation(), errno: errno) }
    return result
}
