import Container
import Glibc
import Host
import JSON
import Images
import SkiffKit

extension Skiff {
    struct Run: SkiffCommand {
        static let spec = CommandSpec(
            name: "run",
            abstract: "Run an OCI container image in a microVM.",
            discussion: """
            IMAGE is an OCI image layout (oci:DIR[:TAG], or DIR[:TAG]) or a docker save archive \
            (docker-archive:FILE, or FILE). Its layers become a read-only ext4 root disk, cached by \
            the image's digest (see `skiff image ls`); the container writes to a tmpfs overlay. \
            Arguments after IMAGE replace the image's Cmd. The container's stdout and stderr arrive \
            on skiff's stdout and stderr; the kernel's console is shown only if the run fails. \
            Exit status: the container's (128+N for signal N, 127 for an unknown executable), \
            125 when the container could not be started.
            """,
            options: [
                .repeating("env", short: "e", valueName: "KEY=VALUE", help: "Set an environment variable (KEY alone: the host's value); repeatable."),
                .value("workdir", short: "w", valueName: "path", help: "Working directory inside the container (absolute)."),
                .value("user", short: "u", valueName: "USER[:GROUP]", help: "User to run as, resolved in the image's /etc/passwd and /etc/group."),
                .value("entrypoint", valueName: "path", help: "Replace the image's Entrypoint (and drop its Cmd); \"\" clears it."),
                .value("hostname", valueName: "name", help: "The container's hostname (default: 12 random hex digits)."),
                .flag("interactive", short: "i", help: "Forward standard input to the container."),
                .flag("tty", short: "t", help: "Give the container a terminal (Ctrl-a x detaches)."),
                .value("max-image-size", valueName: "SIZE[K|M|G|T]",
                       help: "Most an image may write when unpacked (default: 32 times its compressed layers, 2 GiB to 64 GiB; also SKIFF_MAX_IMAGE_SIZE)."),
                .flag("no-snapshot", help: "Boot the guest cold instead of restoring the image's ready snapshot (and take none)."),
                .value("report", help: "", hidden: true),  // skiff bench: where to write this run's phases (JSON)
            ] + VMOptions.options + ConfinementOptions.options,
            positionals: [PositionalSpec(name: "image", help: "The image.")],
            trailing: .afterPositionals(name: "args", help: "The command and its arguments (replace the image's Cmd)."))

        var environment: [String]
        var workdir: String?
        var user: String?
        var entrypoint: String?
        var hostname: String?
        var interactive: Bool
        var tty: Bool
        var maxImageSize: String?
        var noSnapshot: Bool
        var report: String?
        var vm: VMOptions
        var confinement: ConfinementOptions
        var image: String
        var arguments: [String]

        init(_ parsed: ParsedArguments) throws(UsageError) {
            environment = parsed.strings("env")
            workdir = parsed.string("workdir")
            user = parsed.string("user")
            entrypoint = parsed.string("entrypoint")
            hostname = parsed.string("hostname")
            interactive = parsed.flag("interactive")
            tty = parsed.flag("tty")
            maxImageSize = parsed.string("max-image-size")
            noSnapshot = parsed.flag("no-snapshot")
            report = parsed.string("report")
            vm = try VMOptions(parsed)
            confinement = try ConfinementOptions(parsed)
            image = parsed.positionals[0]
            arguments = parsed.trailing
            if let maxImageSize, UnpackBudget.parseSize(maxImageSize) == nil {
                throw UsageError("--max-image-size must be a positive size like 4096, 512M or 10G, not '\(maxImageSize)'")
            }
        }

        var commandArguments: [String] { arguments.first == "--" ? Array(arguments.dropFirst()) : arguments }

        var containerOptions: ContainerSpec.Options {
            var options = ContainerSpec.Options()
            options.entrypoint = entrypoint
            options.arguments = commandArguments
            options.environment = environment
            options.workingDirectory = workdir
            options.user = user
            options.hostname = hostname
            options.terminal = tty
            options.interactive = interactive
            return options
        }

        /// Errors before the container runs (a bad image, no KVM) exit 125, as docker's do.
        func run() throws {
            do {
                try runContainer()
            } catch let error as MachineError {
                printError("skiff: \(error)")
                throw ExitStatus(125)
            }
        }

        func runContainer() throws {
            let logger = vm.makeLogger()
            let host = HostKind.detect()
            let profile = CompatibilityProfile.resolve(vm.compatibilityMode, host: host)
            let guest = try GuestArtifacts.ensureBuilt()
            var base = MachineConfiguration(kernelPath: guest.kernel, initrdPath: guest.initrd,
                                            commandLine: KernelCommandLine.compose(base: nil, append: nil, profile: profile))
            try vm.apply(to: &base)
            confinement.apply(to: &base)
            base.compatibility = profile
            base.host = host

            // Opened now: once the machine runs, the main thread may not open files (seccomp).
            let reportFD: Int32? = try self.report.map { path in
                let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
                guard fd >= 0 else { throw MachineError.unreadable(path: path, errno: errno) }
                return fd
            }
            defer { if let reportFD { close(reportFD) } }
            var store = ImageStore.standard()
            if let limit = maxImageSize.flatMap(UnpackBudget.parseSize) { store.maxImageSize = limit }
            let report = try ContainerRunner.run(image: image, options: containerOptions, base: base, store: store,
                                                 logger: logger, snapshots: !noSnapshot, startedAt: skiffStartTime)
            let machine = report.machine
            if vm.timings { printRunTimings(report) }
            if let reportFD {
                let bytes = try JSONCodec.encode(RunPhases(report))
                _ = bytes.withUnsafeBytes { writeAll(reportFD, $0) }
            }
            let started = machine.timeline.first(.workloadStarted) != nil
            if let status = report.exitStatus, started || status != 125 { throw ExitStatus(Int32(status)) }
            // Stopped by Ctrl-C or kill: the user knows why; 130, 143, ...
            if case let .signal(number) = machine.stopReason { throw ExitStatus(128 + number) }
            // The container never started, or the guest never said how it ended:
            // show why, with the kernel's and init's last words.
            let console = String(decoding: machine.consoleOutput, as: UTF8.self)
            let tail = console.split(separator: "\n", omittingEmptySubsequences: false).suffix(25).joined(separator: "\n")
            if !tail.isEmpty { printError("skiff: guest console (last lines):\n" + tail) }
            if report.exitStatus != nil {
                printError("skiff: the guest could not start the container")
                throw ExitStatus(125)
            }
            printError("skiff: the container did not report an exit status: \(machine.stopReason)")
            if case .timeout = machine.stopReason { throw ExitStatus(124) }
            throw ExitStatus(125)
        }
    }
}

/// `skiff run --timings`: the image and disk phases, then the machine's.
func printRunTimings(_ report: ContainerRunner.Report) {
    let entry = report.rootDisk.entry
    let disk = report.rootDisk.built
        ? "built: unpack \(format3(entry.unpackSeconds * 1000)) ms, mkfs.ext4 \(format3(entry.diskSeconds * 1000)) ms"
        : "cached"
    printTimings(report.machine, before: [("image opened", report.imageOpened), ("root disk ready (\(report.rootDisk.built ? "built" : "cached"))", report.diskReady)],
                 notes: ["image \(report.imageID); root disk \(report.rootDisk.path) (\(disk); \(entry.diskBytes >> 20) MiB)",
                         "guest: \(report.start.rawValue)"])
}
