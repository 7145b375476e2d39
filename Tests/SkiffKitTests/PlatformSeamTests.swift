import Devices
import Glibc
import Hypervisor
import Memory
import Platform
import Synchronization
import Testing
import X86_64
@testable import SkiffKit

/// Plays an architecture that is not x86_64: RAM at 1 GiB, every device on
/// MMIO below it and no reset controller, a "kernel" that is the bytes
/// "TOYK" and a byte of entry offset, one instruction (0xAA) the hypervisor
/// cannot emulate and the platform steps over (two bytes). Records each call
/// the machine makes of it.
final class ToyPlatform: GuestPlatform, @unchecked Sendable {
    static let ramBase: UInt64 = 0x4000_0000
    static let console: UInt64 = 0x0900_0000
    static let markers: UInt64 = 0x0910_0000
    let calls = Mutex<[String]>([])
    /// The toy CPU its hypervisor has (a restore elsewhere sees another).
    let cpu: String
    init(cpu: String = "toy cpu") { self.cpu = cpu }

    private func record(_ call: String) { calls.withLock { $0.append(call) } }

    var architecture: String { "toy" }
    var maximumCPUs: Int { 4 }
    var hideableCPUFeatures: [String] { ["sparkle"] }
    var deviceLayout: DeviceLayout {
        DeviceLayout(serialLines: [DeviceLayout.Slot(bus: .mmio, address: Self.console, irq: 33),
                                   DeviceLayout.Slot(bus: .mmio, address: Self.console + 0x1000, irq: 34),
                                   DeviceLayout.Slot(bus: .mmio, address: Self.console + 0x2000, irq: 34)],
                     bootMarkers: DeviceLayout.Slot(bus: .mmio, address: Self.markers),
                     virtioBase: 0x0A00_0000, virtioIRQs: 40...41, handoverMailbox: Self.ramBase + 0x10_0000)
    }
    func resetController(onReset: @escaping @Sendable () -> Void) -> PlacedDevice? { nil }
    var workaroundParameters: [String] { [] }
    func announcingHiddenFeatures(in parameters: [String]) throws(BootError) -> [String] {
        record("announce hidden features")
        return parameters + ["toy.hidden=sparkle"]
    }

    func makeMemory(size: Int) throws -> GuestMemory {
        record("memory \(size >> 20) MiB")
        return try GuestMemory(layout: [(Self.ramBase, size)])
    }

    func checkKernel(_ kernel: [UInt8], file: String) throws(BootError) {
        record("check")
        guard kernel.count == 5, kernel.starts(with: Array("TOYK".utf8)) else { throw BootError(file: file, "not a toy kernel") }
    }

    /// The toy's kernel learns its virtio devices from its boot structures
    /// (as an aarch64 kernel from its device tree), not its command line.
    func deviceParameters(_ virtio: [DeviceLayout.Slot]) -> [String] { [] }

    func loadKernel(_ images: KernelImages, into memory: GuestMemory) throws(BootError) -> LoadedKernel {
        record("load \(images.commandLine) on \(images.cpuCount)")
        for device in images.virtioDevices {
            record("describe virtio at 0x\(String(device.address, radix: 16)) irq \(device.irq ?? 0)")
        }
        let entry = Self.ramBase + UInt64(images.kernel[4]) * 0x1000
        do { try memory.write(bytes: images.kernel, at: entry) } catch { throw BootError(file: images.kernelPath, "\(error)") }
        return LoadedKernel(format: "toy", entry: entry) { [self] vcpus, identities throws(HypervisorError) in
            record("vCPUs \(vcpus.map(\.id)) showing \(identities.map { String(decoding: $0.bytes, as: UTF8.self) })")
            try Self.toy(vcpus[0]).pc = entry
        }
    }

    func prepare(_ vm: any VirtualMachineHandle) throws(HypervisorError) { record("prepare VM") }

    /// The toy's CPU identity is text: what its hypervisor supports (`cpu`,
    /// asked on another thread, so not recorded), then each vCPU's number
    /// and count.
    func supportedIdentity(of hypervisor: any Hypervisor) throws(HypervisorError) -> CPUIdentity {
        CPUIdentity(bytes: Array(cpu.utf8))
    }

