import Devices
import Glibc
import Hypervisor
import Memory
import Platform

/// x86_64 as the machine's platform: RAM around the 32-bit MMIO hole, a
/// vmlinux or bzImage entered at its 64-bit entry (`X86Boot`), KVM's system
/// pages and in-kernel PIC, I/O APIC and PIT, CPUID per vCPU and the long-mode
/// entry state (`X86CPUSetup`), and the PVM host's workarounds where they are
/// asked for (`shared/docs/kvm-on-this-host.md`).
public struct X86Platform: GuestPlatform {
    /// The host's workarounds (PVM's, or none).
    public var workarounds: X86Workarounds
    /// `--hide-cpu-feature` names (`X86CPUSetup.hideableFeatures`).
    public var hiddenFeatures: [String]

    public static let int3: UInt8 = 0xCC
    public static let fwait: UInt8 = 0x9B
    public static let breakpointVector: UInt8 = 3
    /// Linux's buffer for the `clearcpuid=` value (arch/x86/kernel/cpu/common.c).
    public static let clearCPUIDLimit = 127

    public init(workarounds: X86Workarounds = .none, hiddenFeatures: [String] = []) {
        self.workarounds = workarounds
        self.hiddenFeatures = hiddenFeatures
    }

    public var architecture: String { "x86_64" }
    public var maximumCPUs: Int { MPTable.maximumCPUs }
    public var hideableCPUFeatures: [String] { Self.hideable }
    private static let hideable = X86CPUSetup.hideableFeatures.map(\.name)

    /// The serial lines at the PC's COM1, COM2 and COM3 ports (ttyS0, ttyS1,
    /// ttyS2, which Linux probes there), COM1 and COM3 sharing IRQ 4; the
    /// boot markers at port 0x440; virtio-mmio windows from 0xD000_0000,
    /// inside the MMIO hole below 4 GiB, on I/O APIC pins 5 to 23 (the last);
    /// the hand-over mailbox in the reserved BIOS area.
    public var deviceLayout: DeviceLayout { Self.pcLayout }
    private static let pcLayout = DeviceLayout(
        serialLines: [DeviceLayout.Slot(bus: .port, address: 0x3F8, irq: 4),
                      DeviceLayout.Slot(bus: .port, address: 0x2F8, irq: 3),
                      DeviceLayout.Slot(bus: .port, address: 0x3E8, irq: 4)],
        bootMarkers: DeviceLayout.Slot(bus: .port, address: BootMarkerDevice.port),
        virtioBase: 0xD000_0000, virtioIRQs: 5...23, handoverMailbox: X86Layout.handoverMailbox)

    /// The i8042, whose command 0xFE pulses the CPU's reset line: Linux's
    /// default way to reboot a PC, and the tiny guests' way out.
    public func resetController(onReset: @escaping @Sendable () -> Void) -> PlacedDevice? {
        PlacedDevice(I8042(onReset: onReset), at: DeviceLayout.Slot(bus: .port, address: I8042.basePort), length: I8042.length)
    }

    public var workaroundParameters: [String] { workarounds.kernelParameters }

    /// Linux finds a PC's virtio-mmio devices only on its command line
    /// (CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES), one parameter each.
    public func deviceParameters(_ virtio: [DeviceLayout.Slot]) -> [String] {
        virtio.map { VirtioMMIOTransport.kernelParameter(base: $0.address, irq: $0.irq ?? 0) }
    }

    /// The hidden features go into the line's `clearcpuid=` list (one
    /// parameter: Linux reads only the last), or a new one. On a PVM host the
    /// guest kernel's CPUID instruction does not go through the VMM's CPUID
    /// table, so the kernel must be told; on hardware KVM it repeats what
    /// CPUID says. A list Linux would cut short is refused.
    public func announcingHiddenFeatures(in parameters: [String]) throws(BootError) -> [String] {
        guard !hiddenFeatures.isEmpty else { return parameters }
        var words = parameters
        let added = hiddenFeatures.joined(separator: ",")
        if let index = words.lastIndex(where: { $0.hasPrefix("clearcpuid=") }) {
            words[index] += "," + added
        } else {
            words.append("clearcpuid=" + added)
        }
        if let clear = words.last(where: { $0.hasPrefix("clearcpuid=") }), clear.utf8.count - 11 > Self.clearCPUIDLimit {
            throw BootError(file: BootError.commandLineFile,
                            "clearcpuid= would be \(clear.utf8.count - 11) bytes; Linux reads \(Self.clearCPUIDLimit) (hide fewer CPU features)")
        }
        return words
    }

    public func makeMemory(size: Int) throws -> GuestMemory { try GuestMemory.x86(size: size) }

    public func checkKernel(_ kernel: [UInt8], file: String) throws(BootError) {
        try X86Boot.checkKernel(kernel, file: file)
    }

