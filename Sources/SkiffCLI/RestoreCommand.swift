import Container
import ArgumentParser
import Glibc
import SkiffKit

extension Skiff {
    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "restore",
            abstract: "Start a microVM from a snapshot (skiff boot --snapshot-at ... --snapshot-to DIR).",
            discussion: """
            The snapshot's memory file is mapped copy-on-write: the guest's pages load as it touches \
            them, and any number of restores of one snapshot share one copy in the page cache. A guest \
            saved at `ready` (Skiff's init, waiting for its hand-over) gets this run's wall-clock time, \
            fresh entropy, and the command given after "--" (without one, the command it booted with). \
            A snapshot is refused, with its reason, if it is damaged or was taken on another kind of host, \
            another CPU, or by another snapshot format.
            """)

        @Argument(help: "The snapshot directory.")
        var directory: String

        @Option(help: ArgumentHelp("Where the serial console goes.", valueName: "stdio|none|file:PATH"))
        var console: String = "stdio"

        @Option(help: ArgumentHelp("A host backend in place of the saved one: vdX=PATH (disk image), ethN=TAP or vsock=PATH (Unix socket); repeatable.", valueName: "DEVICE=BACKEND"))
        var override: [String] = []

        @Option(help: "Stop the VM after this many seconds (exit status 124).")
        var timeout: Double?

        @Option(help: "This clone's hostname (a guest saved at ready sets it before running the command).")
        var hostname: String?

        @Flag(help: "Print the restore time and time to each boot marker.")
        var timings = false

        @Flag(name: .shortAndLong, help: "Log VMM details.")
        var verbose: Int

        @OptionGroup var confinement: ConfinementOptions

        @Argument(parsing: .postTerminator, help: ArgumentHelp("The command the guest's init runs (after \"--\").", valueName: "COMMAND"))
        var command: [String] = []

        func validate() throws {
            if let hostname {
                guard (1...64).contains(hostname.utf8.count), !hostname.utf8.contains(0) else {
                    throw ValidationError("--hostname must be 1 to 64 bytes")
                }
            }
            guard ConsoleMode(argument: console) != nil else {
                throw ValidationError("--console must be stdio, none or file:PATH, not '\(console)'")
            }
        }

        func run() throws {
            let logger = makeLogger(verbosity: verbose)
            let snapshot = try SnapshotFiles.load(directory, on: HostKind.detect())
            var configuration = try MachineConfiguration.restoring(snapshot, overrides: override)
            configuration.console = ConsoleMode(argument: console)!
            configuration.timeout = timeout
            confinement.apply(to: &configuration)
            configuration.handoverPayload = GuestHandover.command(command, hostname: hostname)
            do { try configuration.validate() } catch { throw ValidationError("\(error)") }
            let report = try Machine(configuration, logger: logger).run(startedAt: skiffStartTime)
            if timings { printTimings(report) }
            try finish(report, logger: logger)
        }
    }
}