    func cpuIdentity(vcpu id: Int, of count: Int, supported: CPUIdentity) throws(HypervisorError) -> CPUIdentity {
        record("identity \(id) of \(count)")
        return CPUIdentity(bytes: supported.bytes + Array(" \(id)/\(count)".utf8))
    }

    func setIdentity(_ identity: CPUIdentity, of vcpu: any VirtualCPU) throws(HypervisorError) {
        record("identity set: \(String(decoding: identity.bytes, as: UTF8.self))")
    }

    func mismatch(of saved: CPUIdentity, here: CPUIdentity) -> IdentityMismatch? {
        saved == here ? nil : .differs("toy identity '\(String(decoding: saved.bytes, as: UTF8.self))'")
    }
    func instructionPointer(of vcpu: any VirtualCPU) throws(HypervisorError) -> UInt64 { try Self.toy(vcpu).pc }
    func registerSummary(of vcpu: any VirtualCPU) -> String { "toy pc 0x\(String((try? Self.toy(vcpu).pc) ?? 0, radix: 16))" }

    /// The toy's own view of a vCPU: a program counter (no x86 registers).
    static func toy(_ vcpu: any VirtualCPU) throws(HypervisorError) -> any ToyVCPU {
        guard let toy = vcpu as? any ToyVCPU else { throw HypervisorError("a toy vCPU", errno: 22) }
        return toy
    }

    func handleUnemulated(_ bytes: [UInt8], on vcpu: any VirtualCPU) throws(HypervisorError) -> UnemulatedInstruction {
        record("unemulated \(bytes)")
        guard bytes.first == 0xAA else { return .unhandled }
        try Self.toy(vcpu).pc += 2
        return .skipped
    }

    func beforeDestroying(_ vm: any VirtualMachineHandle) throws(HypervisorError) { record("before destroying") }
}

/// A toy architecture's vCPU state: one program counter.
protocol ToyVCPU: VirtualCPU {
    var pc: UInt64 { get set }
}

extension ScriptedVCPU: ToyVCPU {
    var pc: UInt64 {
        get { state.rip }
        set { state.rip = newValue }
    }
}

/// Plays the hypervisor's VM: hands out one scripted vCPU and records the
/// calls the machine makes of it. It has no x86 side (no `X86VirtualMachine`):
/// the machine must not need one.
final class RecordingVM: VirtualMachineHandle, @unchecked Sendable {
    let vcpu: ScriptedVCPU
    let calls = Mutex<[String]>([])
    init(_ vcpu: ScriptedVCPU) { self.vcpu = vcpu }
    private func record(_ call: String) { calls.withLock { $0.append(call) } }

    /// The guest memory the machine mapped, to read what the VMM wrote.
    private(set) var mapped: GuestMemory?

    func map(_ memory: GuestMemory) throws(HypervisorError) {
        mapped = memory
        record("map " + memory.regions.map { "0x\(String($0.guestAddress, radix: 16))" }.joined(separator: ","))
    }
    func createInterruptController() throws(HypervisorError) { record("createInterruptController") }
    func setInterruptLine(_ line: UInt32, high: Bool) throws(HypervisorError) {}
    func attachInterruptEventFD(_ eventFD: Int32, line: UInt32) throws(HypervisorError) { record("irqfd \(line)") }
    func attachMMIOWriteEventFD(_ eventFD: Int32, address: UInt64, length: UInt32, value: UInt64?) throws(HypervisorError) {
        record("ioeventfd")
    }
    func createVCPU(id: Int) throws(HypervisorError) -> any VirtualCPU {
        record("vCPU \(id)")
        return vcpu
    }
    func captureState() throws(HypervisorError) -> [UInt8] { [] }
    func restoreState(_ state: [UInt8]) throws(HypervisorError) {}
}

