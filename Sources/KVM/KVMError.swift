import Glibc
@_exported import Hypervisor

/// A failed KVM operation: the seam's error, what was attempted and its errno.
public typealias KVMError = HypervisorError

/// Runs a system call that returns -1 with errno on failure, retrying EINTR.
@discardableResult
func syscallRetrying(_ operation: @autoclosure () -> String, _ call: () -> Int32) throws(KVMError) -> Int32 {
    while true {
        let result = call()
        if result >= 0 { return result }
        let error = errno
        if error == EINTR { continue }
        throw KVMError(operation(), errno: error)
    }
}
