import Container
import CSystem
import Glibc
import Host
import Images
import Seccomp
import SkiffKit
import Synchronization

/// The process whose PID is the container's (`skiff-oci monitor ID`, started
/// by `create`): it restores the ready guest with the bundle's disk (or boots
/// it, saving the ready guest for later containers: `ReadyGuest`) until init
/// waits at `ready`, tells `create` on fd 3, hands the run spec over when `start`
/// asks on the control socket, and ends as the container's process ended:
/// its exit status, or killed by the same signal. The container's standard
/// streams are the monitor's (conmon's pipes): output relayed from the
/// guest's lines, input framed into it.
enum ContainerMonitor {
    static let readyFD: Int32 = 3
    /// Whether fd 3 was used up: once closed, its number may be reused by anything.
    static let told = Atomic<Bool>(false)

    static func run(id: String, store: ContainerStore, log: RuntimeLog, consoleSocket: String?,
                    cgroup: String?, memoryMiB: Int) -> Never {
        ShutdownSignals.install()
        let directory = store.directory(id)
        func fail(_ message: String) -> Never {
            tell("error: " + message)
            log.error(message)
            exit(1)
        }
        // Into the container's cgroup (made by create) before the guest's memory is touched.
        if let cgroup {
            do {
                if let failure = try ControlGroup(path: cgroup, limits: .init()).add(getpid()) { fail("joining cgroup \(cgroup): \(failure)") }
            } catch {
                fail("cgroup \(cgroup): \(error)")
            }
        }
        // A terminal: the master goes to the console socket, the slave becomes our stdio.
        if let consoleSocket {
            do { try attachTerminal(consoleSocket) } catch { fail("\(error)") }
        }
        guard chdir(directory) == 0 else { fail("\(directory): \(String(cString: strerror(errno)))") }
        let spec: [UInt8]
        do {
            _ = try store.load(id)
            spec = try RuntimeCommands.readSmallFile(directory + "/spec", limit: 64 << 20)
        } catch {
            fail("\(error)")
        }
        /// state.json as `create` last wrote it (with this monitor's PID), changed.
        @Sendable func updateStatus(_ status: String) {
            guard var record = try? store.load(id) else { return }
            record.status = status
            try? store.save(record)
        }
        let listener: Int32
        do { listener = try ControlSocket.listen() } catch { fail("\(error)") }

        let configuration: MachineConfiguration
        do {
            configuration = try machineConfiguration(directory: directory, terminal: consoleSocket != nil, memoryMiB: memoryMiB)
        } catch { fail("\(error)") }
        let logger = Logger(label: "skiff-oci", logLevel: .warning)
        let machine: Machine
        do { machine = try ReadyGuest.machine(configuration, logger: logger, id: id, log: log) } catch { fail("\(error)") }

        // `start`: once, while the guest waits at ready. The control thread
        // confines itself first (seccomp, as every VMM thread is).
        let started = Atomic<Bool>(false)
        let startedAt = Atomic<UInt64>(0)
        let seccomp = configuration.seccomp
        if seccomp == .kill {
            do { try Seccomp.installReporter() } catch { fail("\(error)") }
        }
        _ = try? NativeThread {
            if seccomp != .off {
                Seccomp.label(VMMSeccompPolicy.Thread.control.label)
                do { try VMMSeccompPolicy.filter(for: .control, hypervisor: machine.hypervisorCalls).install(seccomp) } catch {
                    machine.requestStop(.vmmError("\(error) (control thread)"))
                    return
                }
            }
            while true {
                let client = retryingInterrupts { accept(listener, nil, nil) }
                guard client >= 0 else { return }
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                let request = ControlSocket.readLine(client)
                var reply = "error: unknown request '\(request)'"
                let words = request.split(separator: " ")
                if words.count == 2, words[0] == "signal" || words[0] == "signal-all", let number = Int32(words[1]) {
                    // Into the guest: the process (or every process) gets it, and may handle it.
                    reply = !started.load(ordering: .acquiring) ? "error: the container was not started"
                        : machine.sendContainerControl(ContainerControl.signal(number, all: words[0] == "signal-all")) ? "ok"
                        : "error: the container's control line is full or gone"
                } else if request == "start" {
                    if started.exchange(true, ordering: .acquiringAndReleasing) {
                        reply = "error: the container was started already"
                    } else {
                        updateStatus("running")
                        startedAt.store(MonotonicClock.now(), ordering: .relaxed)
                        machine.release(handover: spec + terminalSize(consoleSocket != nil))
                        reply = "ok"
                    }
                }
                _ = Array((reply + "\n").utf8).withUnsafeBytes { writeAll(client, $0) }
                close(client)
            }
        }.detach()

        let report: MachineReport
        do { report = try machine.run() } catch { fail("\(error)") }
        close(listener)
        unlink(ControlSocket.name)
        updateStatus("stopped")
        log.info("container \(id): \(guestTimeline(report.timeline, startedAt: startedAt.load(ordering: .relaxed)))")
        // Before ready: `create` is still waiting on fd 3 for the reason.
        tell("error: the guest stopped before it was ready: \(report.stopReason)")

        if case let .signal(number) = report.stopReason { ShutdownSignals.die(by: number) }
        if let status = report.workloadExitStatus {
            RuntimeCommands.endAsTheProcessDid(Int32(status))
        }
        let console = String(decoding: report.consoleOutput, as: UTF8.self).split(separator: "\n").suffix(20).joined(separator: "\n")
        log.error("the container's process did not report an exit status: \(report.stopReason)\(console.isEmpty ? "" : "; guest console:\n" + console)")
        exit(report.stopReason.exitStatus == 0 ? 125 : report.stopReason.exitStatus)
    }