struct RecordingHypervisor: Hypervisor {
    let vm: RecordingVM
    func createVirtualMachine() throws(HypervisorError) -> any VirtualMachineHandle { vm }
}

/// The machine over the architecture seam: a whole `Machine.run` on a toy
/// platform and a recording hypervisor, no /dev/kvm and nothing of x86.
@Suite struct PlatformSeamTests {
    func kernelFile(_ bytes: [UInt8]) throws -> String {
        var template = Array("/tmp/skiff-toy-kernel-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        try #require(fd >= 0)
        defer { close(fd) }
        try #require(write(fd, bytes, bytes.count) == bytes.count)
        return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func configuration(kernel: String) -> MachineConfiguration {
        var configuration = MachineConfiguration(kernelPath: kernel, commandLine: "console=toy0")
        configuration.memoryMiB = 16
        configuration.console = .capture
        configuration.entropyDevice = false
        return configuration
    }

    @Test func theMachineBuildsAndRunsAGuestOfAnotherArchitectureThroughThePlatformAlone() throws {
        let path = try kernelFile(Array("TOYK".utf8) + [3])
        defer { unlink(path) }
        let entry = ToyPlatform.ramBase + 0x3000
        let vcpu = ScriptedVCPU([
            .exit(.emulationFailure(instruction: [0xAA, 0x01])), // the platform's to step over
            .mmioWrite(ToyPlatform.markers, [BootMarkerDevice.Phase.initStarted.rawValue]),
            .mmioWrite(ToyPlatform.console, [0x6F]), .mmioWrite(ToyPlatform.console, [0x6B]), // "ok" on ttyS0
            .portRead(0x3F8, size: 1), .portWrite(0x64, [0xFE]), // x86's COM1 and i8042 reset: nobody's here
            .mmioWrite(ToyPlatform.markers, [BootMarkerDevice.Phase.shutdownRequested.rawValue]),
            .exit(.systemEvent(type: 1)),
        ])
        let vm = RecordingVM(vcpu)
        let platform = ToyPlatform()
        var configuration = configuration(kernel: path)
        configuration.hiddenCPUFeatures = ["sparkle"] // the toy's own, announced its way
        let machine = try Machine(configuration, logger: Logger(label: "test"),
                                  hypervisor: { RecordingHypervisor(vm: vm) }, platform: platform)
        let report = try machine.run()

        #expect(report.stopReason == .powerOff, "not the i8042's reset: the toy has none")
        #expect(report.consoleOutput == Array("ok".utf8), "ttyS0 where the platform put it")
        #expect(vcpu.readBack(3) == [0xFF], "no device at x86's COM1")
        #expect(report.unclaimedPortAccesses == 2)
        #expect(report.timeline.first(.initStarted) != nil, "the boot markers where the platform put them")
        #expect(report.kernel?.format == "toy")
        #expect(report.kernel?.entry == entry)
        #expect(report.instructionsSkipped == 1 && report.exceptionsDelivered == 0, "the platform's step counted")
        #expect(vcpu.state.rip == entry + 2, "entered where the platform said, then stepped over 0xAA")
        #expect(platform.calls.withLock { $0 } == [
            "check", "memory 16 MiB", "announce hidden features", "load console=toy0 toy.hidden=sparkle on 1", "prepare VM", "identity 0 of 1",
            "vCPUs [0] showing [\"toy cpu 0/1\"]", "unemulated [170, 1]", "before destroying",
        ])
        // The machine made no x86 call of its own: the platform chose them.
        #expect(vm.calls.withLock { $0 } == ["map 0x40000000", "vCPU 0"])
    }

