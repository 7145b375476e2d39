import Testing
import TestSupport

/// `skiff` and `skiff-oci` handle what guests and images send them, so what
/// the loader leaves writable matters: each is position-independent (the
/// kernel places it at a random address) with full RELRO (every symbol bound
/// at load, then the GOT and relocated data read-only) and read-only
/// constants. Package.swift's `leanExecutable` asks for all three; the
/// dynamic section and the section headers say what was built.
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

    /// Nothing named `.rodata` is writable: Swift emits some constants that
    /// the loader relocates into writable `.rodata` sections, and lld then
    /// made all of `.rodata` writable (Sources/skiff/link/relro.ld moves them
    /// into `.data.rel.ro`, which RELRO protects).
    @Test(arguments: ["skiff", "skiff-oci"])
    func constantsAreReadOnly(executable: String) throws {
        let sections = try runProgram(["readelf", "--section-headers", "--wide", builtExecutable(executable)])
        try #require(sections.status == 0, "readelf failed: \(sections.stderr)")
        // "  [27] .rodata  PROGBITS  address offset size entsize FLAGS link info align"
        let rodata = sections.stdout.split(separator: "\n").filter { $0.contains("] .rodata") }
        try #require(!rodata.isEmpty, "\(executable) has no .rodata")
        for line in rodata {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            let flags = fields.count >= 9 ? fields[fields.count - 4] : ""
            #expect(!flags.contains("W"), "\(executable): \(line)")
        }
        let relro = sections.stdout.split(separator: "\n").filter { $0.contains("] .data.rel.ro") }
        #expect(!relro.isEmpty, "\(executable) has no .data.rel.ro")
    }
}
