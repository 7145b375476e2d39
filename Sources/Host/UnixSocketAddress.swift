import Glibc

/// The address of the Unix socket at `path`, and its length for bind and
/// connect; nil when the path is empty or longer than an address holds (107 bytes).
public func unixSocketAddress(_ path: String) -> (sockaddr_un, socklen_t)? {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard !bytes.isEmpty, bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
    withUnsafeMutableBytes(of: &address.sun_path) { space in
        for (index, byte) in bytes.enumerated() { space[index] = byte }
    }
    return (address, socklen_t(MemoryLayout<sockaddr_un>.size))
}

/// Why a Unix socket could not be set up: the errno of the call that failed
/// (ENAMETOOLONG for a path no address holds).
public struct UnixSocketFailure: Error, Equatable {
    public let errno: Int32
}

/// A Unix stream socket bound at `path` and listening, close-on-exec (and
/// non-blocking when asked). Whatever was at `path` is the caller's to clear
/// first: the vsock backend and the OCI monitor's control socket each have
/// their own rule for that.
public func listenOnUnixSocket(_ path: String, backlog: Int32, nonBlocking: Bool = false) -> Result<Int32, UnixSocketFailure> {
    guard let (address, length) = unixSocketAddress(path) else { return .failure(UnixSocketFailure(errno: ENAMETOOLONG)) }
    let flags = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | (nonBlocking ? Int32(SOCK_NONBLOCK.rawValue) : 0)
    let fd = socket(AF_UNIX, flags, 0)
    guard fd >= 0 else { return .failure(UnixSocketFailure(errno: errno)) }
    let bound = withUnsafePointer(to: address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    guard bound == 0, listen(fd, backlog) == 0 else {
        let error = errno
        close(fd)
        return .failure(UnixSocketFailure(errno: error))
    }
    return .success(fd)
}
