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
