import Container
import Glibc
import SkiffKit

extension Skiff {
    struct Restore: SkiffCommand {
        static let spec = CommandSpec(
            name: "restore",
            abstract: "Start a microVM from a snapshot (skiff boot --snapshot-at ... --snapshot-to DIR).",
            discussion: """
            The snapshot's memory file is mapped copy-on-write: the guest's pages load as it touches \
            them, and any number of restores of one snapshot share one copy in the page cache. A guest \
            saved at `ready` (Skiff's init, waiting for its hand-over) gets this run's wall-clock time, \
            fresh entropy, and the command given after "--" (without one, the command it booted with). \
            A snapshot is refused, with its reason, if it is damaged or was taken on another kind of host, \
            another CPU, or by another snapshot format.
            """,
            options: [
                .console,
                .repeating("override", valueName: "DEVICE=BACKEND",
                           help: "A host backend in place of the saved one: vdX=PATH (disk image), ethN=TAP or vsock=PATH (Unix socket); repeatable."),
                .timeout,
                .value("hostname", valueName: "name", help: "This clone's hostname (a guest saved at ready sets it before running the command)."),
                .flag("timings", help: "Print the restore time and time to each boot marker."),
                .flag("verbose", short: "v", help: "Log VMM details."),
            ] + ConfinementOptions.options,
            positionals: [PositionalSpec(name: "directory", help: "The snapshot directory.")],
            trailing: .afterTerminator(name: "command", help: "The command the guest's init runs (after \"--\")."))

        var directory: String
        var console: ConsoleMode
        var override: [String]
        var timeout: Double?
        var hostname: String?
        var timings: Bool
        var verbose: Int
        var confinement: ConfinementOptions
        var command: [String]

        init(_ arguments: ParsedArguments) throws(UsageError) {
            directory = arguments.positionals[0]
            console = try arguments.console()
            override = arguments.strings("override")
            timeout = try arguments.double("timeout")
            hostname = arguments.string("hostname")
            timings = arguments.flag("timings")
            verbose = arguments.count("verbose")
            confinement = try ConfinementOptions(arguments)
            command = arguments.trailing
            if let hostname {
                guard (1...64).contains(hostname.utf8.count), !hostname.utf8.contains(0) else {
                    throw UsageError("--hostname must be 1 to 64 bytes")
                }
            }
        }

        func run() throws {
            let logger = makeLogger(verbosity: verbose)
            let snapshot = try SnapshotFiles.load(directory, on: HostKind.detect())
            var configuration = try MachineConfiguration.restoring(snapshot, overrides: override)
            configuration.console = console
            configuration.timeout = timeout
            confinement.apply(to: &configuration)
            configuration.handoverPayload = GuestHandover.command(command, hostname: hostname)
            do { try configuration.validate() } catch { throw UsageError("\(error)") }
            let report = try Machine(configuration, logger: logger).run(startedAt: skiffStartTime)
            if timings { printTimings(report) }
            try finish(report, logger: logger)
        }
    }
}
