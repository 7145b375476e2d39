import Foundation
import Glibc
import Testing
import TestSupport

/// The Swift runtime's crash backtracer stays off in `skiff` (Sources/
/// CProcessStart/process_start.c): run from PATH, it looked for
/// `swift-backtrace` relative to the working directory and ran what it
/// found there on a crash. And what skiff sets up for that is gone by the
/// time it starts anything: children see the environment skiff was given.
@Suite struct CrashHandlerTests {
    /// A `libexec/swift/linux/swift-backtrace` in the working directory that
    /// leaves a mark when run; `skiff` found through PATH (argv[0] is then
    /// its bare name), its guest spinning, then SIGSEGV: skiff dies of it,
    /// the file never runs. Before, the file ran and skiff hung.
    @Test(.enabled(if: kvmUsable, "needs /dev/kvm"))
    func aCrashRunsNothingFromTheWorkingDirectory() throws {
        let guest = try #require(tinyGuest(spin: true), "bench/start/make-tiny-guest.py failed")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-crash-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let libexec = directory.appendingPathComponent("libexec/swift/linux")
        try FileManager.default.createDirectory(at: libexec, withIntermediateDirectories: true)
        let mark = directory.appendingPathComponent("ran")
        let handler = libexec.appendingPathComponent("swift-backtrace")
        try "#!/bin/sh\ntouch '\(mark.path)'\n".write(to: handler, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: handler.path)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["skiff", "boot", "--kernel", guest, "--memory", "32", "--console", "none",
                             "--compat", "none", "--seccomp", "off", "--timeout", "20"]
        var environment = ProcessInfo.processInfo.environment
        environment["SWIFT_BACKTRACE"] = nil
        let skiffDirectory = URL(fileURLWithPath: skiffExecutable).deletingLastPathComponent().path
        environment["PATH"] = skiffDirectory + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        process.environment = environment
        process.currentDirectoryURL = directory
        process.standardInput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        usleep(500_000) // past the start, into KVM_RUN
        try #require(process.isRunning, "the spinning guest runs until stopped")
        kill(process.processIdentifier, SIGSEGV)
        var waited = 0
        while process.isRunning && waited < 100 { usleep(100_000); waited += 1 }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        #expect(waited < 100, "skiff did not end within 10 s of SIGSEGV")
        #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGSEGV,
                "\(process.terminationReason) \(process.terminationStatus)")
        #expect(!FileManager.default.fileExists(atPath: mark.path), "skiff ran ./libexec/swift/linux/swift-backtrace")
    }

    /// `skiff bench` execs `skiff-bench` beside it; here that is a script
    /// that writes out its environment. Without SWIFT_BACKTRACE skiff's
    /// child gets none; with one, the child gets the user's, unchanged; the
    /// rest passes through.
    @Test(arguments: [nil, "enable=no,timeout=3"])
    func commandsSkiffStartsGetItsEnvironment(backtrace: String?) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-environment-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let skiff = directory.appendingPathComponent("skiff")
        try FileManager.default.copyItem(atPath: skiffExecutable, toPath: skiff.path)
        let bench = directory.appendingPathComponent("skiff-bench")
        try "#!/bin/sh\nenv > \"$1\"\n".write(to: bench, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: bench.path)
        let output = directory.appendingPathComponent("environment")

        let process = Process()
        process.executableURL = skiff
        process.arguments = ["bench", output.path]
        var environment = ProcessInfo.processInfo.environment
        environment["SWIFT_BACKTRACE"] = backtrace
        environment["SKIFF_ENVIRONMENT_PROBE"] = "passed through"
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let lines = try String(contentsOf: output, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.contains("SKIFF_ENVIRONMENT_PROBE=passed through"))
        let settings = lines.filter { $0.hasPrefix("SWIFT_BACKTRACE=") }
        #expect(settings == (backtrace.map { ["SWIFT_BACKTRACE=" + $0] } ?? []), "\(settings)")
    }
}
