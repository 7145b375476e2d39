import CSystem
import Glibc
import Memory
import Host
import KVM
import Testing
import TestSupport
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
        let program = VMMSeccompPolicy.filter(for: .coordinator, hypervisor: KVMSystem.systemCalls).compile(.kill)

        let child = runInForkedChild {
            _ = csystem_seccomp_install_reporter()
            do { try program.install() } catch { return 100 }
            do {
                return try SnapshotFiles.write(state, memory: memory, to: destination).published ? 3 : 0
            } catch {
                return 2
            }
        }
        #expect(child.status == 0, "\(child.stderr)")
        #expect(!child.stderr.contains("forbidden"), "\(child.stderr)")
        #expect((listDirectory(atPath: root) ?? []) == ["ready"], "the half-written snapshot removed")
        #expect(access(destination + "/" + SnapshotFiles.memoryName, F_OK) != 0, "the published one left as it was")
    }
}
