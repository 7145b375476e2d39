import Glibc
import Host

/// What the guest's source files looked like when their key was hashed:
/// each one's path, device, inode, size, modification and change times. The
/// change time cannot be set by a user, so an edited file always differs.
/// Like git's index, a stamp is not recorded while a file is "racily" new
/// (changed within the last two seconds, the same clock tick as the hash
/// could have been): such a tree is hashed again next time.
struct SourceStamp: Equatable {
    let lines: [String]
    /// The newest modification or change time among the files (seconds).
    let newest: Int

    init(lines: [String], newest: Int) {
        self.lines = lines
        self.newest = newest
    }

    init?(_ files: [String], in repository: String) {
        var lines: [String] = []
        var newest = 0
        for relative in files {
            var info = stat()
            guard stat(repository + "/" + relative, &info) == 0 else { return nil }
            lines.append("\(relative) \(info.st_dev) \(info.st_ino) \(info.st_size) "
                         + "\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec) \(info.st_ctim.tv_sec).\(info.st_ctim.tv_nsec)")
            newest = max(newest, info.st_mtim.tv_sec, info.st_ctim.tv_sec)
        }
        self.lines = lines
        self.newest = newest
    }

    /// The key recorded at `path` with exactly this stamp, if any.
    func recordedKey(at path: String) -> String? {
        guard let bytes = try? readRegularFile(path, limit: 1 << 20) else { return nil }
        let recorded = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard recorded.count == lines.count + 2, recorded.last == "", let key = recorded.first,
              key.utf8.count == 16, key.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }),
              zip(recorded.dropFirst(), lines).allSatisfy({ $0 == $1[...] }) else { return nil }
        return String(key)
    }

    /// Records `key` with this stamp (atomically, by rename), unless a file
    /// is too new to trust its times. A failure to write only costs a hash.
    func record(_ key: String, at path: String) {
        let now = WallClock.now()
        guard newest < now.tv_sec - 1 else { return }
        let text = ([key] + lines).joined(separator: "\n") + "\n"
        _ = replaceFile(path, with: Array(text.utf8), mode: 0o644, durable: false)
    }
}
