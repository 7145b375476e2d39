import Devices
import Hypervisor
import Memory
import Synchronization
import Testing
@testable import SkiffKit

/// Plays the hypervisor's vCPU: hands the VMM scripted exits, one per
/// `runOnce()`, and records what the VMM did to it. No /dev/kvm involved.
final class ScriptedVCPU: X86VirtualCPU, @unchecked Sendable {
    enum Step {
        case portWrite(UInt16, [UInt8])
        case portRead(UInt16, size: Int)
        case mmioWrite(UInt64, [UInt8])
        case mmioRead(UInt64, size: Int)
        case exit(VCPUExit)
    }

    let id = 0
    private var steps: [Step]
    /// Buffers handed out in exits; the VMM fills the ones for reads.
    private(set) var buffers: [UnsafeMutableRawBufferPointer] = []
    private(set) var injected: [UInt8] = []
    var state = Registers()
    private(set) var cpuid: [CPUIDEntry] = []
    private(set) var runs = 0

    init(_ steps: [Step], rip: UInt64 = 0x1000) {
        self.steps = steps
        state.rip = rip
    }

    deinit { for buffer in buffers { buffer.deallocate() } }

    /// What the VMM wrote into the buffer of the `index`th read exit.
    func readBack(_ index: Int) -> [UInt8] { Array(buffers[index]) }

    func bindToCurrentThread() {}
    func kick() {}

    func runOnce() throws(HypervisorError) -> VCPUExit {
        runs += 1
        guard !steps.isEmpty else { throw HypervisorError("KVM_RUN past the end of the script", errno: 22) }
        func buffer(_ bytes: [UInt8]) -> UnsafeMutableRawBufferPointer {
            let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 8)
            memory.copyBytes(from: bytes)
            buffers.append(memory)
            return UnsafeMutableRawBufferPointer(rebasing: memory[0..<bytes.count])
        }
        switch steps.removeFirst() {
        case let .portWrite(port, bytes):
            return .portIO(PortAccess(port: port, size: bytes.count, count: 1, isWrite: true, data: buffer(bytes)))
        case let .portRead(port, size):
            return .portIO(PortAccess(port: port, size: size, count: 1, isWrite: false, data: buffer([UInt8](repeating: 0xEE, count: size))))
        case let .mmioWrite(address, bytes):
            return .mmio(MMIOAccess(address: address, isWrite: true, data: buffer(bytes)))
        case let .mmioRead(address, size):
            return .mmio(MMIOAccess(address: address, isWrite: false, data: buffer([UInt8](repeating: 0xEE, count: size))))
        case let .exit(exit):
            return exit
        }
    }

    func registers() throws(HypervisorError) -> Registers { state }
    func setRegisters(_ registers: Registers) throws(HypervisorError) { state = registers }
    func specialRegisters() throws(HypervisorError) -> SpecialRegisters { SpecialRegisters() }
    func setSpecialRegisters(_ registers: SpecialRegisters) throws(HypervisorError) {}
    func setCPUID(_ entries: [CPUIDEntry]) throws(HypervisorError) { cpuid = entries }
    func setMSRs(_ msrs: [(index: UInt32, value: UInt64)]) throws(HypervisorError) -> Int { msrs.count }
    func setFPU(_ state: FPUState) throws(HypervisorError) {}
    func updateLocalAPIC(_ edit: (inout [UInt8]) -> Void) throws(HypervisorError) {}
    func injectException(_ vector: UInt8) throws(HypervisorError) { injected.append(vector) }
    func translate(_ address: UInt64) throws(HypervisorError) -> UInt64? { address }
    /// The scripted vCPU's whole state is its instruction pointer.
    func captureState() throws(HypervisorError) -> [UInt8] { withUnsafeBytes(of: state.rip.littleEndian, Array.init) }
    func restoreState(_ bytes: [UInt8]) throws(HypervisorError) {
        guard bytes.count == 8 else { throw HypervisorError("restore scripted vCPU", errno: 22) }
        state.rip = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
    }
}

