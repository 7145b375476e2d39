import Glibc

/// A failed KVM operation: what was attempted and the errno it returned.
public struct KVMError: Error, CustomStringConvertible, Equatable {
    public let operation: String
    public let errno: Int32

    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String {
        "\(operation): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

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
