import Foundation
import Glibc
import Host
import Hypervisor
import Testing
@testable import SkiffKit

/// Kernels, initrds and console files as a careless or hostile user gives them:
/// each is refused at once with its reason, nothing is read that need not be,
/// and nothing blocks.
/// Each test gets its own scratch directory (Swift Testing makes an instance
/// per test), removed with the instance.
@Suite final class InputFileTests {
    let directory: String = {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-input-\(UUID())").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "no error" } catch { return "\(error)" }
    }

    @Test func aFIFOADeviceOrADirectoryIsNotAKernelAndNothingWaits() throws {
        let fifo = directory + "/fifo"
        try #require(mkfifo(fifo, 0o600) == 0)
        #expect(message { _ = try readFile(fifo, limit: 1 << 20) } == "\(fifo): not a regular file (a FIFO)")
        #expect(message { _ = try readFile("/dev/null", limit: 1 << 20) } == "/dev/null: not a regular file (a character device)")
        #expect(message { _ = try readFile(directory, limit: 1 << 20) } == "\(directory): not a regular file (a directory)")
        #expect(message { _ = try readFile(directory + "/missing", limit: 1 << 20) } == "\(directory)/missing: No such file or directory")
    }

    @Test func aHugeSparseFileIsRefusedBySizeWithoutBeingRead() throws {
        let huge = directory + "/huge"
        let fd = open(huge, O_CREAT | O_WRONLY, 0o600)
        try #require(fd >= 0 && ftruncate(fd, 64 << 30) == 0)
        close(fd)
        let started = MonotonicClock.now()
        #expect(message { _ = try readFile(huge, limit: 128 << 20, what: "the 128 MiB of guest memory (--memory)") }
                == "\(huge): 68719476736 bytes, larger than the 128 MiB of guest memory (--memory)")
        #expect(MonotonicClock.now() - started < 1_000_000_000, "refused from fstat, not by reading 64 GiB")
        let small = directory + "/small"
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: small))
        #expect(try readFile(small, limit: 3) == [1, 2, 3])
    }

    @Test func aConsoleFIFOWithNoReaderIsAnErrorNotAWait() throws {
        let fifo = directory + "/console"
        try #require(mkfifo(fifo, 0o600) == 0)
        let loop = try EventLoop()
        #expect(message { _ = try Console(.file(fifo), loop: loop) } == "--console file:\(fifo): a FIFO with no reader")
    }

    /// The kernel is read and its headers checked before any hypervisor work:
    /// a bad kernel costs milliseconds and no VM.
    @Test func aBadKernelIsRefusedBeforeTheHypervisorIsOpened() throws {
        let opened = OpenedFlag()
        var configuration = MachineConfiguration(kernelPath: "/etc/hostname", commandLine: "")
        configuration.console = .none
        let machine = try Machine(configuration, logger: Logger(label: "test")) { () throws(MachineError) -> any Hypervisor in
            opened.value = true
            throw .invalidConfiguration("the hypervisor was opened")
        }
        #expect(message { _ = try machine.run() } == "/etc/hostname: not a Linux kernel: neither an ELF vmlinux nor a bzImage")
        #expect(!opened.value)
    }
}

/// Whether the test's hypervisor was asked for (written once, read after).
final class OpenedFlag: @unchecked Sendable {
    var value = false
}
