import CArchive
import Foundation

/// Writes tar layers for tests through libarchive, hostile ones included
/// (paths with "..", links that point out): what a malicious image would carry.
public struct TarWriter {
    public enum Compression: Sendable { case none, gzip, zstd }
    public enum Entry: Sendable {
        case file(String, String, mode: Int = 0o644, uid: Int = 0, gid: Int = 0)
        case bytes(String, [UInt8])
        case directory(String, mode: Int = 0o755)
        case symlink(String, target: String)
        case hardLink(String, target: String)
    }

    public static func write(_ entries: [Entry], to path: String, compression: Compression = .none) {
        let archive = archive_write_new()!
        defer { archive_write_free(archive) }
        archive_write_set_format_pax_restricted(archive)
        switch compression {
        case .none: break
        case .gzip: archive_write_add_filter_gzip(archive)
        case .zstd: archive_write_add_filter_zstd(archive)
        }
        precondition(archive_write_open_filename(archive, path) == ARCHIVE_OK)
        for item in entries {
            let entry = archive_entry_new()!
            defer { archive_entry_free(entry) }
            archive_entry_set_mtime(entry, 1_700_000_000, 0)
            var data: [UInt8] = []
            switch item {
            case let .file(path, contents, mode, uid, gid):
                data = Array(contents.utf8)
                archive_entry_set_pathname(entry, path)
                archive_entry_set_mode(entry, mode_t(0o100000 | mode))
                archive_entry_set_uid(entry, la_int64_t(uid))
                archive_entry_set_gid(entry, la_int64_t(gid))
                archive_entry_set_size(entry, la_int64_t(data.count))
            case let .bytes(path, contents):
                data = contents
                archive_entry_set_pathname(entry, path)
                archive_entry_set_mode(entry, mode_t(0o100644))
                archive_entry_set_size(entry, la_int64_t(data.count))
            case let .directory(path, mode):
                archive_entry_set_pathname(entry, path)
                archive_entry_set_mode(entry, mode_t(0o040000 | mode))
            case let .symlink(path, target):
                archive_entry_set_pathname(entry, path)
                archive_entry_set_mode(entry, mode_t(0o120777))
                archive_entry_set_symlink(entry, target)
            case let .hardLink(path, target):
                archive_entry_set_pathname(entry, path)
                archive_entry_set_mode(entry, mode_t(0o100644))
                archive_entry_set_hardlink(entry, target)
                archive_entry_set_size(entry, 0)
            }
            precondition(archive_write_header(archive, entry) == ARCHIVE_OK, String(cString: archive_error_string(archive)))
            if !data.isEmpty { _ = data.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, $0.count) } }
        }
        archive_write_close(archive)
    }
}

/// A scratch directory with `root/` inside it, so that tests can see whether
/// anything was written next to the root, outside it.
public final class Sandbox {
    public let path: String
    public var root: String { path + "/root" }
    public init() throws {
        path = NSTemporaryDirectory() + "skiff-images-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path + "/root", withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    public func layer(_ name: String, _ entries: [TarWriter.Entry], compression: TarWriter.Compression = .none) -> String {
        let file = path + "/" + name + ".tar"
        TarWriter.write(entries, to: file, compression: compression)
        return file
    }

    /// What exists next to the root: only the root and the layer files we wrote.
    public var strays: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0 != "root" && !$0.hasSuffix(".tar") }
    }
    public func contents(_ relative: String) -> String? { try? String(contentsOfFile: root + "/" + relative, encoding: .utf8) }
    public func linkTarget(_ relative: String) -> String? { try? FileManager.default.destinationOfSymbolicLink(atPath: root + "/" + relative) }
    public func exists(_ relative: String) -> Bool {
        stat(relative) != nil
    }
    public func stat(_ relative: String) -> stat? {
        var info = Glibc.stat()
        return lstat(root + "/" + relative, &info) == 0 ? info : nil
    }
}
