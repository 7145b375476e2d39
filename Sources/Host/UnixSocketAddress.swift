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
