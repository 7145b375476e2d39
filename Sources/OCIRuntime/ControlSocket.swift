import Glibc
import Host

/// The monitor's control socket: `start` connects, sends one line, reads one
/// line back. Bound and reached by a path relative to the container's
/// directory (the caller's working directory), since `--root/ID/...` can be
/// longer than a socket address holds (108 bytes).
enum ControlSocket {
    static let name = "control.sock"

    /// A listening socket at `name` in the working directory.
    static func listen() throws(RuntimeError) -> Int32 {
        unlink(name)
        switch listenOnUnixSocket(name, backlog: 4) {
        case let .success(fd): return fd
        case let .failure(failure): throw .system("binding \(name): \(String(cString: strerror(failure.errno)))")
        }
    }

    /// Sends `line` to the socket in `directory` and returns the reply line.
    static func request(_ line: String, in directory: String) throws(RuntimeError) -> String {
        let fd: Int32
        do { fd = try connect(name, in: directory) } catch {
            throw .container("the container's monitor does not answer (\(error))")
        }
        defer { close(fd) }
        let bytes = Array((line + "\n").utf8)
        guard bytes.withUnsafeBytes({ writeAll(fd, $0) }) == nil else { throw .container("the container's monitor hung up") }
        return readLine(fd)
    }

    /// A stream socket connected to `socketName` in `directory` (changing
    /// the working directory there, so that long paths fit the address).
    static func connect(_ socketName: String, in directory: String) throws(RuntimeError) -> Int32 {
        guard chdir(directory) == 0 else { throw .container("\(directory): \(String(cString: strerror(errno)))") }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0, let (initial, length) = unixSocketAddress(socketName) else { throw .system("socket \(socketName): \(String(cString: strerror(errno)))") }
        var address = initial
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in retryingInterrupts { Glibc.connect(fd, socketAddress, length) } }
        }
        guard connected == 0 else {
            let error = errno
            close(fd)
            throw .container("connecting to \(directory)/\(socketName): \(String(cString: strerror(error)))")
        }
        return fd
    }

    /// One line (without its newline) or what came before EOF; at most 4 KiB.
    static func readLine(_ fd: Int32) -> String {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while bytes.count < 4096, retryingInterrupts({ read(fd, &byte, 1) }) == 1, byte != 0x0A { bytes.append(byte) }
        return String(decoding: bytes, as: UTF8.self)
    }
}