/// A device that answers reads with its offset and records writes.
final class EchoDevice: BusDevice {
    let writes = Mutex<[(UInt64, [UInt8])]>([])
    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        for index in data.indices { data[index] = UInt8(truncatingIfNeeded: offset) &+ UInt8(index) }
    }
    func write(offset: UInt64, from data: UnsafeRawBufferPointer) { writes.withLock { $0.append((offset, Array(data))) } }
}

/// The vCPU loop's exit dispatch and the stop policy, driven through the
/// hypervisor seam by a scripted vCPU.
@Suite struct ExitDispatchTests {
    struct Run {
        let reason: StopReason?
        let vcpu: ScriptedVCPU
        let device: EchoDevice
    }

    /// Runs `steps` through `VCPURunner` with an echo device at ports 0x70..0x7f
    /// and MMIO 0xd000_0000, the i8042 and the machine's boot-marker port.
    func run(_ steps: [ScriptedVCPU.Step], profile: CompatibilityProfile = .none, memory: [UInt8] = []) throws -> Run {
        var configuration = MachineConfiguration(kernelPath: "scripted", commandLine: "")
        configuration.compatibility = profile
        let machine = try Machine(configuration, logger: Logger(label: "test"))
        let vcpu = ScriptedVCPU(steps)
        let device = EchoDevice()
        var ports = IOBus.Builder()
        try ports.attach(device, at: 0x70, length: 0x10)
        try ports.attach(I8042 { machine.guestStopped(.reset) }, at: I8042.basePort, length: I8042.length)
        try ports.attach(machine.markers, at: BootMarkerDevice.port, length: BootMarkerDevice.length)
        var mmio = IOBus.Builder()
        try mmio.attach(device, at: 0xD000_0000, length: 0x1000)
        let guestMemory = try GuestMemory(layout: [(0, 1 << 16)])
        try guestMemory.write(bytes: memory, at: 0x1000)
        machine.adopt([vcpu])
        VCPURunner(vcpu: vcpu, memory: guestMemory, ports: IOBus(name: "port", ports),
                   mmio: IOBus(name: "mmio", mmio), machine: machine).run()
        return Run(reason: machine.stopReason, vcpu: vcpu, device: device)
    }

    @Test func portAndMMIOAccessesReachTheirDevicesAndReadsAreAnswered() throws {
        let result = try run([
            .portWrite(0x71, [0xAB]), .portRead(0x73, size: 2),
            .mmioWrite(0xD000_0010, [1, 2, 3, 4]), .mmioRead(0xD000_0008, size: 4),
            .portRead(0x1234, size: 1), // nobody's port: all ones
            .exit(.interrupted), .exit(.shutdown),
        ])
        let writes = result.device.writes.withLock { $0 }
        #expect(writes.map(\.0) == [1, 0x10])
        #expect(writes.map(\.1) == [[0xAB], [1, 2, 3, 4]])
        #expect(result.vcpu.readBack(1) == [3, 4])
        #expect(result.vcpu.readBack(3) == [8, 9, 10, 11])
        #expect(result.vcpu.readBack(4) == [0xFF])
        #expect(result.vcpu.runs == 7, "an interrupted run is retried, the shutdown ends the loop")
        #expect(result.reason == .tripleFault, "a triple fault before any boot marker")
    }

    @Test func aResetAfterInitStartedWithoutItsGoodbyeIsACrash() throws {
        let initStarted = ScriptedVCPU.Step.portWrite(UInt16(BootMarkerDevice.port), [BootMarkerDevice.Phase.initStarted.rawValue])
        let goodbye = ScriptedVCPU.Step.portWrite(UInt16(BootMarkerDevice.port), [BootMarkerDevice.Phase.shutdownRequested.rawValue])
        let keyboardReset = ScriptedVCPU.Step.portWrite(UInt16(I8042.basePort) + 4, [0xFE])
        // Every way down gets the same check.
        for ending in [keyboardReset, .exit(.shutdown), .exit(.systemEvent(type: 2)), .exit(.systemEvent(type: 1))] {
            #expect(try run([initStarted, ending]).reason == .guestCrashed, "\(ending)")
        }
        #expect(try run([initStarted, goodbye, keyboardReset]).reason == .reset)
        #expect(try run([initStarted, goodbye, .exit(.shutdown)]).reason == .reset)
        #expect(try run([initStarted, goodbye, .exit(.systemEvent(type: 1))]).reason == .powerOff)
        #expect(try run([.exit(.systemEvent(type: 5))]).reason == .guestCrashed, "KVM_SYSTEM_EVENT_CRASH")
        #expect(try run([keyboardReset]).reason == .reset, "a foreign init's reset is clean")
    }

