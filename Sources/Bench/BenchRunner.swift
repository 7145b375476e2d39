import Container
import SkiffKit
import Foundation
import Glibc
import Images

/// `skiff bench`: the same image and argv started as a microVM (`skiff run`,
/// a fresh process each time) and as a container (crun or runc over an OCI
/// bundle from the image), phase by phase; then CPU, memory and disk.
public struct BenchRunner {
    public struct Options: Sendable {
        public var image: String
        public var arguments: [String] = []
        public var runs = 10
        public var instances = 3
        public var memoryMiB = 128
        public var budgetMiB = 16384
        public var cpuIterations = 2_000_000
        public var skiffExecutable: String
        public var guest: GuestArtifacts
        public var host: HostKind
        public var qemuTimeout: Double = 60
        public init(image: String, skiffExecutable: String, guest: GuestArtifacts, host: HostKind) {
            (self.image, self.skiffExecutable, self.guest, self.host) = (image, skiffExecutable, guest, host)
        }
    }

    let options: Options
    let logger: Logger
    let store: ImageStore

    public init(_ options: Options, store: ImageStore = .standard(), logger: Logger) {
        (self.options, self.store, self.logger) = (options, store, logger)
    }

    public func run() throws(MachineError) -> BenchReport {
        let source: ImageSource
        do { source = try ImageSource.open(try ImageReference(parsing: options.image)) } catch { throw .image(error) }
        let disk = try store.rootDisk(for: source)
        let tree = try store.unpackedTree(for: source)
        let spec = try resolve(source, disk, arguments: options.arguments)
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-bench-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: work) }
        try OCIBundle.write(spec, rootPath: tree, to: work + "/bundle")

        let (selected, refusals) = ContainerRuntime.select(bundle: work + "/bundle")
        guard let runtime = selected else {
            throw .invalidConfiguration("no OCI runtime could run the image: \(refusals.joined(separator: "; ")) (apt install crun runc)")
        }
        logger.info("container runtime: \(runtime.name)\(refusals.isEmpty ? "" : " (\(refusals.joined(separator: "; ")))")")

        // Startup, alternating (cold VM, VM from snapshot, container) so that
        // drift affects all alike. The untimed warm-up boots and saves the
        // image's ready snapshot; a second one restores it once.
        _ = try vmRun(spec.arguments, snapshot: true)
        let (checked, _) = try vmRun(spec.arguments, snapshot: true)
        guard checked.restored else { throw .invalidConfiguration("skiff run did not restore the snapshot its warm-up saved") }
        var vmRuns: [RunPhases] = [], vmExits: [UInt64] = [], containerRuns: [ContainerRuntime.Phases] = []
        var snapshotRuns: [RunPhases] = [], snapshotExits: [UInt64] = []
        for index in 0..<options.runs {
            logger.info("startup run \(index + 1)/\(options.runs)")
            let (phases, exit) = try vmRun(spec.arguments, snapshot: false)
            vmRuns.append(phases)
            vmExits.append(exit)
            let (restored, restoredExit) = try vmRun(spec.arguments, snapshot: true)
            snapshotRuns.append(restored)
            snapshotExits.append(restoredExit)
            do { containerRuns.append(try runtime.run(bundle: work + "/bundle")) } catch {
                throw .invalidConfiguration("\(runtime.name): \(error)")
            }
        }

        let cpu = try measureCPU(runtime, tree: tree, source: source, disk: disk, work: work)
        let memory = try measureMemory(runtime, tree: tree, source: source, disk: disk, work: work)
        let diskResult = BenchReport.DiskResult(
            layerBytes: source.layerBytes, treeBytes: disk.entry.treeBytes, rootDiskBytes: allocatedBytes(disk.path),
            kernelBytes: allocatedBytes(options.guest.kernel), initrdBytes: allocatedBytes(options.guest.initrd))
        let vmPhases = BenchReport.vmPhaseSamples(vmRuns, exits: vmExits).map { BenchReport.summarize($0, $1) }
        let snapshotPhases = BenchReport.snapshotPhaseSamples(snapshotRuns, exits: snapshotExits).map { BenchReport.summarize($0, $1) }
        let containerPhases = BenchReport.containerPhaseSamples(containerRuns).map { BenchReport.summarize($0, $1) }
        let peer = qemuPeer(skiffFirstInstruction: vmPhases.first { $0.phase == "first guest instruction" }?.median)

        var report = BenchReport(
            date: ISO8601DateFormatter().string(from: Date()), host: hostInfo(), warnings: [], image: options.image,
            imageID: source.id, command: spec.arguments, runs: options.runs, runtime: runtime.name, runtimeRefusals: refusals,
            vmRuns: vmRuns, containerRuns: containerRuns, vmExits: vmExits, vmPhases: vmPhases, containerPhases: containerPhases,
            snapshotRuns: snapshotRuns, snapshotExits: snapshotExits, snapshotPhases: snapshotPhases,
            cpu: cpu, memory: memory, disk: diskResult, peer: peer, classic: [])
        if options.host == .pvm {
            report.warnings.append("nested PVM host: the guest kernel is interpreted (about 1000x slower than hardware KVM); VM boot and syscall-heavy times here are not representative")
        }
        if (vmRuns + snapshotRuns).contains(where: { $0.exitStatus != containerRuns.first.map { Int($0.exitStatus) } }) {
            report.warnings.append("the VM and the container did not exit alike; compare their outputs")
        }
        report.classic = BenchRendering.classicRows(report)
        return report
    }

    func resolve(_ source: ImageSource, _ disk: ImageStore.RootDisk, arguments: [String]) throws(MachineError) -> ContainerSpec {
        var runOptions = ContainerSpec.Options()
        runOptions.arguments = arguments
        runOptions.hostname = "skiff-bench"
        do {
            return try ContainerSpec.resolve(source.configuration.config ?? .init(), options: runOptions, users: disk.entry.users,
                                             hostEnvironment: [:], defaultHostname: "skiff-bench")
        } catch {
            throw .image(error)
        }
    }

    /// One `skiff run` as a fresh process: its own phases, and when it exited.
    /// `snapshot`: restore the image's ready guest (false: `--no-snapshot`, a cold boot).
    func vmRun(_ argv: [String], memoryMiB: Int? = nil, snapshot: Bool) throws(MachineError) -> (RunPhases, UInt64) {
        let report = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-bench-run-\(UUID()).json").path
        defer { unlink(report) }
        let child = try ChildProcess(vmArguments(argv, memoryMiB: memoryMiB, report: report, snapshot: snapshot))
        let exit = child.wait()
        guard let data = FileManager.default.contents(atPath: report),
              var phases = try? JSONDecoder().decode(RunPhases.self, from: data) else {
            throw .invalidConfiguration("skiff run exited with status \(exit.status) without a report")
        }
        // The child's own clock reading at main() is later than the spawn: count from the spawn.
        phases.processStart = child.spawned
        return (phases, exit.time)
    }

    func vmArguments(_ argv: [String], memoryMiB: Int?, report: String?, snapshot: Bool) -> [String] {
        var arguments = [options.skiffExecutable, "run", "--memory", "\(memoryMiB ?? options.memoryMiB)", "--no-rng"]
        if !snapshot { arguments.append("--no-snapshot") }
        if let report { arguments += ["--report", report] }
        return arguments + ["--entrypoint", argv[0], options.image, "--"] + argv.dropFirst()
    }

    /// A fixed user-space loop (the image's own awk). In the container and the
    /// VM it is timed inside, from /proc/uptime (10 ms resolution) read by shell
    /// builtins; natively (a chroot into the same tree, which has no /proc) by
    /// the host clock around the process, which adds its exec (about a millisecond).
    func measureCPU(_ runtime: ContainerRuntime, tree: String, source: ImageSource, disk: ImageStore.RootDisk,
                    work: String) throws(MachineError) -> BenchReport.CPUResult {
        let loop = "awk 'BEGIN { for (i = 0; i < \(options.cpuIterations); i++) s += i % 7; print s }'"
        let argv = ["/bin/sh", "-c", "read s rest < /proc/uptime; \(loop) >/dev/null; read e rest < /proc/uptime; echo cpu-s $s $e"]
        func milliseconds(_ text: String) -> Double {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu-s ") }) else { return .nan }
            let fields = line.split(separator: " ").dropFirst().compactMap { Double($0) }
            return fields.count == 2 ? (fields[1] - fields[0]) * 1000 : .nan
        }
        logger.info("CPU workload: native, container, VM")
        let native = try ChildProcess(["/usr/sbin/chroot", tree, "/bin/sh", "-c", loop])
        let nativeEnd = native.wait()
        let nativeMs = nativeEnd.status == 0 ? Double(nativeEnd.time - native.spawned) / 1e6 : .nan

        var spec = try resolve(source, disk, arguments: argv)
        spec.arguments = argv
        try OCIBundle.write(spec, rootPath: tree, to: work + "/cpu")
        let container = try ChildProcess([runtime.path, "run", "--bundle", work + "/cpu", "skiff-bench-cpu-\(getpid())"])
        _ = container.wait()
        container.waitForEndOfOutput(seconds: 5)

        let vm = try ChildProcess(vmArguments(argv, memoryMiB: nil, report: nil, snapshot: true))
        _ = vm.wait()
        vm.waitForEndOfOutput(seconds: 5)
        return .init(workload: loop, nativeMs: nativeMs, containerMs: milliseconds(container.text), vmMs: milliseconds(vm.text))
    }

    /// `instances` idle VMs (booted, then restored from the image's ready
    /// snapshot) and containers at once, each verified alive (it printed
    /// "ready"), then their RSS and PSS.
    func measureMemory(_ runtime: ContainerRuntime, tree: String, source: ImageSource, disk: ImageStore.RootDisk,
                       work: String) throws(MachineError) -> BenchReport.MemoryResult {
        let argv = ["/bin/sh", "-c", "echo ready; exec sleep 100000"]
        var result = BenchReport.MemoryResult(instances: options.instances, vmMemoryMiB: options.memoryMiB, vmPSSMiB: [], vmRSSMiB: [],
                                              containerPSSMiB: [], containerRSSMiB: [], budgetMiB: options.budgetMiB,
                                              snapshotPSSMiB: [], snapshotRSSMiB: [])
        for snapshot in [false, true] {
            logger.info("memory: \(options.instances) idle VMs \(snapshot ? "restored from the snapshot" : "booted")")
            var vms: [ChildProcess] = []
            defer { for vm in vms { kill(vm.pid, SIGKILL); _ = vm.wait() } }
            for _ in 0..<options.instances {
                vms.append(try ChildProcess(vmArguments(argv, memoryMiB: nil, report: nil, snapshot: snapshot)))
            }
            for vm in vms where !vm.waitForOutput("ready", seconds: 600) {
                throw .invalidConfiguration("an idle VM never became ready")
            }
            usleep(500_000)  // let the guests settle into their idle loop
            for vm in vms {
                let (rss, pss) = memoryUse(vm.pid)
                if snapshot {
                    result.snapshotRSSMiB.append(rss)
                    result.snapshotPSSMiB.append(pss)
                } else {
                    result.vmRSSMiB.append(rss)
                    result.vmPSSMiB.append(pss)
                }
            }
        }

        logger.info("memory: \(options.instances) idle containers")
        var spec = try resolve(source, disk, arguments: argv)
        spec.arguments = argv
        try OCIBundle.write(spec, rootPath: tree, to: work + "/idle")
        var containers: [(id: String, pid: pid_t)] = []
        defer { for container in containers { runtime.remove(container.id, pid: container.pid) } }
        for _ in 0..<options.instances {
            do { containers.append(try runtime.startDetached(bundle: work + "/idle", ready: "ready", timeout: 60)) } catch {
                throw .invalidConfiguration("\(error)")
            }
        }
        for container in containers {
            let (rss, pss) = memoryUse(container.pid)
            result.containerRSSMiB.append(rss)
            result.containerPSSMiB.append(pss)
        }
        return result
    }

    /// RSS and PSS (MiB) of a process, from /proc/PID/smaps_rollup.
    func memoryUse(_ pid: pid_t) -> (rss: Double, pss: Double) {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/smaps_rollup", encoding: .utf8) else { return (.nan, .nan) }
        func field(_ name: String) -> Double {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }),
                  let kib = Double(line.split(separator: " ").dropFirst().first ?? "") else { return .nan }
            return kib / 1024
        }
        return (field("Rss"), field("Pss"))
    }

    func allocatedBytes(_ path: String) -> Int64 {
        var info = stat()
        return stat(path, &info) == 0 ? Int64(info.st_blocks) * 512 : 0
    }

    /// QEMU's microvm machine booting the same guest, where QEMU is installed.
    func qemuPeer(skiffFirstInstruction: Double?) -> BenchReport.Peer {
        var peer = BenchReport.Peer(name: "qemu-system-x86_64 -M microvm", outcome: "", firstOutputMs: nil,
                                    skiffFirstInstructionMs: skiffFirstInstruction)
        let candidates = ["/usr/bin/qemu-system-x86_64", "/usr/local/bin/qemu-system-x86_64"]
        guard let qemu = candidates.first(where: { access($0, X_OK) == 0 }) else {
            peer.outcome = "not installed (apt install qemu-system-x86 to compare)"
            return peer
        }
        let append = KernelCommandLine.compose(base: nil, append: "-- /bin/true",
                                               profile: CompatibilityProfile.resolve(.auto, host: options.host))
        guard let child = try? ChildProcess([qemu, "-M", "microvm", "-enable-kvm", "-cpu", "host", "-m", "128", "-smp", "1",
                                              "-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-serial", "stdio",
                                              "-kernel", options.guest.kernel, "-initrd", options.guest.initrd, "-append", append]) else {
            peer.outcome = "could not be started"
            return peer
        }
        let booted = child.waitForOutput("skiff-init", seconds: options.qemuTimeout)
        kill(child.pid, SIGKILL)
        _ = child.wait()
        peer.firstOutputMs = child.firstOutput.map { Double($0 - child.spawned) / 1e6 }
        let last = child.text.split(separator: "\n").last.map { String($0.prefix(160)) } ?? "no console output"
        peer.outcome = booted ? "booted the guest to its init"
            : "did not boot the Linux guest within \(Int(options.qemuTimeout)) s on this host (last console line: \(last))"
        return peer
    }

    func hostInfo() -> BenchReport.Host {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: name.release) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        let model = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.split(separator: "\n")
            .first { $0.hasPrefix("model name") }.map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) } ?? "unknown"
        return .init(kind: options.host.rawValue, representative: options.host == .hardware,
                     cpus: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), kernel: release, cpuModel: model)
    }
}
