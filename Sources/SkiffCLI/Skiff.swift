import ArgumentParser
import Glibc
import Host
import SkiffKit

/// `skiff`: the command-line front of SkiffKit. It parses, calls, prints.
///
/// Every command in the tree names itself (`commandName`). Without one,
/// ArgumentParser derives the name from the type's with `String(describing:)`,
/// for every command at every start, and the dynamic casts inside scan each
/// protocol conformance in the executable: `perf` put that at a tenth of
/// `skiff boot`'s CPU time (SkiffCLITests checks that no command lacks a name).
public struct Skiff: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "skiff",
        abstract: "A microVM monitor for Linux on /dev/kvm.",
        subcommands: [Boot.self, Restore.self, Run.self, Image.self, Bench.self])

    public init() {}
}

/// Process start, taken as early as `main` runs, for `--timings`.
nonisolated(unsafe) public var skiffStartTime: UInt64 = 0

extension Skiff {
    /// `skiff bench`: runs `skiff-bench` (built and installed beside `skiff`)
    /// with the same arguments, so that `skiff` never loads Foundation.
    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bench",
            abstract: "Measure a microVM against a container (crun or runc) on the same image (skiff bench --help).")

        @Argument(parsing: .captureForPassthrough, help: "Options of skiff-bench.")
        var arguments: [String] = []

        func run() throws {
            let path = siblingExecutable("skiff-bench")
            var argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
            execv(path, &argv)
            let error = errno
            printError("skiff: cannot run \(path): \(String(cString: strerror(error)))")
            throw ExitCode(126)
        }
    }
}

