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

    private func record(_ call: String) { calls.withLock { $0.append(call) } }

    var architecture: String { "toy" }
    var maximumCPUs: Int { 4 }
    var hideableCPUFeatures: [String] { ["sparkle"] }
    var deviceLayout: DeviceLayout {
        DeviceLayout(serialLines: [DeviceLayout.Slot(bus: .mmio, address: Self.console, irq: 33),
                                   DeviceLayout.Slot(bus: .mmio, address: Self.console + 0x1000, irq: 34),
                                   DeviceLayout.Slot(bus: .mmio, address: Self.console + 0x2000, irq: 34)],
                     bootMarkers: DeviceLayout.Slot(bus: .mmio, address: Self.markers),
                     virtioBase: 0x0A00_0000, virtioIRQs: 40...41)
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

    func loadKernel(_ images: KernelImages, into memory: GuestMemory) throws(BootError) -> LoadedKernel {
        record("load \(images.commandLine) on \(images.cpuCount)")
        let entry = Self.ramBase + UInt64(images.kernel[4]) * 0x1000
        do { try memory.write(bytes: images.kernel, at: entry) } catch { throw BootError(file: images.kernelPath, "\(error)") }
        return LoadedKernel(format: "toy", entry: entry) { [self] vcpus, identities throws(HypervisorError) in
            record("vCPUs \(vcpus.map(\.id)) with \(identities.map(\.count)) identity entries")
            try Self.toy(vcpus[0]).pc = entry
        }
    }

    func prepare(_ vm: any VirtualMachineHandle) throws(HypervisorError) { record("prepare VM") }

    func cpuIdentity(vcpu id: Int, of count: Int, supported: [CPUIDEntry]) -> [CPUIDEntry] {
        record("identity \(id) of \(count)")
        return [CPUIDEntry(function: 0x7A, index: UInt32(id), eax: UInt32(count))]
    }

    func setIdentity(_ identity: [CPUIDEntry], of vcpu: any VirtualCPU) throws(HypervisorError) { record("identity set") }
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

    func map(_ memory: GuestMemory) throws(HypervisorError) {
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
    func supportedCPUID() throws(HypervisorError) -> [CPUIDEntry] { [] }
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
            "vCPUs [0] with [1] identity entries", "unemulated [170, 1]", "before destroying",
        ])
        // The machine made no x86 call of its own: the platform chose them.
        #expect(vm.calls.withLock { $0 } == ["map 0x40000000", "vCPU 0"])
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

    @Test func x86SteppingOverTrappedInstructionsFollowsTheCompatibilityProfile() {
        var configuration = MachineConfiguration(kernelPath: "k", commandLine: "")
        #expect(configuration.platform.architecture == "x86_64")
        configuration.compatibility = .pvm
        configuration.hiddenCPUFeatures = ["rdrand"]
        let identity = configuration.platform.cpuIdentity(
            vcpu: 0, of: 1, supported: [CPUIDEntry(function: 1, ecx: 1 << 30),
                                        CPUIDEntry(function: 0x4000_0001, eax: 1 << 7 | 1)])
        #expect(identity[0].ecx & (1 << 30) == 0, "RDRAND hidden")
        #expect(identity[1].eax == 1, "the PVM profile's hypercall features hidden, the others kept")
    }
}
