import Foundation
import Glibc
import Host
import Images
import Testing
@testable import SkiffKit

/// The guest's source key: hashed from the files, or taken from the stamp
/// record when no file's stat changed.
@Suite struct SourceStampTests {
    /// A repository with the files build-guest.sh hashes, and a cache directory.
    struct Tree {
        let root: String
        let cache: String

        init() throws {
            var template = Array("/tmp/skiff-stamp-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw MachineError.system("mkdtemp", errno) }
            root = String(cString: made)
            cache = root + "/cache"
            for directory in ["guest", "guest/kernel", "guest/init", "scripts", "cache"] { mkdir(root + "/" + directory, 0o755) }
            for file in ["guest/kernel/a.config", "guest/kernel/0001-x.patch", "guest/init/init.c", "guest/init/init.h",
                         "scripts/build-guest.sh", "scripts/build-kernel.sh", "scripts/mkinitramfs.py"] {
                try write(file, "contents of \(file)\n")
            }
        }

        func write(_ relative: String, _ text: String) throws {
            let fd = open(root + "/" + relative, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw MachineError.system("open", errno) }
            defer { close(fd) }
            _ = Array(text.utf8).withUnsafeBytes { writeAll(fd, $0) }
        }

        var stampPath: String { cache + "/guest-stamp-" + String(SHA256.hex(Array(root.utf8)).prefix(16)) }

        func remove() { try? FileManager.default.removeItem(atPath: root) }
    }

    /// What the key must be: SHA-256 over each relative path, a newline and its contents.
    func hashed(_ tree: Tree) throws -> String {
        var hasher = SHA256()
        for relative in try #require(GuestArtifacts.sourceFiles(repository: tree.root)) {
            hasher.update(Array((relative + "\n").utf8))
            hasher.update(try readRegularFile(tree.root + "/" + relative, limit: 1 << 20))
        }
        return String(hasher.finalize().prefix(16))
    }

    @Test func filesInTheScriptsOrder() throws {
        let tree = try Tree()
        defer { tree.remove() }
        #expect(GuestArtifacts.sourceFiles(repository: tree.root) == [
            "guest/kernel/a.config", "guest/kernel/0001-x.patch", "guest/init/init.c", "guest/init/init.h",
            "scripts/build-guest.sh", "scripts/build-kernel.sh", "scripts/mkinitramfs.py"])
    }

    @Test func aMatchingStampGivesTheRecordedKeyAndAnEditGivesANewHash() throws {
        let tree = try Tree()
        defer { tree.remove() }
        let fresh = try #require(GuestArtifacts.sourceKey(repository: tree.root, cache: tree.cache))
        #expect(fresh == (try hashed(tree)))
        #expect(access(tree.stampPath, F_OK) != 0, "files changed this second are too new to stamp")

        // A record for exactly these stats is believed without reading a file:
        // a key no hash would give proves it.
        let files = try #require(GuestArtifacts.sourceFiles(repository: tree.root))
        let now = try #require(SourceStamp(files, in: tree.root))
        SourceStamp(lines: now.lines, newest: 0).record("0123456789abcdef", at: tree.stampPath)
        #expect(GuestArtifacts.sourceKey(repository: tree.root, cache: tree.cache) == "0123456789abcdef")

        // The same size, other contents: the change time moves, the record is not believed.
        usleep(20_000)
        try tree.write("guest/init/init.c", "CONTENTS OF guest/init/init.c\n")
        let edited = try #require(GuestArtifacts.sourceKey(repository: tree.root, cache: tree.cache))
        #expect(edited == (try hashed(tree)) && edited != fresh && edited != "0123456789abcdef")
    }

    @Test func aDamagedOrForeignRecordIsIgnored() throws {
        let tree = try Tree()
        defer { tree.remove() }
        let files = try #require(GuestArtifacts.sourceFiles(repository: tree.root))
        let stamp = try #require(SourceStamp(files, in: tree.root))
        for text in ["", "0123456789abcdef\n", "not-a-key-at-all\n" + stamp.lines.joined(separator: "\n") + "\n",
                     "0123456789abcdef\n" + stamp.lines.dropLast().joined(separator: "\n") + "\n",
                     "0123456789abcdef\n" + stamp.lines.joined(separator: "\n") + "\nextra\n"] {
            let fd = open(tree.stampPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            _ = Array(text.utf8).withUnsafeBytes { writeAll(fd, $0) }
            close(fd)
            #expect(stamp.recordedKey(at: tree.stampPath) == nil, "\(text)")
            #expect(GuestArtifacts.sourceKey(repository: tree.root, cache: tree.cache) == (try hashed(tree)))
        }
    }

    @Test func aRacilyNewStampIsNotRecorded() throws {
        let tree = try Tree()
        defer { tree.remove() }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        SourceStamp(lines: ["x"], newest: now.tv_sec - 1).record("0123456789abcdef", at: tree.stampPath)
        #expect(access(tree.stampPath, F_OK) != 0)
        SourceStamp(lines: ["x"], newest: now.tv_sec - 2).record("0123456789abcdef", at: tree.stampPath)
        #expect(SourceStamp(lines: ["x"], newest: 0).recordedKey(at: tree.stampPath) == "0123456789abcdef")
        #expect(SourceStamp(lines: ["y"], newest: 0).recordedKey(at: tree.stampPath) == nil)
    }
}
