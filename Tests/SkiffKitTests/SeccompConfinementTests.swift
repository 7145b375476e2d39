import Foundation
import Glibc
import Testing
import TestSupport
@testable import SkiffKit

/// The VMM's seccomp lists at work in a real `skiff boot` of a tiny guest
/// that spins (`jmp $`): every thread filtered, and a forbidden call on any
/// of them ends the whole process with a line naming it.
@Suite(.enabled(if: kvmUsable, "needs /dev/kvm"), .serialized)
struct SeccompConfinementTests {
    static let guest = tinyGuest(spin: true) ?? "/nonexistent/tiny-guest"

    func boot(_ extra: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: skiffExecutable)
        process.arguments = ["boot", "--kernel", Self.guest, "--memory", "32", "--console", "none"] + extra
        process.standardInput = FileHandle.nullDevice
        return process
    }

    func run(_ extra: [String]) throws -> (status: Int32, stderr: String) {
        let process = try boot(extra)
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, stderr)
    }

    @Test func everyThreadOfARunningVMMIsFiltered() throws {
        let process = try boot(["--cpus", "2", "--timeout", "20"])
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        usleep(700_000) // past setup, into KVM_RUN
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(process.processIdentifier)/task")
        var names: [String] = []
        for task in tasks {
            let base = "/proc/\(process.processIdentifier)/task/\(task)"
            let status = try String(contentsOfFile: base + "/status", encoding: .utf8)
            let name = try String(contentsOfFile: base + "/comm", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            names.append(name)
            // KVM's own kernel worker (kvm-nx-lpage-recovery) is listed as a task too; it inherits the same.
            #expect(status.contains("Seccomp:\t2"), "\(name): \(status.split(separator: "\n").filter { $0.hasPrefix("Seccomp") })")
            #expect(status.contains("NoNewPrivs:\t1"), "\(name)")
        }
        #expect(names.filter { $0 == "skiff-vcpu" }.count == 2, "\(names)")
        for name in ["skiff", "skiff-devices", "skiff-signals"] { #expect(names.contains(name), "\(names)") }
        // The signal thread still stops the machine under its list.
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 143, "\(stderr)")
        #expect(!stderr.contains("seccomp"), "\(stderr)")
    }

    static let probes: [(String, String)] = [
        ("vcpu:execve", "execve"), ("vcpu:fork", "clone"), ("vcpu:socket", "socket"), ("vcpu:open", "openat"),
        ("devices:execve", "execve"), ("devices:fork", "clone"), ("devices:socket", "socket"), ("devices:open", "openat"),
        ("main:open", "openat"), ("signals:execve", "execve"),
    ]

    @Test(arguments: probes)
    func aForbiddenCallEndsTheVMM(probe: String, call: String) throws {
        let (status, stderr) = try run(["--timeout", "20", "--seccomp-probe", probe])
        #expect(status == 159, "\(stderr)")
        let thread = probe.split(separator: ":")[0]
        #expect(stderr.contains("skiff: seccomp: the skiff-\(thread) thread made a forbidden system call, \(call) ("), "\(stderr)")
    }

    /// Without a filter (or only logging) the same calls go through and the guest runs on.
    @Test(arguments: ["off", "log"])
    func withoutKillTheProbeDoesNotStopTheVMM(mode: String) throws {
        let (status, stderr) = try run(["--timeout", "1", "--seccomp", mode, "--seccomp-probe", "vcpu:socket"])
        #expect(status == 124, "\(stderr)")
        #expect(!stderr.contains("forbidden"), "\(stderr)")
    }

    @Test func aBadModeIsAUsageError() throws {
        let (status, stderr) = try run(["--seccomp", "maybe"])
        #expect(status == 64, "\(stderr)")
        #expect(stderr.contains("--seccomp must be kill, log or off"), "\(stderr)")
    }
}
