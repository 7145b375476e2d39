import CSystem
import Glibc

/// The one place in Skiff where a system call is retried after a signal
/// interrupted it (EINTR). `call` returns a negative value with errno set on
/// failure, as the C calls do; the result is the first that is not an
/// interruption, and errno still holds its error when it is negative.
@inlinable
public func retryingInterrupts<Result: SignedInteger>(_ call: () -> Result) -> Result {
    while true {
        let result = call()
        if result >= 0 || errno != EINTR { return result }
    }
}

/// Repeats a partial transfer (`step`, given the bytes done so far: read,
/// write, pread, pwrite, getrandom) until `count` bytes are done. Returns nil
/// on success, else the errno that stopped it (EIO when a step made no
/// progress: end of file or a full device).
public func transferAll(_ count: Int, _ step: (_ done: Int) -> Int) -> Int32? {
    var done = 0
    while done < count {
        let moved = retryingInterrupts { step(done) }
        if moved < 0 { return errno }
        if moved == 0 { return EIO }
        done += moved
    }
    return nil
}

/// Writes all of `bytes` to `fd`; nil, or the errno that stopped it.
public func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32? {
    guard let base = bytes.baseAddress else { return nil }
    return transferAll(bytes.count) { done in write(fd, base + done, bytes.count - done) }
}

/// Writes `line` and a newline to standard error at once: no stdio
/// buffering, no Foundation (the VMM's start path and its jail use it).
public func writeErrorLine(_ line: String) {
    _ = Array((line + "\n").utf8).withUnsafeBytes { writeAll(STDERR_FILENO, $0) }
}

/// Reads `fd` to its end (a pipe from a child, say).
public func readToEnd(_ fd: Int32) -> [UInt8] {
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = buffer.withUnsafeMutableBytes { space in retryingInterrupts { read(fd, space.baseAddress, space.count) } }
        guard count > 0 else { return output }
        output += buffer[0..<count]
    }
}

/// Waits for child `pid`; its exit status, or 128 + N when signal N killed it
/// (as a shell reports it); nil if it cannot be waited for.
public func waitForChild(_ pid: pid_t) -> Int32? {
    var status: Int32 = 0
    guard retryingInterrupts({ waitpid(pid, &status, 0) }) == pid else { return nil }
    return status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
}

/// Moves `segments` (in order, back to back in the file) to or from `fd` at
/// `offset`: one preadv/pwritev for a whole request, more only when the
/// kernel transfers part of it. Returns nil, or the errno that stopped it
/// (EIO when a call made no progress: end of file or a full device).
public func transferVectored(_ fd: Int32, _ segments: [UnsafeMutableRawBufferPointer], at offset: off_t,
                             writing: Bool) -> Int32? {
    var vectors = segments.filter { $0.count > 0 }.map { iovec(iov_base: $0.baseAddress, iov_len: $0.count) }
    var index = 0
    var position = offset
    while index < vectors.count {
        let batch = Int32(min(vectors.count - index, 1024)) // IOV_MAX
        let moved = vectors.withUnsafeMutableBufferPointer { list in
            retryingInterrupts {
                writing ? pwritev(fd, list.baseAddress! + index, batch, position) : preadv(fd, list.baseAddress! + index, batch, position)
            }
        }
        if moved < 0 { return errno }
        if moved == 0 { return EIO }
        position += off_t(moved)
        var remaining = moved
        while remaining > 0 {
            if remaining >= vectors[index].iov_len {
                remaining -= vectors[index].iov_len
                index += 1
            } else {
                vectors[index].iov_base += remaining
                vectors[index].iov_len -= remaining
                remaining = 0
            }
        }
    }
    return nil
}

/// A pipe whose two ends close on exec: a child gets an end only as the
/// descriptor it is dup'ed to (posix_spawn's adddup2 clears the flag there),
/// never as a stray copy, and no concurrent spawn inherits it. The one way
/// Skiff makes pipes.
public func makePipe() throws(SystemCallError) -> (read: Int32, write: Int32) {
    var ends: [Int32] = [-1, -1]
    guard csystem_pipe_cloexec(&ends) == 0 else { throw SystemCallError("pipe2", errno) }
    return (ends[0], ends[1])
}
