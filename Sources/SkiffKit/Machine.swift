import Devices
import CSystem
import Glibc
import Host
import Hypervisor
import KVM
import Memory
import Platform
import Seccomp
import Synchronization

/// What to boot and how: everything `skiff boot` takes.
public struct MachineConfiguration: Sendable {
    public var kernelPath: String
    public var initrdPath: String?
    /// The complete kernel command line (see `KernelCommandLine.compose`).
    public var commandLine: String
    public var memoryMiB: Int = 128
    public var cpus: Int = 1
    public var console: ConsoleMode = .stdio
    /// Forward standard input to the serial console (stdio console only).
    public var forwardInput = true
    public var compatibility: CompatibilityProfile = .none
    public var host: HostKind = .hardware
    /// Stop the VM after this many seconds; nil waits for ever.
    public var timeout: Double?
    /// virtio-blk devices, in order: vda, vdb, ...
    public var disks: [DiskConfiguration] = []
    /// virtio-net devices on TAPs: eth0, eth1, ...
    public var networks: [NetworkConfiguration] = []
    /// A virtio-rng device fed by the host's getrandom.
    public var entropyDevice = true
    /// A virtio-vsock device on Unix sockets (`VsockUnixBackend`).
    public var vsock: VsockConfiguration?
    /// CPU features the guest's CPUID does not show (`GuestPlatform.hideableCPUFeatures`).
    public var hiddenCPUFeatures: [String] = []
    /// `skiff run`: where ttyS1 and ttyS2 go, and what feeds ttyS1. Without
    /// it both lines exist but their output is dropped.
    public var containerLines: ContainerLines?
    /// A cpio archive appended to the initrd (the `skiff run` spec).
    public var initrdAppendix: [UInt8] = []
    /// What the guest gets when it asks for its hand-over (`HandoverMailbox`):
    /// the run spec, or nothing (it still gets the clock and a fresh seed).
    public var handoverPayload: [UInt8] = []
    /// Save the machine when the guest writes a boot marker.
    public var snapshot: SnapshotRequest?
    /// Start from this snapshot instead of booting a kernel.
    public var restore: SnapshotFiles.Loaded?
    /// Hold the guest at `ready`, every vCPU parked, until
    /// `Machine.release(handover:)`: an OCI runtime's `create` boots to there
    /// (or restores a guest saved there) and its `start` hands the process
    /// over. Called once it waits there.
    public var holdAtReady: (@Sendable () -> Void)?
    /// seccomp allow lists on every VMM thread (`VMMSeccompPolicy`). Off
    /// unless asked for: tests run machines inside the test process, whose
    /// other threads must stay free. The CLI's default is `.kill`.
    public var seccomp: SeccompMode = .off
    /// The OCI monitor: its main thread's list lets it rewrite state.json
    /// after the run (`VMMSeccompPolicy.monitorFiles`).
    public var seccompStateFiles = false
    /// Run the VMM jailed (`Jail`): namespaces, its own root, a cgroup, no privileges.
    public var jail: JailOptions?
    /// Tests of the filters: the named thread makes a forbidden call once
    /// its filter is in place ("vcpu:execve", "devices:socket", ...).
    public var seccompProbe: SeccompProbe?

    public init(kernelPath: String, initrdPath: String? = nil, commandLine: String) {
        self.kernelPath = kernelPath
        self.initrdPath = initrdPath
        self.commandLine = commandLine
    }

    public static let memoryRange = 16...(1 << 20)
    /// Seconds: at least a millisecond, at most a year (nanoseconds since boot
    /// must stay representable; `inf` and NaN are refused, not trapped on).
    public static let timeoutRange: ClosedRange<Double> = 0.001...31_536_000

    /// Checks every range, against `platform` (the configuration's own
    /// unless a test plays another); the CLI calls it too, so a bad value is
    /// one usage line before anything starts.
    public func validate(for platform: (any GuestPlatform)? = nil) throws(MachineError) {
        let platform = platform ?? self.platform
        guard (1...platform.maximumCPUs).contains(cpus) else {
            throw .invalidConfiguration("--cpus \(cpus) is outside 1–\(platform.maximumCPUs)")
        }
        guard Self.memoryRange.contains(memoryMiB) else {
            throw .invalidConfiguration("--memory \(memoryMiB) MiB is outside \(Self.memoryRange.lowerBound)–\(Self.memoryRange.upperBound) MiB")
        }
        if let timeout, !Self.timeoutRange.contains(timeout) {
            throw .invalidConfiguration("--timeout \(timeout) is outside \(Self.timeoutRange.lowerBound)–\(Int(Self.timeoutRange.upperBound)) seconds")
        }
        try NetworkConfiguration.validate(networks)
        if !hiddenCPUFeatures.isEmpty {
            let hideable = platform.hideableCPUFeatures
            for name in hiddenCPUFeatures where !hideable.contains(name) {
                throw .invalidConfiguration("--hide-cpu-feature \(name): Skiff can hide \(hideable.joined(separator: " and "))")
            }
        }
        // One image twice would have its second opening refused by its own lock,
        // which would blame "another process".
        var seen: [String: String] = [:]
        for disk in disks {
            var info = stat()
            let identity = stat(disk.path, &info) == 0 ? "\(info.st_dev):\(info.st_ino)" : disk.path
            if let first = seen[identity] {
                throw .invalidConfiguration("--disk \(disk.path) is given twice\(first == disk.path ? "" : " (also as \(first))")")
            }
            seen[identity] = disk.path
        }
        // With snapshots too: a restore tells the guest its connections were
        // reset (VIRTIO_VSOCK_EVENT_TRANSPORT_RESET), as Firecracker does;
        // its listening sockets carry on.
        try vsock?.validate()
        let devices = disks.count + networks.count + (entropyDevice ? 1 : 0) + (vsock == nil ? 0 : 1)
        let lines = platform.deviceLayout.virtioIRQs.count
        guard devices <= lines else {
            throw .invalidConfiguration("\(devices) virtio devices; at most \(lines) fit the interrupt controller's lines")
        }
    }
}

