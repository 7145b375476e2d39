import Glibc

/// Runs `body` in a forked child whose stderr is a pipe, and returns the
/// child's exit status (`body`'s result; the negative signal number if a
/// signal ended it) and what it wrote to stderr: for tests that confine the
/// child (seccomp) and watch what the confinement does to it.
///
/// The child of a multi-threaded test process must not take a lock another
/// thread may have held at the fork (the Swift runtime's metadata caches
/// among them): run what `body` runs once in the parent first, so that the
/// generic types it uses are instantiated. glibc's malloc is safe after fork.
public func runInForkedChild(_ body: () -> Int32) -> (status: Int32, stderr: String) {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { return (-1, "pipe: errno \(errno)") }
    let child = fork()
    if child == 0 {
        dup2(fds[1], 2)
        _exit(body())
    }
    close(fds[1])
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 512)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
        if count <= 0 { break }
        output += buffer[0..<count]
    }
    close(fds[0])
    var status: Int32 = 0
    guard child > 0, waitpid(child, &status, 0) == child else { return (-1, "fork or wait: errno \(errno)") }
    let exited = status & 0x7F == 0
    return (exited ? (status >> 8) & 0xFF : -(status & 0x7F), String(decoding: output, as: UTF8.self))
}
