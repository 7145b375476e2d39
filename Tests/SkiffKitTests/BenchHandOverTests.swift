import Foundation
import Testing
import TestSupport

/// `skiff bench` execs skiff-bench beside it; what it hands over is the
/// arguments and a process whose signals work (exec keeps the mask, and
/// skiff blocks its shutdown signals in every thread).
@Suite struct BenchHandOverTests {
    @Test func skiffBenchStartsWithSignalsUnblockedAndTheArguments() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-bench-hand-over-\(getpid())").path
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.copyItem(atPath: builtExecutable("skiff"), toPath: directory + "/skiff")
        // Python, not a shell: dash clears its signal mask as it starts.
        let report = """
            #!/usr/bin/python3
            import sys
            print([line for line in open("/proc/self/status") if line.startswith("SigBlk")][0], end="")
            print(" ".join(sys.argv[1:]))

            """
        FileManager.default.createFile(atPath: directory + "/skiff-bench", contents: Data(report.utf8), attributes: [.posixPermissions: 0o755])
        let result = try runProgram([directory + "/skiff", "bench", "--runs", "3"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "SigBlk:\t0000000000000000\n--runs 3\n", "before the fix: SigBlk 0000000808004007")
    }
}
