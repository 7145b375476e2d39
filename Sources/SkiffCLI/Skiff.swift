import ArgumentParser
import Glibc
import SkiffKit

/// `skiff`: the command-line front of SkiffKit. It parses, calls, prints.
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

/// An executable installed in the same directory as the running `skiff`.
func siblingExecutable(_ name: String) -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard length > 0 else { return name }
    let own = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    guard let slash = own.lastIndex(of: "/") else { return name }
    return String(own[...slash]) + name
}
