import Glibc
import Host
import SkiffKit

/// Options every command that starts a VM shares.
struct VMOptions {
    static let options: [OptionSpec] = [
        .value("memory", valueName: "MiB", default: "128", help: "Guest memory in MiB."),
        .value("cpus", valueName: "count", default: "1", help: "Number of vCPUs (1–32)."),
        .value("compat", valueName: "auto|pvm|none", default: "auto", help: "PVM-host workarounds: auto applies them only on a kvm_pvm host."),
        .flag("timings", help: "Print the VMM setup time, time to first guest instruction and to each boot marker."),
        .timeout,
        .flag("verbose", short: "v", help: "Log VMM details, every unclaimed port and MMIO access among them."),
        .repeating("disk", valueName: "PATH[,ro]", help: "A raw disk image for the guest (vda, vdb, ... in order); repeatable."),
        .repeating("net", valueName: "tap=NAME[,mac=MAC][,ip=A.B.C.D/N][,gw=A.B.C.D]",
                   help: "A network interface on a TAP (eth0, eth1, ...); ip= configures it from the kernel command line; repeatable."),
        .flag("no-rng", help: "Leave out the virtio-rng entropy device."),
        .repeating("hide-cpu-feature", valueName: "NAME", help: "A CPU feature the guest does not see: rdrand or rdseed; repeatable."),
    ]

    var memory = 128
    var cpus = 1
    var compat = "auto"
    var timings = false
    var timeout: Double?
    var verbose = 0
    var disk: [String] = []
    var net: [String] = []
    var noRNG = false
    var hiddenCPUFeatures: [String] = []

    init(_ arguments: ParsedArguments) throws(UsageError) {
        memory = try arguments.int("memory", default: memory)
        cpus = try arguments.int("cpus", default: cpus)
        compat = arguments.string("compat") ?? compat
        timings = arguments.flag("timings")
        timeout = try arguments.double("timeout")
        verbose = arguments.count("verbose")
        disk = arguments.strings("disk")
        net = arguments.strings("net")
        noRNG = arguments.flag("no-rng")
        hiddenCPUFeatures = arguments.strings("hide-cpu-feature")
        try validate()
    }

    func validate() throws(UsageError) {
        guard CompatibilityMode(rawValue: compat) != nil else { throw UsageError("--compat must be auto, pvm or none, not '\(compat)'") }
        var configuration = MachineConfiguration(kernelPath: "", commandLine: "")
        try apply(to: &configuration)
        do { try configuration.validate() } catch { throw UsageError("\(error)") }
    }

    /// The parsed --disk and --net options.
    func devices() throws(UsageError) -> (disks: [DiskConfiguration], networks: [NetworkConfiguration]) {
        do {
            let networks = try net.map { argument throws(MachineError) in try NetworkConfiguration(argument: argument) }
            return (try disk.map { argument throws(MachineError) in try DiskConfiguration(argument: argument) }, networks)
        } catch {
            throw UsageError("\(error)")
        }
    }

    /// Applies what these options say to a machine configuration.
    func apply(to configuration: inout MachineConfiguration) throws(UsageError) {
        configuration.memoryMiB = memory
        configuration.cpus = cpus
        configuration.timeout = timeout
        (configuration.disks, configuration.networks) = try devices()
        configuration.entropyDevice = !noRNG
        configuration.hiddenCPUFeatures = hiddenCPUFeatures
    }

    var compatibilityMode: CompatibilityMode { CompatibilityMode(rawValue: compat) ?? .auto }

    func makeLogger() -> Logger { SkiffCLI.makeLogger(verbosity: verbose) }
}

extension Skiff {
    struct Boot: SkiffCommand {
        static let spec = CommandSpec(
            name: "boot",
            abstract: "Boot a microVM: the project's guest, or a kernel (vmlinux or bzImage) and initrd of yours.",
            discussion: """
            Without --kernel, Skiff's own guest kernel and init are used (built on first use by \
            scripts/build-guest.sh). The guest's serial console is the terminal; Ctrl-a x detaches. \
            Exit status 0 when the guest resets or powers off.
            """,
            options: [
                .value("kernel", valueName: "path", help: "Kernel: an uncompressed vmlinux (ELF) or a bzImage."),
                .value("initrd", valueName: "path", help: "Initial RAM disk (an uncompressed or compressed cpio archive)."),
                .value("cmdline", valueName: "text", help: "Kernel command line, replacing Skiff's defaults."),
                .value("append", valueName: "text", help: "Added to the kernel command line; what follows \"--\" goes to init."),
                .console,
                .value("snapshot-at", valueName: "MARKER",
                       help: "Save the machine when the guest writes this boot marker: ready (Skiff's init, before it runs the command), init-started, workload-started, or a code 1–255."),
                .value("snapshot-to", valueName: "DIR", help: "Where --snapshot-at saves (a new or empty directory); `skiff restore DIR` starts from it."),
                .value("snapshot-then", valueName: "stop|continue", default: "stop", help: "After the snapshot: stop (exit 0) or carry on."),
                .value("vsock", valueName: "cid=N,uds=PATH",
                       help: "A virtio-vsock device: the guest has CID N; host programs connect to the Unix socket PATH and send CONNECT <port>; the guest's connections to the host's port P reach PATH_P."),
            ] + VMOptions.options + ConfinementOptions.options)