    /// A snapshot of the toy machine and its restore: the toy's CPU
    /// identity goes into the state file and back as the platform's bytes,
    /// the platform alone compares it with the restoring host's and sets it,
    /// and a host whose toy CPU differs is refused in the platform's words.
    @Test func aGuestOfAnotherArchitectureIsSnapshottedAndRestoredThroughThePlatformAlone() throws {
        let path = try kernelFile(Array("TOYK".utf8) + [3])
        defer { unlink(path) }
        let directory = "/tmp/skiff-toy-snapshot-\(getpid())"
        SnapshotFiles.removeTree(directory)
        defer { SnapshotFiles.removeTree(directory) }
        // The marker's write is completed (KVM_RUN with immediate_exit) before the state is taken.
        let vcpu = ScriptedVCPU([.mmioWrite(ToyPlatform.markers, [BootMarkerDevice.Phase.guestReady.rawValue]), .exit(.interrupted)])
        var configuration = configuration(kernel: path)
        configuration.snapshot = SnapshotRequest(marker: BootMarkerDevice.Phase.guestReady.rawValue, directory: directory,
                                                 thenStop: true, required: true)
        let saved = try Machine(configuration, logger: Logger(label: "test"),
                                hypervisor: { RecordingHypervisor(vm: RecordingVM(vcpu)) }, platform: ToyPlatform()).run()
        #expect(saved.snapshot?.written == true, "\(saved.stopReason) \(String(describing: saved.snapshot))")

        // Elsewhere, the toy platform's architecture reads it; x86_64's does not.
        func failure(_ body: () throws -> Void) -> String {
            do { try body() } catch { return "\(error)" }
            return "no error"
        }
        #expect(failure { _ = try SnapshotFiles.load(directory, on: configuration.host) }
                == "\(MachineError.snapshot(.mismatch("the snapshot's architecture is toy; this machine's is x86_64")))")
        let loaded = try SnapshotFiles.load(directory, on: configuration.host, architecture: "toy")
        #expect(loaded.state.vcpus.map(\.identity) == [CPUIdentity(bytes: Array("toy cpu 0/1".utf8))])