/// `--snapshot-at MARKER --snapshot-to DIR`: save the machine when the guest
/// writes `marker`, then stop or carry on.
public struct SnapshotRequest: Sendable, Equatable {
    public var marker: UInt8
    public var directory: String
    public var thenStop: Bool
    /// A snapshot that cannot be written stops the machine with an error
    /// (`skiff boot`); otherwise the run carries on without one (`skiff run`'s cache).
    public var required: Bool
    /// More provenance lines for the state file, beside the kernel, command
    /// line and marker the machine records (`skiff run` adds its inputs').
    public var provenance: [String: String]
    public init(marker: UInt8, directory: String, thenStop: Bool, required: Bool, provenance: [String: String] = [:]) {
        self.marker = marker; self.directory = directory; self.thenStop = thenStop; self.required = required
        self.provenance = provenance
    }
}

/// What taking a snapshot did.
public struct SnapshotOutcome: Sendable {
    public let directory: String
    /// False: another process had put one there first (nothing was written).
    public let written: Bool
    /// Host CLOCK_MONOTONIC ns: pause asked for, every vCPU parked, files in place, guest running again.
    public let requested: UInt64, paused: UInt64, saved: UInt64, resumed: UInt64
    /// Memory-file bytes actually written (it is sparse).
    public let memoryBytes: Int
}

/// Host timestamps (CLOCK_MONOTONIC ns) of a machine's life.
public struct BootTimeline: Sendable {
    /// When `skiff` started (its `main`).
    public let start: UInt64
    /// `Machine.run` entered: what came before (argument parsing, finding or
    /// building the guest) is not the VMM's setup.
    public internal(set) var machineStart: UInt64 = 0
    public internal(set) var vmCreated: UInt64 = 0
    /// Everything built; the vCPUs are about to run.
    public internal(set) var setupDone: UInt64 = 0
    public internal(set) var markers: [BootMarkerDevice.Event] = []
    /// The first byte the container wrote (ttyS1 or ttyS2), if any.
    public internal(set) var firstOutput: UInt64?
    /// The first time a vCPU thread called KVM_RUN: the guest has the CPU
    /// from here, every VMM thread confined. A restored guest's first
    /// instruction, which no boot marker can time, follows within KVM's entry.
    public internal(set) var firstEntry: UInt64?
    /// The first time a vCPU came back from KVM_RUN to the VMM: for a restore,
    /// proof that the guest ran on from its saved state.
    public internal(set) var firstExit: UInt64?
    public internal(set) var stopped: UInt64 = 0

    public init(start: UInt64) { self.start = start }

    public func milliseconds(_ time: UInt64) -> Double { Double(Int64(bitPattern: time &- start)) / 1e6 }
    public func first(_ phase: BootMarkerDevice.Phase) -> BootMarkerDevice.Event? { markers.first { $0.phase == phase } }
}

/// What happened, for the caller to print.
public struct MachineReport: Sendable {
    public let stopReason: StopReason
    public let timeline: BootTimeline
    /// The kernel as the platform loaded it (nil for a restore).
    public let kernel: LoadedKernel?
    public let unclaimedPortAccesses: Int
    public let unclaimedMMIOAccesses: Int
    /// Instructions the hypervisor could not emulate that the platform
    /// stepped over (`GuestPlatform.handleUnemulated`): with an exception
    /// delivered instead (x86 PVM: INT3 → #BP), or skipped (FWAIT).
    public let exceptionsDelivered: Int
    public let instructionsSkipped: Int
    /// One line per virtio device: what it did.
    public let deviceSummaries: [String]
    /// CPU time of the device event-loop thread, and of the whole VMM process
    /// (user + system, vCPU threads included), in seconds.
    public let ioThreadCPUSeconds: Double
    public let processCPUSeconds: Double
    /// The kernel console's last bytes, when it was captured (`ConsoleMode.capture`).
    public let consoleOutput: [UInt8]
    /// The snapshot `--snapshot-at` took, if it did.
    public let snapshot: SnapshotOutcome?
    /// Restored from a snapshot rather than booted.
    public let restored: Bool
    /// Exit status of the workload Skiff's init ran, if it reported one.
    public var workloadExitStatus: Int? {
        timeline.first(.workloadExited).map { Int($0.value) }
    }
}

/// One microVM: KVM VM, guest memory, devices, vCPU threads.
public final class Machine: Sendable {
    let configuration: MachineConfiguration
    /// The guest architecture: every step of the build that depends on it.
    let platform: any GuestPlatform
    let logger: Logger
    private let stop = Mutex<StopReason?>(nil)
    /// Whether `stop` is set, for the vCPU loop's check on every exit (no lock).
    private let stopFlag = Atomic<Bool>(false)
    private let vcpus = Mutex<[any VirtualCPU]>([])
    private let deliveredExceptions = Atomic<Int>(0)
    private let skippedInstructions = Atomic<Int>(0)
    private let firstOutput = Atomic<UInt64>(0)
    private let firstExit = Atomic<UInt64>(0)
    private let firstEntry = Atomic<UInt64>(0)
    /// The guest's boot markers and its console's panic line: what the stop policy weighs.
    let markers: BootMarkerDevice
    let panicDetector = KernelPanicDetector()
    /// Parks every vCPU for a snapshot.
    let pause: PauseGate
    /// What a snapshot needs while the machine runs.
    private let running = Mutex<Running?>(nil)
    private let snapshotStarted = Atomic<Bool>(false)
    private let snapshotThread = Mutex<NativeThread?>(nil)
    /// What the coordinator thread is told: the marker to pause at, or the end.
    private enum CoordinatorEvent { case waiting, marker(BootMarkerDevice.Event), finished }
    private let coordinatorEvent = Mutex<CoordinatorEvent>(.waiting)
    private let coordinatorWake: EventFD
    /// `skiff run -i`/`-t`: the stdin relay, until the guest says the container is ready.
    private let containerInput = Mutex<InputRelay?>(nil)
    private let snapshotOutcome = Mutex<SnapshotOutcome?>(nil)
    /// Where the next hand-over chunk starts.
    private let handoverOffset = Mutex<Int>(0)
    /// What the hand-over carries (`release(handover:)` may replace it).
    private let handoverPayload: Mutex<[UInt8]>
    /// Signalled by `release(handover:)` and by a stop: a held guest goes on.
    private let heldRelease: EventFD

