import Foundation
import Testing
import X86_64
import TestSupport
@testable import SkiffKit

/// Boots the real guest kernel. Each boot takes tens of seconds on a PVM host
/// (milliseconds on hardware KVM), so each checks as much as it can.
@Suite(.enabled(if: kvmUsable, "needs /dev/kvm"), .serialized, .timeLimit(.minutes(10)))
struct EndToEndBootTests {
    let logger = Logger(label: "e2e")

    func boot(kernel: String, initrd: String, append: String, cpus: Int = 1,
              snapshot: SnapshotRequest? = nil) throws -> (MachineReport, String) {
        let console = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-console-\(UUID()).log").path
        defer { try? FileManager.default.removeItem(atPath: console) }
        let host = HostKind.detect()
        let profile = CompatibilityProfile.resolve(.auto, host: host)
        var configuration = MachineConfiguration(
            kernelPath: kernel, initrdPath: initrd,
            commandLine: KernelCommandLine.compose(base: nil, append: append, profile: profile))
        configuration.cpus = cpus
        configuration.console = .file(console)
        configuration.forwardInput = false
        configuration.compatibility = profile
        configuration.host = host
        configuration.timeout = 400
        configuration.snapshot = snapshot
        let report = try Machine(configuration, logger: logger).run()
        return (report, try String(contentsOfFile: console, encoding: .utf8))
    }

