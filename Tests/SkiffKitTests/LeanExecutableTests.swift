import Testing
import TestSupport

/// What `skiff` and `skiff-oci` must not link (issue 11): each of these
/// modules costs every start its relocated pages and conformance records, and
/// one stray call (a `JSONDecoder`, `contains` with a String, an `async`
/// function) brings it back unnoticed. The symbol tables say what was linked.
@Suite struct LeanExecutableTests {
    static let forbidden = [
        ("$s20FoundationEssentials", "FoundationEssentials"), ("$s10Foundation", "Foundation"),
        ("$s17_StringProcessing", "_StringProcessing"), ("$s12_RegexParser", "_RegexParser"),
        ("dispatch_async", "Dispatch"), ("swift_task_create", "the concurrency runtime"),
        ("$s7Logging", "swift-log"), ("$s6Crypto", "swift-crypto"), ("u_init", "ICU"),
    ]

    @Test(arguments: ["skiff", "skiff-oci"])
    func linksNoFoundationDispatchRegexOrConcurrency(executable: String) throws {
        let symbols = try runProgram(["nm", "--format=just-symbols", builtExecutable(executable)])
        try #require(symbols.status == 0, "nm failed: \(symbols.stderr)")
        let names = symbols.stdout.split(separator: "\n")
        try #require(names.count > 1000, "no symbol table to check")
        for (prefix, module) in Self.forbidden {
            let found = names.filter { $0.hasPrefix(prefix) }
            #expect(found.isEmpty, "\(executable) links \(module): \(found.prefix(3))")
        }
        let libraries = try runProgram(["ldd", builtExecutable(executable)]).stdout
        #expect(!libraries.contains("libFoundation") && !libraries.contains("libicu") && !libraries.contains("libdispatch"),
                "\(executable) loads \(libraries)")
    }
}
