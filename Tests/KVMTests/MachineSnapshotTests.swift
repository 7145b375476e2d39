import Glibc
import Testing
@testable import SkiffKit

/// Snapshots through the whole machine: `--snapshot-at` parks the vCPU at a
/// boot marker in the middle of a computation, the state and memory files are
/// written, and a restore in a new machine finishes the computation with the
/// same output as a run never interrupted.
@Suite(.enabled(if: kvmAvailable, "needs /dev/kvm"), .serialized)
struct MachineSnapshotTests {
    /// 64-bit code at 1 MiB: counts 1 to 9 in ECX and in memory at
    /// 0x180000, printing each digit on the serial port; after 5 it writes
    /// boot marker 0x20; after 9 it resets through the i8042.
    static let program: [UInt8] = [
        0x31, 0xC9,                                     // xor ecx, ecx
        0xFF, 0xC1,                                     // loop: inc ecx
        0x89, 0x0C, 0x25, 0x00, 0x00, 0x18, 0x00,       // mov [0x180000], ecx
        0x8B, 0x0C, 0x25, 0x00, 0x00, 0x18, 0x00,       // mov ecx, [0x180000]
        0x66, 0xBA, 0xF8, 0x03,                         // mov dx, 0x3f8
        0x88, 0xC8,                                     // mov al, cl
        0x04, 0x30,                                     // add al, '0'
        0xEE,                                           // out dx, al
        0x83, 0xF9, 0x05,                               // cmp ecx, 5
        0x75, 0x07,                                     // jne +7
        0xB0, 0x20,                                     // mov al, 0x20
        0x66, 0xBA, 0x40, 0x04,                         // mov dx, 0x440
        0xEE,                                           // out dx, al: the marker
        0x83, 0xF9, 0x09,                               // cmp ecx, 9
        0x75, 0xD5,                                     // jne loop
        0xB0, 0xFE, 0xE6, 0x64,                         // reset through the i8042
        0xF4,                                           // hlt
    ]

    /// A minimal ELF executable: one loadable segment at 1 MiB, entry there.
    static func elf(_ code: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        func put<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { out += $0 } }
        out += [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1, 0] + [UInt8](repeating: 0, count: 8)
        put(UInt16(2)); put(UInt16(62)); put(UInt32(1)); put(UInt64(0x100000)) // exec, x86_64, entry
        put(UInt64(64)); put(UInt64(0)); put(UInt32(0))                          // phoff, shoff, flags
        put(UInt16(64)); put(UInt16(56)); put(UInt16(1)); put(UInt16(64)); put(UInt16(0)); put(UInt16(0))
        put(UInt32(1)); put(UInt32(5)); put(UInt64(0x1000))                      // PT_LOAD, R+X, offset
        put(UInt64(0x100000)); put(UInt64(0x100000))                             // vaddr, paddr
        put(UInt64(code.count)); put(UInt64(code.count)); put(UInt64(0x1000))
        out += [UInt8](repeating: 0, count: 0x1000 - out.count) + code
        return out
    }

    func configuration(kernel: String) -> MachineConfiguration {
        var configuration = MachineConfiguration(kernelPath: kernel, commandLine: "")
        configuration.memoryMiB = 16
        configuration.console = .capture
        configuration.entropyDevice = false
        configuration.timeout = 20
        configuration.host = HostKind.detect()
        configuration.compatibility = .resolve(.auto, host: configuration.host)
        return configuration
    }

    @Test func aMachineSavedMidComputationAndRestoredFinishesTheSame() throws {
        let directory = "/tmp/skiff-machine-snapshot-\(getpid())"
        let kernel = directory + ".elf"
        SnapshotFiles.removeTree(directory)
        defer { SnapshotFiles.removeTree(directory); unlink(kernel) }
        let bytes = Self.elf(Self.program)
        let fd = open(kernel, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        let logger = Logger(label: "test")

        let whole = try Machine(configuration(kernel: kernel), logger: logger).run()
        #expect(whole.stopReason == .tripleFault || whole.stopReason == .reset)
        #expect(String(decoding: whole.consoleOutput, as: UTF8.self) == "123456789")

        var saving = configuration(kernel: kernel)
        saving.snapshot = SnapshotRequest(marker: 0x20, directory: directory, thenStop: true, required: true)
        let first = try Machine(saving, logger: logger).run()
        #expect(first.stopReason == .snapshotSaved(directory))
        #expect(String(decoding: first.consoleOutput, as: UTF8.self) == "12345")
        let outcome = try #require(first.snapshot)
        #expect(outcome.written && outcome.memoryBytes < 1 << 20, "16 MiB, mostly zero, written sparse")

        let snapshot = try SnapshotFiles.load(directory, on: HostKind.detect())
        var restoring = try MachineConfiguration.restoring(snapshot)
        restoring.console = .capture
        restoring.timeout = 20
        let rest = try Machine(restoring, logger: logger).run()
        #expect(rest.restored)
        #expect(String(decoding: rest.consoleOutput, as: UTF8.self) == "6789", "carried on where it stopped")
        #expect(rest.stopReason == whole.stopReason)

        // The memory file kept the snapshot's values: a second restore does the same.
        var again = try MachineConfiguration.restoring(try SnapshotFiles.load(directory, on: HostKind.detect()))
        again.console = .capture
        again.timeout = 20
        #expect(String(decoding: try Machine(again, logger: logger).run().consoleOutput, as: UTF8.self) == "6789")
    }
}