    /// A warm start runs no script: once scripts/build-guest.sh has built the
    /// guest, skiff finds it in-process by the source tree's key (the script
    /// and `GuestArtifacts.sourceKey` must hash the same files the same way).
    @Test func theBuiltGuestIsFoundWithoutRunningTheScript() throws {
        let built = try GuestArtifacts.ensureBuilt()
        let key = try #require(GuestArtifacts.sourceKey(repository: repositoryRoot))
        #expect(FileManager.default.fileExists(atPath: GuestArtifacts.cacheDirectory() + "/guest-\(key).paths"),
                "the script and skiff disagree on the source key \(key)")
        #expect(GuestArtifacts.cached(repository: repositoryRoot) == built)
    }

    /// The project's guest with 2 vCPUs: greeting, CPU count, a command run by
    /// init with its output and exit status, boot markers in order, clean reset.
    /// It is snapshotted at `ready` (both vCPUs parked, the run carrying on),
    /// and `skiff restore` of that snapshot runs another command: the restored
    /// guest has both CPUs, this moment's clock, and its own exit status.
    @Test func projectGuestBootsWithTwoCPUsRunsACommandAndRestoresFromReady() throws {
        let guest = try GuestArtifacts.ensureBuilt()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-boot-snapshot-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (report, console) = try boot(
            kernel: guest.kernel, initrd: guest.initrd,
            append: "-- /bin/sh -c \"echo cpus=$(grep -c ^processor /proc/cpuinfo); exit 3\"", cpus: 2,
            snapshot: SnapshotRequest(marker: BootMarkerPhase.guestReady.rawValue, directory: directory, thenStop: false, required: true))
        #expect(report.stopReason == .reset, "console:\n\(console)")
        #expect(console.contains("skiff-init: hello from the guest: uptime"))
        #expect(console.contains(", 2 CPUs, "))
        #expect(console.contains("cpus=2"))
        #expect(console.contains("skiff-init: /bin/sh exited with status 3"))
        #expect(report.workloadExitStatus == 3)
        let phases = report.timeline.markers.compactMap(\.phase)
        #expect(phases == [.firstInstruction, .initStarted, .guestReady, .handoverTaken, .workloadStarted, .workloadExited, .shutdownRequested])
        let times = report.timeline.markers.map(\.time)
        #expect(times == times.sorted())
        #expect(report.timeline.setupDone < times[0] && times.last! <= report.timeline.stopped)
        #expect(report.kernel?.format == X86BootState.KernelFormat.elf.rawValue)
        let saved = try #require(report.snapshot)
        #expect(saved.written && saved.directory == directory)

        let before = Date().timeIntervalSince1970
        let restored = try runProgram([skiffExecutable, "restore", "--timings", "--hostname", "clone-1", directory, "--",
                                       "/bin/sh", "-c", "sleep 1; echo cpus=$(grep -c ^processor /proc/cpuinfo) now=$(date +%s); hostname; exit 5"])
        let after = Date().timeIntervalSince1970
        // `sleep 1` returns: the restored guest's armed timer fires (the TSC deadline is restored after the LAPIC).
        #expect(restored.status == 0, "\(restored.stderr)")
        #expect(restored.stdout.contains("skiff-init: /bin/sh exited with status 5"), "\(restored.stdout)")
        #expect(!restored.stdout.contains("hello from the guest"), "no second boot: \(restored.stdout)")
        let now = try #require(restored.stdout.split(whereSeparator: \.isNewline).first { $0.hasPrefix("cpus=2 now=") }, "\(restored.stdout)")
        // The console is a terminal: "\r\n" ends a line (one Character in Swift, so split on isNewline).
        let guestTime = try #require(Double(now.dropFirst("cpus=2 now=".count).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(guestTime >= before.rounded(.down) - 2 && guestTime <= after + 2, "the guest's clock is this run's")
        #expect(restored.stderr.contains("workload exit status: 5"))
        #expect(restored.stdout.split(whereSeparator: \.isNewline).contains("clone-1"), "the clone's own hostname: \(restored.stdout)")
        #expect(!restored.stderr.contains("init started"), "the restore starts after init: \(restored.stderr)")

        // Damaged: one line, exit 1, nothing run.
        let state = directory + "/state"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: state))
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: state))
        let damaged = try runProgram([skiffExecutable, "restore", directory])
        #expect(damaged.status == 1 && damaged.stdout.isEmpty)
        #expect(damaged.stderr == "Error: not a usable snapshot: checksum mismatch: the file is damaged\n", "\(damaged.stderr)")
        try Data(bytes.prefix(100)).write(to: URL(fileURLWithPath: state))
        #expect(try runProgram([skiffExecutable, "restore", directory]).stderr.contains("not a usable snapshot"))
    }

    /// Someone else's initramfs (made by GNU cpio, a busybox shell script as
    /// /init that ends with `reboot -f`) on the project's kernel: exit 0.
    @Test func foreignBusyboxInitramfsBootsAndResets() throws {
        let guest = try GuestArtifacts.ensureBuilt()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-foreign-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        for directory in ["bin", "dev", "proc"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(directory), withIntermediateDirectories: true)
        }
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: root.appendingPathComponent("bin/busybox").path)
        let script = """
        #!/bin/busybox sh
        /bin/busybox mount -t devtmpfs dev /dev
        exec >/dev/console 2>&1
        /bin/busybox mount -t proc proc /proc
        echo "foreign init on $(/bin/busybox uname -sr), $(/bin/busybox grep -c ^processor /proc/cpuinfo) CPU"
        /bin/busybox reboot -f
        """
        let initPath = root.appendingPathComponent("init").path
        try script.write(toFile: initPath, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: initPath)
        let archive = root.path + ".cpio"
        defer { try? FileManager.default.removeItem(atPath: archive) }
        let cpio = Process()
        cpio.executableURL = URL(fileURLWithPath: "/bin/sh")
        cpio.arguments = ["-c", "cd '\(root.path)' && find . | cpio -o -H newc --quiet > '\(archive)'"]
        try cpio.run()
        cpio.waitUntilExit()
        try #require(cpio.terminationStatus == 0, "cpio failed")

        let (report, console) = try boot(kernel: guest.kernel, initrd: archive, append: "")
        #expect(report.stopReason == .reset, "console:\n\(console)")
        #expect(report.stopReason.exitStatus == 0)
        #expect(console.contains("foreign init on Linux 6.1"))
        #expect(console.contains(", 1 CPU"))
        #expect(report.timeline.first(.initStarted) == nil) // not Skiff's init
    }
}