        let resumed = ScriptedVCPU([.mmioWrite(ToyPlatform.console, [0x21]), .exit(.systemEvent(type: 1))], rip: 0)
        let platform = ToyPlatform()
        var restoring = try MachineConfiguration.restoring(loaded)
        restoring.console = .capture
        let restoredVM = RecordingVM(resumed)
        let report = try Machine(restoring, logger: Logger(label: "test"),
                                 hypervisor: { RecordingHypervisor(vm: restoredVM) }, platform: platform).run()
        #expect(report.restored && report.stopReason == .powerOff && report.consoleOutput == Array("!".utf8))
        // Saved at `ready`: the restored guest got its hand-over where the toy keeps the mailbox.
        let mailbox = try #require(restoredVM.mapped).readBytes(at: ToyPlatform.ramBase + 0x10_0000, count: 8)
        #expect(mailbox == Array("SKIFFHO1".utf8))
        #expect(resumed.state.rip == vcpu.state.rip, "the saved vCPU state came back")
        #expect(platform.calls.withLock { $0 }.prefix(3) == ["prepare VM", "identity 0 of 1", "identity set: toy cpu 0/1"],
                "no kernel loaded, the saved identity set")

        let elsewhere = ToyPlatform(cpu: "toy cpu mk2")
        #expect(failure {
            _ = try Machine(restoring, logger: Logger(label: "test"),
                            hypervisor: { RecordingHypervisor(vm: RecordingVM(ScriptedVCPU([]))) }, platform: elsewhere).run()
        } == "\(MachineError.snapshot(.mismatch("this host's CPU differs from the snapshot's (toy identity 'toy cpu 0/1'); take a new snapshot here")))")
        #expect(!elsewhere.calls.withLock { $0 }.contains { $0.hasPrefix("identity set") })
    }

    /// Virtio devices are announced the platform's way: the toy describes
    /// them in its boot structures, so its command line has no
    /// `virtio_mmio.device=` (x86's way), while the `ip=` of a network with
    /// an address is any Linux's.
    @Test func virtioDevicesAreAnnouncedThePlatformsWay() throws {
        let path = try kernelFile(Array("TOYK".utf8) + [1])
        defer { unlink(path) }
        let platform = ToyPlatform()
        var configuration = configuration(kernel: path)
        configuration.entropyDevice = true
        configuration.vsock = VsockConfiguration(guestCID: 3, path: "/tmp/skiff-toy-vsock-\(getpid()).sock")
        defer { unlink("/tmp/skiff-toy-vsock-\(getpid()).sock") }
        let report = try Machine(configuration, logger: Logger(label: "test"),
                                 hypervisor: { RecordingHypervisor(vm: RecordingVM(ScriptedVCPU([.exit(.systemEvent(type: 1))]))) },
                                 platform: platform).run()
        #expect(report.stopReason == .powerOff)
        #expect(platform.calls.withLock { $0 }.prefix(5) == [
            "check", "memory 16 MiB", "load console=toy0 on 1",
            "describe virtio at 0xa000000 irq 40", "describe virtio at 0xa001000 irq 41",
        ])

        let x86 = X86Platform()
        let windows = VirtioDevices.windows(for: configuration, layout: x86.deviceLayout)
        #expect(x86.deviceParameters(windows) == ["virtio_mmio.device=4K@0xd0000000:5", "virtio_mmio.device=4K@0xd0001000:6"])
        configuration.networks = [NetworkConfiguration(tap: "tap0"), try NetworkConfiguration(argument: "tap=tap1,ip=10.0.0.2/24")]
        #expect(VirtioDevices.windows(for: configuration, layout: x86.deviceLayout).map(\.irq) == [5, 6, 7, 8], "networks, entropy, vsock")
        #expect(VirtioDevices.networkParameters(for: configuration) == ["ip=10.0.0.2:::255.255.255.0::eth1:off"])
    }

    @Test func aKernelThePlatformRefusesCostsNoHypervisor() throws {
        let path = try kernelFile(Array("ELF?!".utf8))
        defer { unlink(path) }
        final class Opened: @unchecked Sendable { var value = false }
        let opened = Opened()
        let platform = ToyPlatform()
        let machine = try Machine(configuration(kernel: path), logger: Logger(label: "test"),
                                  hypervisor: { opened.value = true; return RecordingHypervisor(vm: RecordingVM(ScriptedVCPU([]))) },
                                  platform: platform)
        #expect {
            _ = try machine.run()
        } throws: { error in
            guard case let .boot(boot)? = error as? MachineError else { return false }
            return boot.problem == "not a toy kernel" && boot.file == path
        }
        #expect(!opened.value, "no hypervisor opened for a kernel the platform refused")
        #expect(platform.calls.withLock { $0 } == ["check"])
    }

    @Test func anInstructionThePlatformLeavesStopsTheMachineInThePlatformsTerms() throws {
        let path = try kernelFile(Array("TOYK".utf8) + [2])
        defer { unlink(path) }
        let vcpu = ScriptedVCPU([.exit(.emulationFailure(instruction: [0xBB, 0x02]))])
        let machine = try Machine(configuration(kernel: path), logger: Logger(label: "test"),
                                  hypervisor: { RecordingHypervisor(vm: RecordingVM(vcpu)) }, platform: ToyPlatform())
        let report = try machine.run()
        #expect(report.stopReason == .emulationFailure("vCPU 0 at toy pc 0x40002000, instruction bytes: bb 02"))
        #expect(report.instructionsSkipped == 0 && report.exceptionsDelivered == 0)
    }

    @Test func rangesAreThePlatformsOwn() {
        func refusal(_ configuration: MachineConfiguration, _ platform: (any GuestPlatform)?) -> String {
            do { try configuration.validate(for: platform) } catch { return "\(error)" }
            return "accepted"
        }
        var configuration = configuration(kernel: "toy")
        configuration.cpus = 5
        #expect(refusal(configuration, ToyPlatform()).hasSuffix("--cpus 5 is outside 1–4"))
        #expect(refusal(configuration, nil) == "accepted", "x86's MP table takes 32")
        configuration.cpus = 1
        configuration.entropyDevice = true
        configuration.vsock = VsockConfiguration(guestCID: 3, path: "/tmp/v.sock")
        configuration.disks = [DiskConfiguration(path: "/nonexistent/a.img", readOnly: true)]
        #expect(refusal(configuration, ToyPlatform()).hasSuffix("3 virtio devices; at most 2 fit the interrupt controller's lines"))
        #expect(refusal(configuration, nil) == "accepted")
    }

    @Test func x86AsksForTheHypervisorsX86SideAndRefusesOneWithout() throws {
        let platform = X86Platform()
        let vm = RecordingVM(ScriptedVCPU([]))
        #expect(throws: HypervisorError.self, "a VM without PIT or system pages") { try platform.prepare(vm) }
        #expect(vm.calls.withLock { $0 }.isEmpty)
        let vcpu = ScriptedVCPU([], rip: 0x4321)
        #expect(try platform.instructionPointer(of: vcpu) == 0x4321, "a vCPU with x86 registers")
    }

    @Test func x86SteppingOverTrappedInstructionsFollowsTheCompatibilityProfile() throws {
        var configuration = MachineConfiguration(kernelPath: "k", commandLine: "")
        #expect(configuration.platform.architecture == "x86_64")
        configuration.compatibility = .pvm
        configuration.hiddenCPUFeatures = ["rdrand"]
        let identity = try #require(try configuration.platform.cpuIdentity(
            vcpu: 0, of: 1, supported: CPUIdentity(cpuid: [CPUIDEntry(function: 1, ecx: 1 << 30),
                                                            CPUIDEntry(function: 0x4000_0001, eax: 1 << 7 | 1)])).cpuidEntries)
        #expect(identity[0].ecx & (1 << 30) == 0, "RDRAND hidden")
        #expect(identity[1].eax == 1, "the PVM profile's hypercall features hidden, the others kept")
    }

    /// x86's identity is its CPUID table in snapshot format 3's bytes; the
    /// platform alone reads it, refuses bytes that are not a table, and
    /// names the leaf where a saved one differs from this host's.
    @Test func x86sIdentityIsItsCPUIDTable() throws {
        let platform = X86Platform()
        let table = [CPUIDEntry(function: 0, eax: 0xD, ebx: 0x756E_6547), CPUIDEntry(function: 7, index: 1, flags: 1, edx: 0x8000_0001)]
        let identity = CPUIdentity(cpuid: table)
        #expect(identity.bytes.count == 56)
        #expect(Array(identity.bytes[28..<40]) == [7, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0], "function, index, flags: little-endian UInt32s")
        #expect(Array(identity.bytes[52..<56]) == [1, 0, 0, 0x80], "EDX last")
        #expect(identity.cpuidEntries == table)
        #expect(CPUIdentity(bytes: []).cpuidEntries == nil && CPUIdentity(bytes: Array(identity.bytes.dropLast())).cpuidEntries == nil)

        #expect(platform.mismatch(of: identity, here: identity) == nil)
        var changed = table
        changed[1].edx = 1
        #expect(platform.mismatch(of: identity, here: CPUIdentity(cpuid: changed)) == .differs("CPUID leaf 0x7.1"))
        #expect(platform.mismatch(of: identity, here: CPUIdentity(cpuid: table + [CPUIDEntry(function: 0x8000_0000)]))
                == .differs("CPUID leaf 0x80000000.0"), "a leaf only this host has")
        #expect(platform.mismatch(of: identity, here: CPUIdentity(cpuid: table + table)) == .differs("CPUID leaf count"))
        #expect(platform.mismatch(of: CPUIdentity(bytes: Array("toy cpu 0/1".utf8)), here: identity)
                == .malformed("the saved CPU identity (11 bytes) is not an x86 CPUID table of 28-byte entries"))

        let vcpu = ScriptedVCPU([])
        try platform.setIdentity(identity, of: vcpu)
        #expect(vcpu.cpuid == table)
        #expect(throws: HypervisorError.self, "another platform's identity is not set") {
            try platform.setIdentity(CPUIdentity(bytes: [1, 2, 3]), of: vcpu)
        }
        #expect(throws: HypervisorError.self, "a hypervisor without a CPUID table cannot run x86") {
            try platform.supportedIdentity(of: RecordingHypervisor(vm: RecordingVM(vcpu)))
        }
    }
}