    /// The parts of a running machine a snapshot reads.
    private struct Running: @unchecked Sendable {
        let vm: any VirtualMachineHandle
        let memory: GuestMemory
        let loop: EventLoop
        let devices: [(name: String, device: any SnapshotDevice)]
        let identities: [CPUIdentity]
        /// What a snapshot records it was booted from (its provenance), kept
        /// as plain fields: a dictionary built at every start cost 40 µs.
        let kernel: String
        let commandLine: String
        /// ttyS2, whose receive side carries `ContainerControl` messages.
        let errorLine: Serial16550
    }

    /// Where the machine's hypervisor comes from: /dev/kvm unless a test
    /// plays the hypervisor.
    private let openHypervisor: @Sendable () throws(MachineError) -> any Hypervisor
    /// The requests that hypervisor makes, which the threads' seccomp lists
    /// admit (`VMMSeccompPolicy`).
    public let hypervisorCalls: HypervisorSystemCalls

    /// `platform`: the configuration's (`MachineConfiguration.platform`)
    /// unless a test plays another architecture. `hypervisorCalls`: what the
    /// hypervisor `hypervisor` opens asks of the host (KVM's, by default).
    public init(_ configuration: MachineConfiguration, logger: Logger,
                hypervisor: @escaping @Sendable () throws(MachineError) -> any Hypervisor = Machine.openKVM,
                hypervisorCalls: HypervisorSystemCalls = KVMSystem.systemCalls,
                platform: (any GuestPlatform)? = nil) throws(MachineError) {
        self.configuration = configuration
        self.platform = platform ?? configuration.platform
        self.logger = logger
        self.openHypervisor = hypervisor
        self.hypervisorCalls = hypervisorCalls
        self.pause = try PauseGate()
        self.handoverPayload = Mutex(configuration.handoverPayload)
        self.heldRelease = try EventFD.make(blocking: true)
        self.coordinatorWake = try EventFD.make(blocking: true)
        self.markers = BootMarkerDevice(clock: MonotonicClock.now) { [logger] event in
            logger.debug("boot marker", metadata: ["phase": "\(event.phase?.label ?? "code \(event.code)")"])
        }
        markers.observe { [weak self] event in self?.markerArrived(event) }
    }

    /// The host's /dev/kvm, or why not.
    public static func openKVM() throws(MachineError) -> any Hypervisor {
        do { return try KVMSystem() } catch { throw .kvmUnavailable(error) }
    }

    /// Asks the machine to stop; the first reason given wins.
    public func requestStop(_ reason: StopReason) {
        let first = stop.withLock { current -> Bool in
            guard current == nil else { return false }
            current = reason
            stopFlag.store(true, ordering: .releasing)
            return true
        }
        guard first else { return }
        heldRelease.signal()
        logger.debug("stopping", metadata: ["reason": "\(reason)"])
        for vcpu in vcpus.withLock({ $0 }) { vcpu.kick() }
    }

    var stopped: Bool { stopFlag.load(ordering: .acquiring) }

    /// The vCPUs `requestStop` kicks.
    func adopt(_ created: [any VirtualCPU]) { vcpus.withLock { $0 = created } }

    /// Why the machine stopped, once it has.
    public var stopReason: StopReason? { stop.withLock { $0 } }

    /// Queues a `ContainerControl` message for the guest init; false if the
    /// machine is not running or the line's buffer is full.
    public func sendContainerControl(_ message: [UInt8]) -> Bool {
        guard let line = running.withLock({ $0?.errorLine }) else { return false }
        return line.receive(message) == message.count
    }

    /// Lets a guest held at `ready` (`holdAtReady`) go on, with `payload` as its hand-over.
    public func release(handover payload: [UInt8]) {
        handoverPayload.withLock { $0 = payload }
        heldRelease.signal()
    }

