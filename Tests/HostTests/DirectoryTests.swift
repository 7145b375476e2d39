import Glibc
import Host
import Testing

/// Removing a tree, and the byte-wise text search the executables use.
@Suite struct DirectoryTests {
    func scratch() -> String {
        var template = Array("/tmp/skiff-host-XXXXXX".utf8CString)
        return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }

    func write(_ path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        #expect(fd >= 0)
        close(fd)
    }

    @Test func removesATreeWithoutFollowingItsLinks() {
        let root = scratch()
        defer { removeTree(atPath: root) }
        let outside = root + "/outside"
        makeDirectories(outside, mode: 0o755)
        write(outside + "/kept")
        makeDirectories(root + "/doomed/a/b", mode: 0o755)
        write(root + "/doomed/a/b/file")
        write(root + "/doomed/top")
        symlink(outside, root + "/doomed/a/link-to-outside")
        symlink(outside + "/kept", root + "/doomed/link-to-file")
        #expect(removeTree(atPath: root + "/doomed"))
        #expect(access(root + "/doomed", F_OK) != 0)
        #expect(access(outside + "/kept", F_OK) == 0, "a symlink's target is never removed")
        #expect(removeTree(atPath: root + "/doomed"), "nothing there is nothing left")
        write(root + "/plain")
        #expect(removeTree(atPath: root + "/plain") && access(root + "/plain", F_OK) != 0)
        #expect(!removeTree(atPath: root + "/.."))
    }

    @Test func findsTextByteByByte() {
        #expect("key.tmp-123".containsText(".tmp-"))
        #expect(!"key.tmp".containsText(".tmp-"))
        #expect("é€x".containsText("€"))
        #expect("abc".containsText(""))
        #expect(!"".containsText("a"))
        #expect("aaab".containsText("aab"))
    }
}

/// Replacing a file whole: the new bytes or the old file, never a mix, and no temporary left.
@Suite struct ReplaceFileTests {
    @Test func replacesWholeAndLeavesNothingBeside() throws {
        var template = Array("/tmp/skiff-replace-XXXXXX".utf8CString)
        let root = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        defer { removeTree(atPath: root) }
        let path = root + "/state.json"
        #expect(replaceFile(path, with: Array("first".utf8), mode: 0o600, durable: true) == nil)
        #expect(replaceFile(path, with: Array("second, longer".utf8), mode: 0o600, durable: false) == nil)
        #expect(try readRegularFile(path, limit: 100) == Array("second, longer".utf8))
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(listDirectory(atPath: root) == ["state.json"], "no temporary left")
        // Where the rename cannot happen (a directory in the way), the old
        // stays, the temporary goes, and the failure says which step.
        mkdir(root + "/busy", 0o755)
        mkdir(root + "/busy/inside", 0o755)
        let failure = replaceFile(root + "/busy", with: [1], mode: 0o600, durable: false)
        #expect(failure?.operation == "rename \(root)/busy.tmp-\(getpid())" && failure?.errno == EISDIR)
        #expect(Set(listDirectory(atPath: root) ?? []) == ["state.json", "busy"])
        #expect(replaceFile(root + "/missing/x", with: [1], mode: 0o600, durable: false)?.errno == ENOENT)
    }
}
