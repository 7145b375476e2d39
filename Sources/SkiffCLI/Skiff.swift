import ArgumentParser
import SkiffKit

/// `skiff`: the command-line front of SkiffKit. It parses, calls, prints.
public struct Skiff: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "skiff",
        abstract: "A microVM monitor for Linux on /dev/kvm.",
        subcommands: [Boot.self, Run.self, Image.self, Bench.self])

    public init() {}
}

/// Process start, taken as early as `main` runs, for `--timings`.
nonisolated(unsafe) public var skiffStartTime: UInt64 = 0