    @Test func int3IsDeliveredAsABreakpointOnlyUnderThePVMProfile() throws {
        let pvm = try run([.exit(.emulationFailure(instruction: [0xCC])), .exit(.emulationFailure(instruction: [0x9B])),
                           .exit(.halt)], profile: .pvm)
        #expect(pvm.vcpu.injected == [3])
        #expect(pvm.vcpu.state.rip == 0x1002, "INT3 and FWAIT each stepped over")
        #expect(pvm.reason == .powerOff)

        let plain = try run([.exit(.emulationFailure(instruction: [0xCC]))])
        #expect(plain.vcpu.injected.isEmpty)
        guard case let .emulationFailure(detail)? = plain.reason else { Issue.record("\(String(describing: plain.reason))"); return }
        #expect(detail.contains("RIP 0x1000") && detail.contains("cc"))
    }

    @Test func withoutReportedBytesTheInstructionIsReadThroughTheGuestsPageTables() throws {
        let result = try run([.exit(.emulationFailure(instruction: []))], memory: [0xF3, 0x0F, 0xB8, 0xC3])
        guard case let .emulationFailure(detail)? = result.reason else { Issue.record("\(String(describing: result.reason))"); return }
        #expect(detail.contains("f3 0f b8 c3"), "\(detail)")
    }

    @Test func hypervisorFailuresStopTheMachineWithTheirReason() throws {
        for (exit, message) in [(VCPUExit.failedEntry(reason: 0x21), "vCPU 0: VM entry failed, hardware reason 0x21 (RIP 0x1000"),
                                (.internalError(suberror: 3), "vCPU 0: KVM internal error, suberror 3 (RIP 0x1000"),
                                (.unhandled(reason: 99), "vCPU 0: unexpected KVM exit reason 99 (RIP 0x1000")] {
            guard case let .vmmError(detail)? = try run([.exit(exit)]).reason else { Issue.record("\(exit)"); continue }
            #expect(detail.hasPrefix(message), "\(detail)")
        }
        let broken = try run([]) // runOnce throws
        guard case let .vmmError(detail)? = broken.reason else { Issue.record("\(String(describing: broken.reason))"); return }
        #expect(detail.contains("past the end of the script"))
    }
}

@Suite struct StopPolicyTests {
    @Test func aPanicLineOnTheConsoleWinsWhateverTheWayDown() {
        let panicked = GuestTestimony(initStarted: true, shutdownRequested: true, kernelPanicked: true, anyGuestMarker: true)
        for stop in [GuestStop.reset, .tripleFault, .systemEvent(2), .halted] {
            #expect(StopPolicy.reason(for: stop, given: panicked) == .kernelPanic)
        }
        #expect(StopReason.kernelPanic.exitStatus == 1)
    }

    @Test func aTripleFaultIsAWarningBeforeAnyMarkerAndAResetAfterAGoodbye() {
        #expect(StopPolicy.reason(for: .tripleFault, given: GuestTestimony()) == .tripleFault)
        #expect(StopReason.tripleFault.exitStatus == 0, "tiny guests reset on purpose")
        let clean = GuestTestimony(initStarted: true, shutdownRequested: true, anyGuestMarker: true)
        #expect(StopPolicy.reason(for: .tripleFault, given: clean) == .reset)
    }

    @Test func theDetectorFindsThePanicLineAcrossPartialMatches() {
        let detector = KernelPanicDetector()
        for byte in Array("[ 1.0] Kernel oops\nKernel Kernel panic - not syncing: VFS: Unable to mount root".utf8) {
            detector.feed(byte)
        }
        #expect(detector.panicked)
        let quiet = KernelPanicDetector()
        for byte in Array("Kernel panic - not syncin".utf8) { quiet.feed(byte) }
        #expect(!quiet.panicked)
    }
}