    /// The guest's boot markers after `start` (ms), and when the VM stopped:
    /// where a container's time went, in the runtime log.
    static func guestTimeline(_ timeline: BootTimeline, startedAt: UInt64) -> String {
        guard startedAt != 0 else { return "not started; stopped \(Int(timeline.milliseconds(timeline.stopped))) ms after the monitor started" }
        func since(_ time: UInt64) -> String { String(Int64(bitPattern: time &- startedAt) / 1_000_000) }
        let markers = timeline.markers.filter { $0.time >= startedAt }
            .map { "\($0.phase.map { "\($0)" } ?? "marker \($0.code)") +\(since($0.time))" }
        return "after start (ms): " + (markers + ["stopped +\(since(timeline.stopped))"]).joined(separator: ", ")
    }

    /// Says one line to `create` on fd 3 (once; later lines find it closed).
    static func tell(_ line: String) {
        guard !told.exchange(true, ordering: .acquiringAndReleasing) else { return }
        _ = Array((line + "\n").utf8).withUnsafeBytes { writeAll(readyFD, $0) }
        close(readyFD)
    }

    /// Skiff's guest on the container's disk, held at ready, its root
    /// mounted only after the hand-over (so that its ready state fits every bundle).
    static func machineConfiguration(directory: String, terminal: Bool, memoryMiB: Int) throws(MachineError) -> MachineConfiguration {
        let guest = try GuestArtifacts.ensureBuilt()
        let host = HostKind.detect()
        let profile = CompatibilityProfile.resolve(.auto, host: host)
        var configuration = MachineConfiguration(kernelPath: guest.kernel, initrdPath: guest.initrd,
                                                 commandLine: KernelCommandLine.compose(base: nil, append: nil, profile: profile))
        configuration.host = host
        configuration.compatibility = profile
        configuration.memoryMiB = memoryMiB
        configuration.disks = [DiskConfiguration(path: directory + "/rootfs.ext4", readOnly: true)]
        configuration.console = .capture
        configuration.initrdAppendix = GuestRunSpec.initramfsAppendix(GuestRunSpec.preparation(rootDevice: "/dev/vda", attachedAtHandover: true))
        var lines = ContainerLines(input: terminal ? .terminal : .framed)
        lines.detachEscape = false
        configuration.containerLines = lines
        configuration.holdAtReady = { tell("ready") }
        // `exec`'s way in: the guest agent's port, reached through vsock.sock
        // beside state.json (relative: the monitor works in that directory).
        configuration.vsock = VsockConfiguration(guestCID: 3, path: ExecSession.socketName)
        // Every thread of the monitor confined; SKIFF_SECCOMP=log|off for diagnosis.
        configuration.seccomp = getenv("SKIFF_SECCOMP").flatMap { SeccompMode(rawValue: String(cString: $0)) } ?? .kill
        configuration.seccompStateFiles = true
        return configuration
    }

    /// A new pseudo-terminal: its master sent to `socketPath` (SCM_RIGHTS, as
    /// runc does; conmon or the shim relays it), its slave, raw (the guest's
    /// line discipline does the cooking), made this process's stdin, stdout and stderr.
    static func attachTerminal(_ socketPath: String) throws(RuntimeError) {
        var master: Int32 = -1, slave: Int32 = -1
        guard csystem_open_pty(&master, &slave) == 0 else { throw .system("openpty: \(String(cString: strerror(errno)))") }
        var mode = termios()
        if tcgetattr(slave, &mode) == 0 {
            cfmakeraw(&mode)
            tcsetattr(slave, TCSANOW, &mode)
        }
        let directory = socketPath.contains("/") ? String(socketPath[..<socketPath.lastIndex(of: "/")!]) : "."
        let name = String(socketPath[(socketPath.lastIndex(of: "/").map { socketPath.index(after: $0) } ?? socketPath.startIndex)...])
        let socketFD = try ControlSocket.connect(name, in: directory.isEmpty ? "/" : directory)
        defer { close(socketFD) }
        guard csystem_send_fd(socketFD, master, "/dev/ptmx") == 0 else {
            throw .system("sending the terminal to \(socketPath): \(String(cString: strerror(errno)))")
        }
        close(master)
        for fd in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] { dup2(slave, fd) }
        close(slave)
        // Our controlling terminal, as runc makes it the container's: when
        // conmon or the shim resizes the master, SIGWINCH comes here and the
        // new size goes on to the guest.
        _ = setsid()
        _ = ioctl(STDIN_FILENO, UInt(TIOCSCTTY), 0)
    }

    /// The terminal's size as run-spec records (they override create's), when there is one and it is set.
    static func terminalSize(_ terminal: Bool) -> [UInt8] {
        var size = winsize()
        guard terminal, ioctl(STDIN_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0, size.ws_col > 0 else { return [] }
        return ["rows=\(size.ws_row)", "columns=\(size.ws_col)"].flatMap { Array($0.utf8) + [0] }
    }
}