        var kernel: String?
        var initrd: String?
        var cmdline: String?
        var append: String?
        var console: ConsoleMode
        var snapshotAt: String?
        var snapshotTo: String?
        var snapshotThen = "stop"
        var vsock: String?
        var vm: VMOptions
        var confinement: ConfinementOptions

        init(_ arguments: ParsedArguments) throws(UsageError) {
            kernel = arguments.string("kernel")
            initrd = arguments.string("initrd")
            cmdline = arguments.string("cmdline")
            append = arguments.string("append")
            console = try arguments.console()
            snapshotAt = arguments.string("snapshot-at")
            snapshotTo = arguments.string("snapshot-to")
            snapshotThen = arguments.string("snapshot-then") ?? snapshotThen
            vsock = arguments.string("vsock")
            vm = try VMOptions(arguments)
            confinement = try ConfinementOptions(arguments)
            try validate()
        }

        func validate() throws(UsageError) {
            if let vsock {
                do { _ = try VsockConfiguration(argument: vsock) } catch { throw UsageError("\(error)") }
                guard snapshotAt == nil else { throw UsageError("--vsock cannot be combined with --snapshot-at yet (its host connections are not saved)") }
            }
            guard (snapshotAt == nil) == (snapshotTo == nil) else {
                throw UsageError("--snapshot-at and --snapshot-to go together")
            }
            if let snapshotAt, SnapshotMarker.code(snapshotAt) == nil {
                throw UsageError("--snapshot-at must be ready, init-started, workload-started or a code 1–255, not '\(snapshotAt)'")
            }
            guard ["stop", "continue"].contains(snapshotThen) else {
                throw UsageError("--snapshot-then must be stop or continue, not '\(snapshotThen)'")
            }
            if let snapshotTo {
                do { try SnapshotFiles.checkDestination(snapshotTo) } catch { throw UsageError("\(error)") }
            }
        }

        func run() throws {
            let logger = vm.makeLogger()
            let host = HostKind.detect()
            let profile = CompatibilityProfile.resolve(vm.compatibilityMode, host: host)

            var kernelPath = kernel
            var initrdPath = initrd
            if kernelPath == nil {
                let guest = try GuestArtifacts.ensureBuilt()
                kernelPath = guest.kernel
                if initrdPath == nil { initrdPath = guest.initrd }
            }
            var configuration = MachineConfiguration(
                kernelPath: kernelPath!, initrdPath: initrdPath,
                commandLine: KernelCommandLine.compose(base: cmdline, append: append, profile: profile))
            try vm.apply(to: &configuration)
            confinement.apply(to: &configuration)
            configuration.console = console
            configuration.compatibility = profile
            configuration.host = host
            configuration.vsock = try vsock.map { argument throws(MachineError) in try VsockConfiguration(argument: argument) }
            if let snapshotAt, let snapshotTo, let marker = SnapshotMarker.code(snapshotAt) {
                configuration.snapshot = SnapshotRequest(marker: marker, directory: snapshotTo,
                                                         thenStop: snapshotThen == "stop", required: true)
            }

            let report = try Machine(configuration, logger: logger).run(startedAt: skiffStartTime)
            if vm.timings { printTimings(report) }
            try finish(report, logger: logger)
        }
    }
}

/// The `--snapshot-at` names of boot markers.
enum SnapshotMarker {
    static func code(_ name: String) -> UInt8? {
        switch name {
        case "ready": return BootMarkerPhase.guestReady.rawValue
        case "init-started": return BootMarkerPhase.initStarted.rawValue
        case "workload-started": return BootMarkerPhase.workloadStarted.rawValue
        default: return UInt8(name).flatMap { $0 == 0 ? nil : $0 }
        }
    }
}

