import Foundation
import Glibc
import Testing
import TestSupport
@testable import SkiffKit

/// Many VMMs: tiny guests (one `out` to the i8042's reset line) started 50
/// at once and 200 one after another, each a whole `skiff boot` process with
/// its seccomp lists; every one must exit 0 and leave nothing behind.
@Suite(.enabled(if: kvmUsable, "needs /dev/kvm"), .serialized)
struct SoakTests {
    static let guest = tinyGuest(spin: false) ?? "/nonexistent/tiny-guest"

    func start() throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: skiffExecutable)
        process.arguments = ["boot", "--kernel", Self.guest, "--memory", "32", "--console", "none", "--timeout", "60"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    @Test func fiftyAtOnceAllExitZero() throws {
        let processes = try (0..<50).map { _ in try start() }
        for process in processes { process.waitUntilExit() }
        let statuses = processes.map(\.terminationStatus)
        #expect(statuses.allSatisfy { $0 == 0 }, "exit statuses: \(statuses)")
    }

    @Test func twoHundredInSequenceAllExitZero() throws {
        var failures: [(Int, Int32)] = []
        let started = Date()
        for index in 0..<200 {
            let process = try start()
            process.waitUntilExit()
            if process.terminationStatus != 0 { failures.append((index, process.terminationStatus)) }
        }
        #expect(failures.isEmpty, "failed runs (index, status): \(failures)")
        print("200 tiny VMs in sequence: \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
    }
}
