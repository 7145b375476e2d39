import ArgumentParser
import Bench
import Foundation
import Glibc
import Host
import SkiffCLI
import SkiffKit

/// `skiff bench`, in its own executable: the bench spawns runtimes and writes
/// JSON and SVG with Foundation, which `skiff` itself must not load (its
/// start is what the bench measures). `skiff bench ARGS` runs this.
@main
struct SkiffBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "skiff bench",
            abstract: "Measure a microVM against a container (crun or runc) on the same image.",
            discussion: """
            Startup phase by phase (each run a fresh process), then the classic table: startup, \
            disk footprint, CPU of a fixed user-space loop as a % of native, memory per idle \
            instance and the density it implies; and QEMU's microvm where installed. Needs root \
            (the OCI runtime) and /dev/kvm.
            """)

        @Option(help: "The image (as for skiff run).")
        var image: String

        @Option(help: "Startup runs of each kind.")
        var runs = 10

        @Option(help: "Idle instances of each kind started at once for the memory measurement.")
        var instances = 3

        @Option(help: "Guest memory of each microVM, MiB.")
        var memory = 128

        @Option(help: "Memory budget for the density row, MiB.")
        var budget = 16384

        @Option(help: "Iterations of the CPU workload's loop.")
        var cpuIterations = 2_000_000

        @Option(help: "Write the full report (every run's raw timestamps) as JSON.")
        var json: String?

        @Option(help: "Write a chart of the startup phases as SVG.")
        var svg: String?

        @Flag(name: .shortAndLong, help: "Log details.")
        var verbose = false

        @Argument(parsing: .postTerminator, help: "The command (default: the image's Entrypoint and Cmd).")
        var arguments: [String] = []

        func validate() throws {
            guard (1...1000).contains(runs) else { throw ValidationError("--runs must be between 1 and 1000") }
            guard (1...64).contains(instances) else { throw ValidationError("--instances must be between 1 and 64") }
            guard (16...(1 << 20)).contains(memory) else { throw ValidationError("--memory must be between 16 and 1048576 MiB") }
            guard budget > 0, cpuIterations > 0 else { throw ValidationError("--budget and --cpu-iterations must be positive") }
        }

        func run() throws {
            let logger = SkiffCLI.makeLogger(verbosity: verbose ? 1 : 0)
            let guest = try GuestArtifacts.ensureBuilt()
            var options = BenchRunner.Options(image: image, skiffExecutable: Self.skiffExecutable(), guest: guest, host: HostKind.detect())
            options.arguments = arguments
            options.runs = runs
            options.instances = instances
            options.memoryMiB = memory
            options.budgetMiB = budget
            options.cpuIterations = cpuIterations
            let report = try BenchRunner(options, logger: logger).run()
            print(BenchRendering.table(report))
            if let json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
                try encoder.encode(report).write(to: URL(fileURLWithPath: json))
            }
            if let svg { try BenchRendering.svg(report).write(toFile: svg, atomically: true, encoding: .utf8) }
        }

        /// The `skiff` beside this executable: the one whose runs are measured.
        static func skiffExecutable() -> String {
            siblingExecutable("skiff")
        }
}