    /// Builds the machine (booting its kernel, or restoring its snapshot),
    /// runs it until it stops, and reports. Throws only for what prevents the
    /// VM from running at all.
    public func run(startedAt start: UInt64 = MonotonicClock.now()) throws(MachineError) -> MachineReport {
        let config = configuration
        var timeline = BootTimeline(start: start)
        timeline.machineStart = MonotonicClock.now()
        try config.validate(for: platform)
        // (malloc's heaps are never trimmed in the executables, so that a
        // confined thread never opens a file for it: MallocPolicy.)

        // Guest memory, and the kernel, initrd and command line, come before
        // any hypervisor work: whatever is wrong with them costs no VM.
        let memory: GuestMemory
        let kernel: LoadedKernel?
        var commandLine = ""
        if let snapshot = config.restore {
            memory = try snapshot.mapMemory()
            kernel = nil
        } else {
            let loaded = try loadKernel(config)
            (memory, kernel, commandLine) = (loaded.memory, loaded.kernel, loaded.commandLine)
        }

        // Disk images and TAPs, before any VM exists (and before the jail).
        let backends = try VirtioDevices.openBackends(config, logger: logger)
        let system = try openHypervisor()
        // /dev/kvm is open and the VM does not exist yet: from here on, the jail.
        if let jail = config.jail { try Jail.enter(jail, configuration: config) }
        // The signal thread confines itself while this one sets the machine
        // up (a signal's handler needs no more during setup than while the
        // guest runs); it must be done before the guest's first instruction.
        // It asks the hypervisor for its CPU identity first (EarlyAnswer; x86: the CPUID table):
        // needed only when the vCPUs are set up, and slow to build. Then it
        // compiles this thread's seccomp list, whose install is on the path
        // to the guest's first instruction (compiling was 0.08 ms of it).
        let supportedIdentity = try EarlyAnswer { [platform] () throws(HypervisorError) in try platform.supportedIdentity(of: system) }
        let mainProgram = try EarlyAnswer { [self] () throws(Never) in program(for: .main) }
        var signalsConfined: ShutdownSignals.Confining?
        if config.seccomp != .off {
            if config.seccomp == .kill { do { try Seccomp.installReporter() } catch { throw .invalidConfiguration("\(error)") } }
            signalsConfined = ShutdownSignals.startConfining { [self] in
                supportedIdentity.offer()
                mainProgram.offer()
                confine(.signals)
            }
        }
        defer { signalsConfined?.wait() }
        let vm: any VirtualMachineHandle
        do {
            vm = try system.createVirtualMachine()
            timeline.vmCreated = MonotonicClock.now()
            try vm.map(memory)
            try platform.prepare(vm)
        } catch {
            throw .kvm(error)
        }

        // Devices with host backends (disks, TAPs), in the windows and IRQs
        // the command line announced.
        let loop: EventLoop
        do { loop = try EventLoop() } catch { throw MachineError(error) }
        var mmio = IOBus.Builder()
        let layout = platform.deviceLayout
        let virtio = try VirtioDevices(config, layout: layout, backends: backends, vm: vm, memory: memory,
                                       loop: loop, mmio: &mmio, logger: logger)
        if let kernel {
            logger.debug("kernel loaded", metadata: [
                "architecture": "\(platform.architecture)", "format": "\(kernel.format)",
                "entry": "0x\(String(kernel.entry, radix: 16))", "cmdline": "\(commandLine)"])
        }

        // Devices, where the platform puts them.
        guard layout.serialLines.count == 3 else {
            throw .invalidConfiguration("the \(platform.architecture) platform places \(layout.serialLines.count) serial lines; a machine has 3")
        }
        let outputRelay = try config.containerLines.map { lines throws(MachineError) in try OutputRelay(fd: lines.standardOutput, loop: loop) }
        let errorRelay = try config.containerLines.map { lines throws(MachineError) in try OutputRelay(fd: lines.standardError, loop: loop) }
        let console = try Console(config.console, loop: loop)
        let serialInterrupts = serialInterruptLines(layout.serialLines, vm: vm)
        let serial = Serial16550(interrupt: serialInterrupts[0]) { [panicDetector] byte in
            console.write(byte)
            panicDetector.feed(byte)
        }
        let lines = config.containerLines
        let outputLine = Serial16550(interrupt: serialInterrupts[1], output: containerOutput(to: outputRelay))
        let errorLine = Serial16550(interrupt: serialInterrupts[2], output: containerOutput(to: errorRelay))
        let markers = self.markers
        let uarts = Array(zip([serial, outputLine, errorLine], layout.serialLines))
        var ports = IOBus.Builder()
        do {
            var placed = uarts.map { PlacedDevice($0, at: $1, length: 8) }
            placed.append(PlacedDevice(markers, at: layout.bootMarkers, length: BootMarkerDevice.length))
            if let reset = platform.resetController(onReset: { [weak self] in self?.guestStopped(.reset) }) {
                placed.append(reset)
            }
            for device in placed {
                switch device.slot.bus {
                case .port: try ports.attach(device.device, at: device.slot.address, length: device.length)
                case .mmio: try mmio.attach(device.device, at: device.slot.address, length: device.length)
                }
            }
        } catch {
            throw .invalidConfiguration("\(error)")
        }
        let portBus = IOBus(name: "port", ports, onUnclaimed: logUnclaimed("port"))
        let mmioBus = IOBus(name: "mmio", mmio, onUnclaimed: logUnclaimed("MMIO"))
        // What a snapshot saves, by names that do not depend on host paths
        // ("uart 0x3f8" on x86). A reset controller has no state (the
        // i8042 only ever reports empty buffers).
        let stateDevices: [(name: String, device: any SnapshotDevice)] = uarts.map {
            ("uart 0x\(String($1.address, radix: 16))", $0)
        } + [("boot markers", markers)] + virtio.attached.enumerated().map { ("virtio-mmio \($0.offset)", $0.element.transport) }

        // vCPUs: configured for the boot protocol, or given their saved
        // state. Created before their CPUID is needed, while the signal
        // thread may still be asking the hypervisor for it (EarlyAnswer).
        var created: [any VirtualCPU] = []
        do {
            for id in 0..<config.cpus { created.append(try vm.createVCPU(id: id)) }
        } catch {
            throw .kvm(error)
        }
        let identities: [CPUIdentity]
        do {
            let supported = try supportedIdentity.answer()
            identities = try (0..<config.cpus).map { [platform] id throws(HypervisorError) in try platform.cpuIdentity(vcpu: id, of: config.cpus, supported: supported) }
        } catch {
            throw .kvm(error)
        }
        if let snapshot = config.restore {
            try restore(snapshot.state, vm: vm, vcpus: created, identities: identities, devices: stateDevices)
            for attached in virtio.attached { attached.transport.resumeAfterRestore() }
        } else if let kernel {
            do { try kernel.prepareVCPUs(created, identities) } catch { throw .kvm(error) }
        }
        adopt(created)

        // The vCPU threads start now, so that their start and confinement
        // overlap the rest of the setup; each then waits for the start gate,
        // which opens once every thread of the VMM is confined. If the setup
        // fails before that, they see the stop, and end.
        let startGate = try EventFD.make(blocking: true, semaphore: true)
        var threads: [NativeThread] = []
        var gateOpened = false
        defer {
            if !gateOpened {
                requestStop(.vmmError("the machine's setup failed"))
                startGate.signal(UInt64(max(threads.count, 1)))
                for thread in threads { thread.join() }
            }
        }
        for vcpu in created {
            let runner = VCPURunner(vcpu: vcpu, memory: memory, ports: portBus, mmio: mmioBus, machine: self)
            do {
                threads.append(try NativeThread.start { [self] in
                    confine(.vcpu)
                    startGate.wait()
                    runner.run()
                })
            } catch {
                requestStop(.vmmError("\(error)"))
                for _ in threads.count..<created.count { pause.ended() }
                break
            }
        }
        if config.compatibility != .none {
            logger.debug("host is \(config.host.rawValue): \(config.compatibility.name) compatibility profile on (\(platform.architecture); kernel parameters: \(platform.workaroundParameters.joined(separator: " ")))")
        }
        running.withLock {
            $0 = Running(vm: vm, memory: memory, loop: loop, devices: stateDevices, identities: identities,
                         kernel: config.restore?.state.provenance["kernel"] ?? config.kernelPath,
                         commandLine: config.restore?.state.provenance["cmdline"] ?? commandLine, errorLine: errorLine)
        }
        defer { running.withLock { $0 = nil } }
        // A guest saved while it waited for its hand-over gets this run's
        // just before its vCPUs start (after a hold, if one is asked for).
        let restoredAtReady = config.restore?.state.provenance["marker"] == String(BootMarkerDevice.Phase.guestReady.rawValue)

        let detach: @Sendable () -> Void = { [weak self] in self?.requestStop(.detached) }
        switch lines?.input {
        case nil:
            if config.console == .stdio && config.forwardInput {
                try InputRelay(to: serial, style: .interactive, loop: loop, detach: detach).start()
            }
        case .none?:
            break
        case let input?:
            // Started by the guest's "container ready" marker (markerArrived).
            let relay = try InputRelay(to: outputLine, style: input == .terminal ? .interactive : .framed,
                                       escape: lines?.detachEscape ?? true, loop: loop, detach: detach)
            containerInput.withLock { $0 = relay }
            if markers.firstTime(of: .containerReady) != nil { startContainerInput() }
        }
        // -t on a terminal: its new size follows it into the guest (SIGWINCH).
        let resizes = lines?.input == .terminal && isatty(STDIN_FILENO) == 1
            ? ShutdownSignals.onWindowChange { [weak self] in
                var size = winsize()
                guard ioctl(STDIN_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0, size.ws_col > 0 else { return }
                _ = self?.sendContainerControl(ContainerControl.windowSize(rows: size.ws_row, columns: size.ws_col))
            }
            : nil
        defer { resizes?.cancel() }
        // --timeout: a timerfd on the event loop (the range was validated, so it fits).
        let watchdog = try config.timeout.map { seconds throws(MachineError) in
            let timer = try TimerFD.make(seconds: seconds)
            do throws(SystemCallError) {
                try loop.register(timer.fd) { [weak self] in
                    timer.acknowledge()
                    self?.requestStop(.timeout(seconds: seconds))
                }
            } catch {
                throw MachineError(error)
            }
            return timer
        }

        do { try loop.start { [self] in confine(.deviceLoop) } } catch { throw MachineError(error) }
        // A signal stops the machine like any other stop: run returns, the
        // terminal is restored, the caller exits 128+N.
        let signals = ShutdownSignals.register { [weak self] signal in
            self?.requestStop(.signal(signal))
            return self != nil
        }
        defer { signals.cancel() }
        if config.snapshot != nil || config.holdAtReady != nil {
            let thread = try NativeThread.start { [self] in
                confine(.coordinator)
                coordinate()
            }
            snapshotThread.withLock { $0 = thread }
        }
        timeline.setupDone = MonotonicClock.now()
        if restoredAtReady {
            // Held as a booted guest is held at ready; a stop (a signal, say) releases it.
            if let hold = config.holdAtReady, !stopped {
                hold()
                heldRelease.wait()
            }
            handOver(restart: true)
        }
        if config.seccomp != .off {
            confine(.main, compiled: mainProgram.answer())
            signalsConfined?.wait()
            signalsConfined = nil
        }
        gateOpened = true
        startGate.signal(UInt64(threads.count))
        for thread in threads { thread.join() }
        coordinatorEvent.withLock { $0 = .finished }
        coordinatorWake.signal()
        snapshotThread.withLock { $0.take() }?.join()
        withExtendedLifetime(watchdog) {}
        let ioThreadCPU = loop.stop()
        for relay in [outputRelay, errorRelay] { relay?.flush() }
        console.flush()
        timeline.stopped = MonotonicClock.now()
        TerminalMode.restore()
        // The guest is gone and the VM is destroyed next (x86: without the
        // PIT's reinjection notifier, the destruction waits for no normal
        // SRCU grace period; X86VirtualMachine.disableTimerReinjection).
        do { try platform.beforeDestroying(vm) } catch {
            logger.debug("the platform's preparation for the VM's end failed", metadata: ["error": "\(error)"])
        }
        timeline.markers = markers.events
        let firstOutputTime = firstOutput.load(ordering: .relaxed)
        timeline.firstOutput = firstOutputTime == 0 ? nil : firstOutputTime
        let firstEntryTime = firstEntry.load(ordering: .relaxed)
        timeline.firstEntry = firstEntryTime == 0 ? nil : firstEntryTime
        let firstExitTime = firstExit.load(ordering: .relaxed)
        timeline.firstExit = firstExitTime == 0 ? nil : firstExitTime

        return MachineReport(
            stopReason: stop.withLock { $0 } ?? .vmmError("no vCPU ran"),
            timeline: timeline, kernel: kernel,
            unclaimedPortAccesses: portBus.unclaimedAccesses, unclaimedMMIOAccesses: mmioBus.unclaimedAccesses,
            exceptionsDelivered: deliveredExceptions.load(ordering: .relaxed), instructionsSkipped: skippedInstructions.load(ordering: .relaxed),
            deviceSummaries: virtio.attached.map { $0.summary() },
            ioThreadCPUSeconds: ioThreadCPU, processCPUSeconds: processCPUTime(), consoleOutput: console.capturedOutput,
            snapshot: snapshotOutcome.withLock { $0 }, restored: config.restore != nil)
    }

    /// Reads the kernel and initrd and loads them, with the command line and
    /// boot structures, into new guest memory.
    private func loadKernel(_ config: MachineConfiguration) throws(MachineError) -> (memory: GuestMemory, kernel: LoadedKernel, commandLine: String) {
        let memoryLimit = config.memoryMiB << 20
        let inMemory = "the \(config.memoryMiB) MiB of guest memory (--memory)"
        let kernel = try readFile(config.kernelPath, limit: memoryLimit, what: inMemory)
        do { try platform.checkKernel(kernel, file: config.kernelPath) } catch { throw .boot(error) }
        var initrd = try config.initrdPath.map { path throws(MachineError) in try readFile(path, limit: memoryLimit, what: inMemory) }
        if !config.initrdAppendix.isEmpty {
            initrd = InitramfsArchive.concatenate(initrd ?? [], config.initrdAppendix)
        }
        let memory: GuestMemory
        do { memory = try platform.makeMemory(size: config.memoryMiB << 20) } catch let error as GuestMemoryError { throw .memory(error) } catch { throw .invalidConfiguration("\(error)") }
        let virtio = VirtioDevices.windows(for: config, layout: platform.deviceLayout)
        let announcements = platform.deviceParameters(virtio) + VirtioDevices.networkParameters(for: config)
        let commandLine: String
        do {
            let line = KernelCommandLine.inserting(announcements, into: config.commandLine)
            commandLine = config.hiddenCPUFeatures.isEmpty ? line : try KernelCommandLine.announcingHiddenFeatures(of: platform, in: line)
        } catch {
            throw .boot(error)
        }
        do {
            let loaded = try platform.loadKernel(KernelImages(
                kernel: kernel, kernelPath: config.kernelPath, initrd: initrd, initrdPath: config.initrdPath ?? "",
                commandLine: commandLine, cpuCount: config.cpus, virtioDevices: virtio,
                firstInstructionMarker: (UInt16(BootMarkerDevice.port), BootMarkerDevice.Phase.firstInstruction.rawValue)),
                into: memory)
            return (memory, loaded, commandLine)
        } catch where error.file == BootError.commandLineFile {
            // The user only typed part of it: say how much is Skiff's.
            let added = (platform.workaroundParameters + announcements).joined(separator: " ").utf8.count
            throw .boot(BootError(file: error.file, error.problem
                + " (\(added) bytes are Skiff's: the compatibility profile's parameters and the virtio-mmio device announcements)"))
        } catch {
            throw .boot(error)
        }
    }

    /// Sets a snapshot's state into a machine built like the saved one: the
    /// CPU identity first (refused if this host's differs), then the VM,
    /// each vCPU, each device.
    private func restore(_ state: SnapshotState, vm: any VirtualMachineHandle, vcpus: [any VirtualCPU],
                         identities: [CPUIdentity], devices: [(name: String, device: any SnapshotDevice)]) throws(MachineError) {
        for vcpu in vcpus {
            switch platform.mismatch(of: state.vcpus[vcpu.id].identity, here: identities[vcpu.id]) {
            case nil: continue
            case .malformed(let problem): throw .snapshot(.invalid("vCPU \(vcpu.id): \(problem)"))
            case .differs(let difference): throw .snapshot(.mismatch("this host's CPU differs from the snapshot's (\(difference)); take a new snapshot here"))
            }
        }
        do {
            for vcpu in vcpus { try platform.setIdentity(state.vcpus[vcpu.id].identity, of: vcpu) }
            try vm.restoreState(state.machineState)
            for vcpu in vcpus { try vcpu.restoreState(state.vcpus[vcpu.id].state) }
        } catch {
            throw .snapshot(.invalid("the hypervisor refused the saved state: \(error)"))
        }
        let saved = Dictionary(state.devices.map { ($0.name, $0.state) }, uniquingKeysWith: { first, _ in first })
        guard Set(saved.keys) == Set(devices.map(\.name)), saved.count == state.devices.count else {
            throw .snapshot(.mismatch("the snapshot's devices (\(state.devices.map(\.name).joined(separator: ", "))) are not this machine's (\(devices.map(\.name).joined(separator: ", ")))"))
        }
        for (name, device) in devices {
            do { try device.restoreState(saved[name]!) } catch { throw .snapshot(.invalid("\(error)")) }
        }
    }

    // MARK: Markers, hand-over, snapshots (vCPU threads)

    /// On the vCPU thread that wrote the marker, before its port write completes.
    private func markerArrived(_ event: BootMarkerDevice.Event) {
        let snapshot = configuration.snapshot.flatMap { $0.marker == event.code ? $0 : nil }
        let hold = event.phase == .guestReady ? configuration.holdAtReady : nil
        if snapshot != nil || hold != nil, !snapshotStarted.exchange(true, ordering: .acquiringAndReleasing) {
            // This vCPU must not run on (the guest would read the mailbox
            // before it is written): ask for the pause before returning.
            pause.request()
            for vcpu in vcpus.withLock({ $0 }) { vcpu.kick() }
            coordinatorEvent.withLock { $0 = .marker(event) }
            coordinatorWake.signal()
            return
        }
        switch event.phase {
        case .guestReady?: handOver(restart: true)
        case .handoverMore?: handOver(restart: false)
        case .containerReady?: startContainerInput()
        default: break
        }
    }

    /// The container's stdin starts once its line is open in the guest.
    private func startContainerInput() {
        guard let relay = containerInput.withLock({ $0.take() }) else { return }
        do { try relay.start() } catch { requestStop(.vmmError("cannot relay standard input: \(error)")) }
    }

    /// The coordinator thread (started with the machine when a snapshot or a
    /// hold is asked for, so that it gets its own seccomp list): waits for
    /// the marker, or for the machine's end.
    private func coordinate() {
        while true {
            coordinatorWake.wait()
            switch coordinatorEvent.withLock({ $0 }) {
            case .waiting: continue
            case .finished: return
            case let .marker(event):
                let snapshot = configuration.snapshot.flatMap { $0.marker == event.code ? $0 : nil }
                let hold = event.phase == .guestReady ? configuration.holdAtReady : nil
                pauseAtMarker(event, snapshot: snapshot, hold: hold)
                return
            }
        }
    }

    /// Installs `thread`'s seccomp list on the calling thread (`compiled`,
    /// if another thread compiled it already), then makes the test probe's
    /// call if it is this thread's. A list that cannot be installed stops
    /// the machine before the guest runs.
    private func confine(_ thread: VMMSeccompPolicy.Thread, compiled: SeccompProgram? = nil) {
        guard configuration.seccomp != .off else { return }
        Seccomp.label(thread.label, rename: thread != .main)
        do {
            try (compiled ?? program(for: thread)).install()
        } catch {
            requestStop(.vmmError("\(error) (\(thread.rawValue) thread)"))
            return
        }
        if let probe = configuration.seccompProbe, probe.thread == thread {
            _ = Seccomp.probe(probe.call)
        }
    }

    /// `thread`'s seccomp list, compiled for this machine's mode (`confine`
    /// installs it; `compiled` there is this, made earlier elsewhere).
    private func program(for thread: VMMSeccompPolicy.Thread) -> SeccompProgram {
        VMMSeccompPolicy.filter(for: thread, hypervisor: hypervisorCalls, stateFiles: configuration.seccompStateFiles, vsock: configuration.vsock != nil)
            .compile(configuration.seccomp)
    }

    /// On a thread of its own, with every vCPU asked to park: saves the
    /// snapshot asked for, holds the guest until released, hands over (if the
    /// guest waits for it), and lets the vCPUs run on.
    private func pauseAtMarker(_ event: BootMarkerDevice.Event, snapshot request: SnapshotRequest?,
                               hold: (@Sendable () -> Void)?) {
        let requested = MonotonicClock.now()
        let (states, complete) = pause.waitForAll(configuration.cpus)
        let paused = MonotonicClock.now()
        guard complete, !stopped, let running = running.withLock({ $0 }) else {
            pause.resume()
            return
        }
        if let request { saveSnapshot(request, states: states, running: running, requested: requested, paused: paused) }
        if let hold, !stopped {
            hold()
            heldRelease.wait()
        }
        if event.phase == .guestReady && !stopped { handOver(restart: true) }
        pause.resume()
    }

    /// Writes the next chunk of the hand-over (the first if `restart`) with
    /// this moment's wall clock and a fresh seed.
    private func handOver(restart: Bool) {
        guard let memory = running.withLock({ $0?.memory }) else { return }
        var seed = [UInt8](repeating: 0, count: HandoverMailbox.seedSize)
        _ = seed.withUnsafeMutableBytes { space in
            transferAll(space.count) { done in getrandom(space.baseAddress! + done, space.count - done, 0) }
        }
        let now = WallClock.now()
        let delivery = HandoverMailbox.Delivery(realtimeSeconds: Int64(now.tv_sec), realtimeNanoseconds: UInt32(now.tv_nsec), seed: seed)
        let payload = handoverPayload.withLock { $0 }
        handoverOffset.withLock { offset in
            do { offset = try HandoverMailbox.write(payload, from: restart ? 0 : offset, delivery, at: platform.deviceLayout.handoverMailbox, into: memory) } catch {
                logger.error("cannot write the hand-over mailbox: \(error)")
            }
        }
    }

    /// Holds the device loop, saves the parked machine, then stops it or lets it carry on.
    private func saveSnapshot(_ request: SnapshotRequest, states: [Int: Result<[UInt8], HypervisorError>],
                              running: Running, requested: UInt64, paused: UInt64) {
        running.loop.pause()
        var failure: String?
        var written = false
        var memoryBytes = 0
        do {
            var vcpus: [SnapshotState.VCPU] = []
            for id in 0..<configuration.cpus {
                guard let result = states[id] else { throw MachineError.invalidConfiguration("vCPU \(id) did not park") }
                vcpus.append(SnapshotState.VCPU(identity: running.identities[id], state: try result.get()))
            }
            let machineState: [UInt8]
            do { machineState = try running.vm.captureState() } catch { throw MachineError.kvm(error) }
            var state = SnapshotState(
                architecture: platform.architecture, hostKind: configuration.host,
                memory: running.memory.layout.map { .init(guestAddress: $0.guestAddress, size: $0.size) },
                machine: .init(memoryMiB: configuration.memoryMiB, cpus: configuration.cpus,
                               compatibility: configuration.compatibility.name, disks: configuration.disks,
                               networks: configuration.networks.map { ($0.tap, $0.mac ?? MACAddress(derivedFrom: $0.tap)) },
                               entropyDevice: configuration.entropyDevice, hiddenCPUFeatures: configuration.hiddenCPUFeatures,
                               vsock: configuration.vsock),
                machineState: machineState, vcpus: vcpus,
                devices: running.devices.map { ($0.name, $0.device.saveState()) })
            state.provenance = request.provenance.merging(
                ["kernel": running.kernel, "cmdline": running.commandLine, "marker": String(request.marker)]) { _, machine in machine }
            (written, memoryBytes) = try SnapshotFiles.write(state, memory: running.memory, to: request.directory)
        } catch {
            failure = "\(error)"
        }
        running.loop.resume()
        let saved = MonotonicClock.now()
        if let failure {
            if request.required {
                requestStop(.vmmError("snapshot to \(request.directory) failed: \(failure)"))
            } else {
                logger.warning("snapshot to \(request.directory) failed (the run carries on without it): \(failure)")
            }
        } else if request.thenStop {
            requestStop(.snapshotSaved(request.directory))
        }
        snapshotOutcome.withLock {
            $0 = SnapshotOutcome(directory: request.directory, written: written && failure == nil, requested: requested,
                                 paused: paused, saved: saved, resumed: MonotonicClock.now(), memoryBytes: memoryBytes)
        }
    }

    /// A container line's host end: bytes to `fd` (dropped without one), the
    /// first one timestamped.
    private func containerOutput(to relay: OutputRelay?) -> @Sendable (UInt8) -> Void {
        guard let relay else { return { _ in } }
        return { [weak self] byte in
            if let self, self.firstOutput.load(ordering: .relaxed) == 0 {
                _ = self.firstOutput.compareExchange(expected: 0, desired: MonotonicClock.now(), ordering: .relaxed)
            }
            relay.append(byte)
        }
    }

    /// Logs an access no device claimed (at debug level: `-v`).
    private func logUnclaimed(_ bus: String) -> @Sendable (UInt64, Bool, Int) -> Void {
        { [logger] address, isWrite, size in
            logger.debug("unclaimed \(bus) \(isWrite ? "write" : "read")",
                         metadata: ["address": "0x\(String(address, radix: 16))", "size": "\(size)"])
        }
    }

    /// The guest ended its run: the stop policy weighs how, against what it said.
    func guestStopped(_ stop: GuestStop) {
        let events = markers.events
        let testimony = GuestTestimony(
            initStarted: events.contains { $0.phase == .initStarted },
            shutdownRequested: events.contains { $0.phase == .shutdownRequested },
            kernelPanicked: panicDetector.panicked,
            anyGuestMarker: events.contains { $0.phase != .firstInstruction })
        requestStop(StopPolicy.reason(for: stop, given: testimony))
    }

    /// Called by each vCPU loop before KVM_RUN (one relaxed load once set).
    func noteEntry() {
        guard firstEntry.load(ordering: .relaxed) == 0 else { return }
        _ = firstEntry.compareExchange(expected: 0, desired: MonotonicClock.now(), ordering: .relaxed)
    }

    /// Called by each vCPU loop after KVM_RUN returns (one relaxed load once set).
    func noteExit() {
        guard firstExit.load(ordering: .relaxed) == 0 else { return }
        _ = firstExit.compareExchange(expected: 0, desired: MonotonicClock.now(), ordering: .relaxed)
    }

    func countDeliveredException() -> Int { deliveredExceptions.add(1, ordering: .relaxed).newValue }
    func countSkippedInstruction() -> Int { skippedInstructions.add(1, ordering: .relaxed).newValue }
}

/// User plus system CPU time of this process so far, in seconds.
func processCPUTime() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

extension Machine {
    /// One interrupt input per serial line: lines on the same IRQ share it
    /// through a wired OR (`SharedInterruptLine`), as ISA serial ports do.
    func serialInterruptLines(_ lines: [DeviceLayout.Slot], vm: any VirtualMachineHandle) -> [any InterruptLine] {
        var shared: [UInt32: (line: SharedInterruptLine, inputs: Int)] = [:]
        return lines.map { slot -> any InterruptLine in
            guard let irq = slot.irq else { return DisconnectedInterruptLine() }
            let chip = ChipInterruptLine(vm: vm, line: irq, logger: logger)
            guard lines.filter({ $0.irq == irq }).count > 1 else { return chip }
            let entry = shared[irq] ?? (SharedInterruptLine(chip), 0)
            shared[irq] = (entry.line, entry.inputs + 1)
            return entry.line.input(entry.inputs)
        }
    }
}

/// An interrupt line of the hypervisor's interrupt controller.
struct ChipInterruptLine: InterruptLine {
    let vm: any VirtualMachineHandle
    let line: UInt32
    let logger: Logger

    func set(high: Bool) {
        do { try vm.setInterruptLine(line, high: high) } catch {
            logger.error("cannot drive IRQ \(line): \(error)")
        }
    }
}

/// A forbidden call one VMM thread makes on purpose, to show its filter ends the VMM.
public struct SeccompProbe: Sendable, Equatable {
    public let thread: VMMSeccompPolicy.Thread
    public let call: String
    public static let calls = ["execve", "fork", "socket", "open"]

    /// "THREAD:CALL", THREAD one of vcpu, devices, main, signals, coordinator.
    public init?(_ argument: String) {
        let parts = argument.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, let thread = VMMSeccompPolicy.Thread(rawValue: parts[0]), Self.calls.contains(parts[1]) else { return nil }
        self.thread = thread
        self.call = parts[1]
    }
}
