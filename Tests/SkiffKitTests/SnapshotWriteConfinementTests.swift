import CSystem
import Glibc
import Memory
import Testing
@testable import SkiffKit

/// `SnapshotFiles.write` runs on the snapshot thread, under that thread's
/// seccomp list: every way through it must stay inside the list, the one
/// where another process published the same snapshot first included (two
/// `podman run`s of one image on a fresh host both boot to save it).
@Suite struct SnapshotWriteConfinementTests {
    @Test func aSnapshotAnotherProcessPublishedFirstIsGivenUpWithinTheSnapshotThreadsList() throws {
        let root = "/tmp/skiff-confined-write-\(getpid())"
        let destination = root + "/ready"
        mkdir(root, 0o700)
        mkdir(destination, 0o700)
        close(open(destination + "/" + SnapshotFiles.stateName, O_WRONLY | O_CREAT, 0o600)) // the other process's
        defer {
            SnapshotFiles.removeTree(destination)
            rmdir(root)
        }
        let memory = try GuestMemory(layout: [(0, 1 << 20)])
        try memory.write(bytes: [1, 2, 3], at: 0x1000)
        let state = SnapshotStateTests.state
        // Once here, unconfined: so that the child finds what the write
        // instantiates ready and takes none of the runtime's locks after fork.
        #expect(try SnapshotFiles.write(state, memory: memory, to: destination).published == false)
        let program = VMMSeccompPolicy.filter(for: .coordinator).compile(.kill)

        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        let child = fork()
        if child == 0 {
            dup2(fds[1], 2)
            _ = csystem_seccomp_install_reporter()
            do { try program.install() } catch { _exit(100) }
            do {
                let outcome = try SnapshotFiles.write(state, memory: memory, to: destination)
                _exit(outcome.published ? 3 : 0)
            } catch {
                _exit(2)
            }
        }
        close(fds[1])
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 512)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if count <= 0 { break }
            output += buffer[0..<count]
        }
        close(fds[0])
        var status: Int32 = 0
        waitpid(child, &status, 0)
        let stderr = String(decoding: output, as: UTF8.self)
        #expect(status & 0x7F == 0 && (status >> 8) & 0xFF == 0, "status \(status): \(stderr)")
        #expect(!stderr.contains("forbidden"), "\(stderr)")
        #expect(access("\(destination).tmp-\(child)", F_OK) != 0, "the half-written snapshot removed")
        #expect(access(destination + "/" + SnapshotFiles.memoryName, F_OK) != 0, "the published one left as it was")
    }
}