    public func loadKernel(_ images: KernelImages, into memory: GuestMemory) throws(BootError) -> LoadedKernel {
        let state = try X86Boot.load(images, into: memory)
        return LoadedKernel(format: state.format.rawValue, entry: state.kernelEntry) { vcpus, identities throws(HypervisorError) in
            let x86 = try vcpus.map { vcpu throws(HypervisorError) in try Self.x86(vcpu) }
            for vcpu in x86 { try X86CPUSetup.configure(vcpu, cpuid: try Self.cpuid(identities[vcpu.id])) }
            if let bootstrap = x86.first { try X86CPUSetup.enterLongMode(bootstrap, state) }
        }
    }

    public func prepare(_ vm: any VirtualMachineHandle) throws(HypervisorError) {
        try Self.x86(vm).setSystemPages()
        try vm.createInterruptController()
    }

    public func supportedIdentity(of hypervisor: any Hypervisor) throws(HypervisorError) -> CPUIdentity {
        guard let x86 = hypervisor.x86 else { throw HypervisorError("an x86_64 hypervisor (this one has no CPUID table)", errno: EINVAL) }
        return CPUIdentity(cpuid: try x86.supportedCPUID())
    }

    public func cpuIdentity(vcpu id: Int, of count: Int, supported: CPUIdentity) throws(HypervisorError) -> CPUIdentity {
        CPUIdentity(cpuid: X86CPUSetup.cpuid(try Self.cpuid(supported), vcpu: id, of: count,
                                             hiddenKVMFeatures: workarounds.hiddenKVMFeatures, hiddenFeatures: hiddenFeatures))
    }

    public func setIdentity(_ identity: CPUIdentity, of vcpu: any VirtualCPU) throws(HypervisorError) {
        try Self.x86(vcpu).setCPUID(try Self.cpuid(identity))
    }

    /// Compared leaf by leaf, to say which differs: the first of the saved
    /// table's entries this host would not give, else the first of this
    /// host's the snapshot lacks.
    public func mismatch(of saved: CPUIdentity, here: CPUIdentity) -> IdentityMismatch? {
        guard saved != here else { return nil }
        guard let savedEntries = saved.cpuidEntries else {
            return .malformed("the saved CPU identity (\(saved.bytes.count) bytes) is not an x86 CPUID table of \(CPUIdentity.cpuidEntrySize)-byte entries")
        }
        let hereEntries = here.cpuidEntries ?? []
        let differing = savedEntries.first { !hereEntries.contains($0) } ?? hereEntries.first { !savedEntries.contains($0) }
        return .differs(differing.map { "CPUID leaf 0x\(String($0.function, radix: 16)).\($0.index)" } ?? "CPUID leaf count")
    }

    public func instructionPointer(of vcpu: any VirtualCPU) throws(HypervisorError) -> UInt64 {
        try Self.x86(vcpu).registers().rip
    }

    public func registerSummary(of vcpu: any VirtualCPU) -> String {
        guard let vcpu = try? Self.x86(vcpu), let registers = try? vcpu.registers(), let special = try? vcpu.specialRegisters() else { return "" }
        return "RIP 0x\(String(registers.rip, radix: 16)), CS 0x\(String(special.cs.selector, radix: 16)), CR0 0x\(String(special.cr0, radix: 16))"
    }

    public func handleUnemulated(_ bytes: [UInt8], on vcpu: any VirtualCPU) throws(HypervisorError) -> UnemulatedInstruction {
        guard workarounds.stepsOverTrappedInstructions, let first = bytes.first, first == Self.int3 || first == Self.fwait else {
            return .unhandled
        }
        // Both are one byte long. FWAIT only checks for pending x87
        // exceptions, which the guest never has here.
        let vcpu = try Self.x86(vcpu)
        var registers = try vcpu.registers()
        registers.rip &+= 1
        try vcpu.setRegisters(registers)
        guard first == Self.int3 else { return .skipped }
        try vcpu.injectException(Self.breakpointVector)
        return .deliveredException(vector: Self.breakpointVector)
    }

    public func beforeDestroying(_ vm: any VirtualMachineHandle) throws(HypervisorError) {
        try Self.x86(vm).disableTimerReinjection()
    }

    /// The x86 side of a hypervisor's vCPU; a hypervisor without one cannot
    /// run this platform (EINVAL, as KVM answers an ioctl of another
    /// architecture).
    static func x86(_ vcpu: any VirtualCPU) throws(HypervisorError) -> any X86VirtualCPU {
        guard let x86 = vcpu.x86 else { throw HypervisorError("an x86_64 vCPU (this hypervisor's has no x86 registers)", errno: EINVAL) }
        return x86
    }

    /// An identity's CPUID table; another platform's (or damaged) bytes are
    /// refused as KVM refuses a malformed table.
    static func cpuid(_ identity: CPUIdentity) throws(HypervisorError) -> [CPUIDEntry] {
        guard let entries = identity.cpuidEntries else {
            throw HypervisorError("an x86 CPUID table (\(identity.bytes.count) bytes are not whole \(CPUIdentity.cpuidEntrySize)-byte entries)", errno: EINVAL)
        }
        return entries
    }

    static func x86(_ vm: any VirtualMachineHandle) throws(HypervisorError) -> any X86VirtualMachine {
        guard let x86 = vm.x86 else { throw HypervisorError("an x86_64 VM (this hypervisor's has no PIT or system pages)", errno: EINVAL) }
        return x86
    }
}