/// Prints why the machine stopped (when it matters) and exits with its status.
func finish(_ report: MachineReport, logger: Logger) throws -> Never {
            let status = report.stopReason.exitStatus
            if status != 0 {
                printError("skiff: \(report.stopReason)")
            } else if report.stopReason == .tripleFault {
                printError("skiff: warning: \(report.stopReason)")
            } else {
                logger.debug("\(report.stopReason)")
            }
            throw ExitStatus(status)
}

/// The logger every command writes to: standard error, info by default,
/// debug with one -v, trace with two.
public func makeLogger(verbosity: Int) -> Logger {
    var logger = Logger(label: "skiff")
    logger.logLevel = verbosity >= 2 ? .trace : verbosity == 1 ? .debug : .info
    return logger
}

func printError(_ message: String) { writeErrorLine(message) }

/// `--timings`: milliseconds since skiff started, to stderr (stdout is the guest's).
/// `before`: host phases that came before the machine (`skiff run`'s image and disk).
func printTimings(_ report: MachineReport, before: [(String, UInt64)] = [], notes: [String] = []) {
    let timeline = report.timeline
    func row(_ label: String, _ time: UInt64) -> String {
        let ms = timeline.milliseconds(time)
        return "  " + label.padding(30) + format3(ms).leftPad(12) + " ms"
    }
    var lines = ["skiff: timings (ms since skiff started)"]
    if skiffMainTime > timeline.start { lines.append(row("main entered", skiffMainTime)) }
    for (label, time) in before { lines.append(row(label, time)) }
    lines.append(row("machine setup started", timeline.machineStart))
    lines.append(row("KVM VM created", timeline.vmCreated))
    lines.append(row("VMM setup done", timeline.setupDone))
    var seen = Set<UInt8>()
    var guestRows: [(String, UInt64)] = []
    for event in timeline.markers where seen.insert(event.code).inserted {
        guestRows.append((event.phase?.label ?? "marker \(event.code)", event.time))
    }
    if let first = timeline.firstOutput { guestRows.append(("first container output", first)) }
    if let entry = timeline.firstEntry { guestRows.append(("guest entered (first KVM_RUN)", entry)) }
    if report.restored, let exit = timeline.firstExit { guestRows.append(("first exit after restore", exit)) }
    for (label, time) in guestRows.sorted(by: { $0.1 < $1.1 }) { lines.append(row(label, time)) }
    lines.append(row("VM stopped", timeline.stopped))
    if let status = report.workloadExitStatus { lines.append("  workload exit status: \(status)") }
    if let snapshot = report.snapshot {
        func ms(_ from: UInt64, _ to: UInt64) -> String { format3(Double(to &- from) / 1e6) }
        lines.append("  snapshot \(snapshot.written ? "saved to" : "not saved (another was there first):") \(snapshot.directory): "
                     + "vCPUs parked in \(ms(snapshot.requested, snapshot.paused)) ms, saved in \(ms(snapshot.paused, snapshot.saved)) ms "
                     + "(\(snapshot.memoryBytes >> 10) KiB of memory written), guest running again after \(ms(snapshot.requested, snapshot.resumed)) ms")
    }
    func sinceSetupStarted(_ time: UInt64) -> String { format3(Double(time - timeline.machineStart) / 1e6) }
    var summary = "  VMM setup: \(sinceSetupStarted(timeline.setupDone)) ms"
    if let first = timeline.first(.firstInstruction) {
        summary += "; first guest instruction \(sinceSetupStarted(first.time)) ms after setup started"
    }
    lines.append(summary)
    if report.exceptionsDelivered + report.instructionsSkipped > 0 {
        lines.append("  compatibility: \(report.exceptionsDelivered) trapped instructions stepped over with their exception delivered (x86: INT3 → #BP), \(report.instructionsSkipped) skipped (x86: FWAIT)")
    }
    lines.append("  unclaimed accesses: \(report.unclaimedPortAccesses) port, \(report.unclaimedMMIOAccesses) MMIO")
    for summary in report.deviceSummaries { lines.append("  " + summary) }
    for note in notes { lines.append("  " + note) }
    lines.append("  CPU time: \(format3(report.processCPUSeconds)) s VMM process (vCPU threads included), \(format3(report.ioThreadCPUSeconds)) s device I/O thread")
    printError(lines.joined(separator: "\n"))
}

func format3(_ value: Double) -> String {
    let scaled = Int64((value * 1000).rounded())
    let sign = scaled < 0 ? "-" : ""
    let magnitude = abs(scaled)
    return "\(sign)\(magnitude / 1000).\(String(magnitude % 1000).leftPad(3, "0"))"
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
    func leftPad(_ width: Int, _ pad: Character = " ") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
