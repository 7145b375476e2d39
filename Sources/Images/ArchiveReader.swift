import CArchiveLazy
import Glibc
import Host

/// One tar archive (plain, gzip, zstd, ...: libarchive detects it from the
/// content), read member by member. libarchive is loaded on first use, so
/// commands that never read an archive never load it (or ICU behind it). The
/// file must be a regular file and is opened without blocking: a FIFO or a
/// device is refused with a reason, never waited on.
final class ArchiveReader {
    let handle: OpaquePointer
    private let fd: Int32

    /// `failure` turns a reason into the caller's error (naming the layer or file).
    init(path: String, failure: (String) -> ImageError) throws(ImageError) {
        var loadError: UnsafePointer<CChar>?
        guard skiff_archive_load(&loadError) == 0 else { throw failure(loadError.map { String(cString: $0) } ?? "cannot load libarchive") }
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw failure(String(cString: strerror(errno))) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { let error = errno; close(fd); throw failure(String(cString: strerror(error))) }
        guard info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw failure("not a regular file (\(fileKind(info.st_mode))); give a file, not a stream or device")
        }
        guard let handle = skiff_archive_read_new() else { close(fd); throw failure("libarchive: out of memory") }
        skiff_archive_read_support_filter_all(handle)
        skiff_archive_read_support_format_tar(handle)
        guard skiff_archive_read_open_fd(handle, fd, 1 << 16) == ARCHIVE_OK else {
            let reason = archiveError(handle)
            skiff_archive_read_free(handle)
            close(fd)
            throw failure(reason)
        }
        self.handle = handle
        self.fd = fd
    }

    deinit {
        skiff_archive_read_free(handle)
        close(fd)
    }

    /// Calls `body` with each member's entry, in order; data `body` does not
    /// read is skipped. A damaged archive is `failure`'s error.
    func forEachEntry(failure: (String) -> ImageError, _ body: (OpaquePointer) throws(ImageError) -> Void) throws(ImageError) {
        while true {
            var entry: OpaquePointer?
            let status = skiff_archive_read_next_header(handle, &entry)
            if status == ARCHIVE_EOF { return }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else { throw failure(archiveError(handle)) }
            try body(entry)
        }
    }
}

/// libarchive's message for the last error on `archive`.
func archiveError(_ archive: OpaquePointer) -> String {
    skiff_archive_error_string(archive).map { String(cString: $0) } ?? "unreadable archive"
}

