import Glibc
import Host

/// A raw disk image file opened for a virtio-blk device: positioned I/O
/// (pread/pwrite, never lseek, so requests need no shared file offset), and an
/// advisory lock so that two VMs do not write one image at once.
public final class DiskImage: Sendable {
    public enum OpenError: Error, Equatable, CustomStringConvertible {
        case cannotOpen(path: String, errno: Int32)
        case inUse(path: String)
        case notARegularFileOrDevice(path: String)
        case tooSmall(path: String, size: Int64)

        public var description: String {
            switch self {
            case let .cannotOpen(path, errno): return "\(path): \(String(cString: strerror(errno)))"
            case let .inUse(path): return "\(path): in use by another process (it holds a lock on the image)"
            case let .notARegularFileOrDevice(path): return "\(path): not a regular file or block device"
            case let .tooSmall(path, size): return "\(path): \(size) bytes is less than one 512-byte sector"
            }
        }
    }

    public let path: String
    public let readOnly: Bool
    /// Bytes usable by the guest: the file size rounded down to whole sectors.
    public let size: UInt64
    /// The file's (or block device's) size in bytes; beyond `size`, a partial sector nobody sees.
    public let fileSize: UInt64
    /// Identifies the image (device and inode numbers), for GET_ID.
    public let identifier: String
    let fd: Int32

    public init(path: String, readOnly: Bool) throws(OpenError) {
        // Without blocking, so that a FIFO is refused below instead of waited on.
        let fd = open(path, (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw .cannotOpen(path: path, errno: errno) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let error = errno
            close(fd)
            throw .cannotOpen(path: path, errno: error)
        }
        let kind = info.st_mode & S_IFMT
        guard kind == S_IFREG || kind == S_IFBLK else {
            close(fd)
            throw .notARegularFileOrDevice(path: path)
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        var bytes = Int64(info.st_size)
        if kind == S_IFBLK { bytes = Int64(lseek(fd, 0, SEEK_END)) }
        guard bytes >= 512 else {
            close(fd)
            throw .tooSmall(path: path, size: bytes)
        }
        // Shared for read-only users, exclusive for a writer.
        if flock(fd, (readOnly ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0 {
            let error = errno
            close(fd)
            if error == EWOULDBLOCK { throw .inUse(path: path) }
            throw .cannotOpen(path: path, errno: error)
        }
        self.fd = fd
        self.path = path
        self.readOnly = readOnly
        self.fileSize = UInt64(bytes)
        self.size = UInt64(bytes) & ~511
        self.identifier = "skiff-\(String(info.st_dev, radix: 16))-\(String(info.st_ino, radix: 16))"
    }

    deinit { close(fd) }

    /// Reads exactly the segments' bytes, back to back from `offset` (one
    /// preadv for a whole request); false on an I/O error or end of file.
    func read(into segments: [UnsafeMutableRawBufferPointer], at offset: UInt64) -> Bool {
        transferVectored(fd, segments, at: off_t(offset), writing: false) == nil
    }

    /// Writes the segments back to back from `offset` (one pwritev); false on an I/O error.
    func write(_ segments: [UnsafeMutableRawBufferPointer], at offset: UInt64) -> Bool {
        transferVectored(fd, segments, at: off_t(offset), writing: true) == nil
    }

    func flush() -> Bool {
        retryingInterrupts { fdatasync(fd) } == 0
    }
}
