import Hypervisor
import Memory

/// A guest architecture, as the machine sees it: how guest RAM is laid out,
/// how a kernel is checked and loaded, what a VM needs before its vCPUs, how
/// the vCPUs are set up for the kernel's entry, what to do with an
/// instruction the hypervisor could not run, and what to do before the VM is
/// destroyed. SkiffKit's `Machine` takes these steps only through this
/// protocol, so a second architecture is a target beside X86_64 (and one
/// line where the machine picks its platform), not a change to the machine.
///
/// The machine itself reads no register: where a vCPU is comes from the
/// platform (`instructionPointer`, `registerSummary`), and a vCPU's snapshot
/// state is the hypervisor's bytes; registers are on the hypervisor's x86
/// side (`X86VirtualCPU`, `X86VirtualMachine`), which only X86_64 asks for,
/// as an aarch64 platform would ask for an aarch64 side. A vCPU's CPU
/// identity is the platform's bytes (`CPUIdentity`): the machine and the
/// snapshot format carry it without reading it. Where devices and the
/// hand-over mailbox sit is the platform's `deviceLayout`, and how the guest
/// learns of the virtio devices its `deviceParameters` (x86's command line)
/// or its boot structures (a device tree, from `KernelImages.virtioDevices`).
public protocol GuestPlatform: Sendable {
    /// The architecture as Linux names it ("x86_64").
    var architecture: String { get }
    /// The most vCPUs its boot structures describe (x86: the MP table's).
    var maximumCPUs: Int { get }
    /// CPU features a machine can hide from its guest (`--hide-cpu-feature`).
    var hideableCPUFeatures: [String] { get }

    /// Kernel parameters the host's workarounds need (x86 on a PVM host:
    /// `X86Workarounds.pvm`); every command line Skiff composes carries them,
    /// before what the user appends (which can override them).
    var workaroundParameters: [String] { get }

    /// The kernel's parameters (the command line before init's arguments)
    /// with the CPU features the machine hides announced the way this
    /// architecture's kernel reads them (x86: `clearcpuid=`). Throws what the
    /// kernel could not take, as a `BootError` of `BootError.commandLineFile`.
    func announcingHiddenFeatures(in parameters: [String]) throws(BootError) -> [String]

    /// Where the machine's devices sit.
    var deviceLayout: DeviceLayout { get }

    /// The kernel parameters that tell the guest where its virtio-mmio
    /// devices are (`virtio`, in `deviceLayout`'s windows), if this
    /// architecture's kernel learns them from its command line (x86: a
    /// `virtio_mmio.device=` each: a PC has no firmware table for them).
    /// A platform that describes them in a device tree instead returns none
    /// and builds the tree in `loadKernel` from `KernelImages.virtioDevices`.
    func deviceParameters(_ virtio: [DeviceLayout.Slot]) -> [String]

    /// The device through which the guest resets the machine, if the
    /// platform has one (x86: the i8042's reset line), placed; `onReset`
    /// stops the machine.
    func resetController(onReset: @escaping @Sendable () -> Void) -> PlacedDevice?

    /// Guest RAM of `size` bytes, laid out around the platform's holes.
    func makeMemory(size: Int) throws -> GuestMemory

    /// Refuses what is not a kernel this platform boots, from its headers
    /// alone: called before any hypervisor work, so that a bad file costs no VM.
    func checkKernel(_ kernel: [UInt8], file: String) throws(BootError)

    /// Puts the kernel, initrd, command line and boot structures into `memory`.
    /// A command line too long for the kernel is a `BootError` whose file is
    /// `BootError.commandLineFile`.
    func loadKernel(_ images: KernelImages, into memory: GuestMemory) throws(BootError) -> LoadedKernel

    /// What every VM of this platform needs before its vCPUs exist (x86:
    /// KVM's system pages, the in-kernel interrupt controllers and timer).
    func prepare(_ vm: any VirtualMachineHandle) throws(HypervisorError)

    /// What `hypervisor` can show a guest of this host's CPU (x86: KVM's
    /// supported CPUID table), from which `cpuIdentity` makes each vCPU's.
    /// Asked once per machine, on another thread while the machine is built
    /// (it can be slow: KVM builds the table on every call).
    func supportedIdentity(of hypervisor: any Hypervisor) throws(HypervisorError) -> CPUIdentity

    /// What vCPU `id` of `count` shows the guest of its CPU (x86: the CPUID
    /// table with its APIC id, less the hidden features), from what the
    /// hypervisor supports (`supportedIdentity`). A snapshot records it, and
    /// a restore compares it with this host's (`mismatch`).
    func cpuIdentity(vcpu id: Int, of count: Int, supported: CPUIdentity) throws(HypervisorError) -> CPUIdentity

