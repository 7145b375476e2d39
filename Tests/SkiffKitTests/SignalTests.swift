import Foundation
import Glibc
import Testing
import TestSupport
@testable import SkiffKit

/// SIGINT, SIGTERM, SIGHUP and SIGQUIT stop a running VM the same way: one
/// line, exit 128+N, no crash report (SIGQUIT once printed a backtrace and
/// left the VM running). The guest spins (`jmp $`) until stopped.
@Suite(.enabled(if: kvmUsable, "needs /dev/kvm"), .serialized)
struct SignalTests {
    @Test(arguments: [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM"), (SIGHUP, "SIGHUP"), (SIGQUIT, "SIGQUIT")])
    func aSignalStopsTheVMWithItsExitStatus(signal: Int32, name: String) throws {
        let guest = try #require(tinyGuest(spin: true), "bench/start/make-tiny-guest.py failed")

        let process = Process()
        process.executableURL = URL(fileURLWithPath: skiffExecutable)
        process.arguments = ["boot", "--kernel", guest, "--memory", "32", "--console", "none", "--compat", "none"]
        process.standardInput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        usleep(500_000) // past the start, into KVM_RUN
        #expect(process.isRunning, "the spinning guest runs until stopped")
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 128 + signal, "\(stderr)")
        #expect(stderr.contains("skiff: stopped by \(name)"), "\(stderr)")
        #expect(!stderr.contains("Backtrace") && !stderr.contains("Crash"), "\(stderr)")
    }
}
