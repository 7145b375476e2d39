import Testing
import TestSupport

/// `skiff` and `skiff-oci` handle what guests and images send them, so what
/// the loader leaves writable matters: each is position-independent (the
/// kernel places it at a random address) with full RELRO (every symbol bound
/// at load, then the GOT and relocated data read-only). Package.swift's
/// `leanExecutable` asks for both; the dynamic section says what was built.
@Suite struct ExecutableHardeningTests {
    @Test(arguments: ["skiff", "skiff-oci"])
    func isPositionIndependentWithFullRELRO(executable: String) throws {
        let dynamic = try runProgram(["readelf", "--dynamic", "--program-headers", "--wide", builtExecutable(executable)])
        try #require(dynamic.status == 0, "readelf failed: \(dynamic.stderr)")
        let lines = dynamic.stdout.split(separator: "\n")
        #expect(lines.contains { $0.contains("GNU_RELRO") }, "\(executable) has no RELRO segment")
        let flags = lines.filter { $0.contains("(FLAGS") }.joined(separator: "\n")
        #expect(flags.contains("BIND_NOW"), "\(executable) binds lazily: \(flags)")
        #expect(flags.contains("PIE"), "\(executable) is not position-independent: \(flags)")
    }
}