    /// Gives `vcpu` an identity `cpuIdentity` made (x86: KVM_SET_CPUID2).
    /// A restore sets the saved one before the vCPU's saved state.
    func setIdentity(_ identity: CPUIdentity, of vcpu: any VirtualCPU) throws(HypervisorError)

    /// Why a snapshot's saved identity cannot be restored where this host
    /// gives `here`; nil when it can (they are the same).
    func mismatch(of saved: CPUIdentity, here: CPUIdentity) -> IdentityMismatch?

    /// Where `vcpu` is in the guest's code (x86: RIP), a guest-virtual address.
    func instructionPointer(of vcpu: any VirtualCPU) throws(HypervisorError) -> UInt64

    /// The few registers that say where a stopped or failed vCPU was (x86:
    /// RIP, CS, CR0), for messages; empty if they cannot be read.
    func registerSummary(of vcpu: any VirtualCPU) -> String

    /// An instruction the hypervisor could not emulate at `vcpu`'s current
    /// instruction pointer (`bytes`: as many of its bytes as are known). The
    /// platform may step over it, as the CPU would have run it, and say so;
    /// anything it leaves `.unhandled` stops the machine with the bytes.
    func handleUnemulated(_ bytes: [UInt8], on vcpu: any VirtualCPU) throws(HypervisorError) -> UnemulatedInstruction

    /// Called once no vCPU runs, just before the VM is destroyed (x86: the
    /// PIT's reinjection off, docs/vm-teardown.md). Failing costs time only.
    func beforeDestroying(_ vm: any VirtualMachineHandle) throws(HypervisorError)
}

/// What a platform loads into a new machine: a kernel (its format told
/// apart by content), an optional initrd, a command line, a CPU count and
/// where the virtio devices are.
public struct KernelImages: Sendable {
    public var kernel: [UInt8]
    public var kernelPath: String
    public var initrd: [UInt8]?
    public var initrdPath: String
    public var commandLine: String
    /// How many vCPUs the boot structures describe.
    public var cpuCount: Int
    /// The machine's virtio-mmio devices, for a platform whose boot
    /// structures describe them (a device tree); x86 announces them on the
    /// command line instead (`GuestPlatform.deviceParameters`).
    public var virtioDevices: [DeviceLayout.Slot]
    /// A port and code a stub before the kernel's entry writes, so that the
    /// VMM times the guest's first instruction; nil enters the kernel directly.
    public var firstInstructionMarker: (port: UInt16, value: UInt8)?

    public init(kernel: [UInt8], kernelPath: String, initrd: [UInt8]? = nil, initrdPath: String = "", commandLine: String,
                cpuCount: Int = 1, virtioDevices: [DeviceLayout.Slot] = [], firstInstructionMarker: (port: UInt16, value: UInt8)? = nil) {
        self.kernel = kernel; self.kernelPath = kernelPath; self.initrd = initrd; self.initrdPath = initrdPath
        self.commandLine = commandLine; self.cpuCount = cpuCount; self.virtioDevices = virtioDevices
        self.firstInstructionMarker = firstInstructionMarker
    }
}

/// A kernel in guest memory, ready for its vCPUs.
public struct LoadedKernel: Sendable {
    /// The kernel's format as loaded ("vmlinux (ELF)", "bzImage").
    public let format: String
    /// Its entry point (guest physical).
    public let entry: UInt64
    /// Sets the vCPUs up for this kernel's entry, each showing the guest
    /// `identities[id]` (`GuestPlatform.cpuIdentity`). The platform's boot
    /// state stays inside: the machine never reads it.
    public let prepareVCPUs: @Sendable (_ vcpus: [any VirtualCPU], _ identities: [CPUIdentity]) throws(HypervisorError) -> Void

    public init(format: String, entry: UInt64,
                prepareVCPUs: @escaping @Sendable ([any VirtualCPU], [CPUIdentity]) throws(HypervisorError) -> Void) {
        self.format = format; self.entry = entry; self.prepareVCPUs = prepareVCPUs
    }
}

/// What a platform did with an instruction the hypervisor could not emulate.
public enum UnemulatedInstruction: Sendable, Equatable {
    /// Stepped over, and exception `vector` delivered to the guest, as the
    /// CPU would have (x86: INT3 → #BP).
    case deliveredException(vector: UInt8)
    /// Stepped over: it has no effect the guest could see here (x86: FWAIT).
    case skipped
    /// Not the platform's to handle: the machine stops.
    case unhandled
}

/// Why a saved CPU identity cannot be restored here (`GuestPlatform.mismatch`).
public enum IdentityMismatch: Sendable, Equatable {
    /// Not an identity of this platform's encoding: the file is damaged or
    /// of another architecture.
    case malformed(String)
    /// A well-formed identity, not the one this host gives: where they
    /// first differ (x86: "CPUID leaf 0x7.0").
    case differs(String)
}
