import Memory

/// The seam between the VMM and a hypervisor. The KVM target implements it
/// over /dev/kvm; tests implement it to play the hypervisor (scripted exits,
/// recorded register writes) without /dev/kvm. Everything the machine needs
/// from a hypervisor goes through these three protocols; their x86 sides
/// (`X86Hypervisor`, `X86VirtualMachine`, `X86VirtualCPU`) are for the
/// x86_64 platform.
public protocol Hypervisor: Sendable {
    func createVirtualMachine() throws(HypervisorError) -> any VirtualMachineHandle

    /// This hypervisor's x86 side, if it has one.
    var x86: (any X86Hypervisor)? { get }
}

extension Hypervisor {
    public var x86: (any X86Hypervisor)? { nil }
}

/// What an x86 hypervisor has beyond any; the x86_64 platform asks for it.
public protocol X86Hypervisor: Hypervisor {
    /// The CPUID leaves this hypervisor can present to a guest.
    func supportedCPUID() throws(HypervisorError) -> [CPUIDEntry]
}

extension X86Hypervisor {
    public var x86: (any X86Hypervisor)? { self }
}

/// One VM: memory slots, the interrupt controller and its lines, and the
/// notification plumbing (eventfds) that lets devices skip vCPU exits. What
/// only one architecture has is in a refinement its platform asks for
/// (`X86VirtualMachine`); the machine itself uses only this.
public protocol VirtualMachineHandle: Sendable {
    /// Makes every region of `memory` guest-physical memory.
    func map(_ memory: GuestMemory) throws(HypervisorError)
    /// The in-kernel interrupt controllers (x86: PIC, I/O APIC, PIT) and per-vCPU LAPICs.
    func createInterruptController() throws(HypervisorError)
    func setInterruptLine(_ line: UInt32, high: Bool) throws(HypervisorError)
    /// Raises `line` (edge) whenever `eventFD` is signalled, without the VMM.
    func attachInterruptEventFD(_ eventFD: Int32, line: UInt32) throws(HypervisorError)
    /// Signals `eventFD` when the guest writes `value` (or anything, if nil) to
    /// `length` bytes at `address`, instead of a vCPU exit.
    func attachMMIOWriteEventFD(_ eventFD: Int32, address: UInt64, length: UInt32, value: UInt64?) throws(HypervisorError)
    func createVCPU(id: Int) throws(HypervisorError) -> any VirtualCPU

    /// The VM-wide state a snapshot needs (x86: PIC, I/O APIC, PIT, clock), as
    /// bytes only this hypervisor reads back; vCPUs must be out of `runOnce()`.
    func captureState() throws(HypervisorError) -> [UInt8]
    func restoreState(_ state: [UInt8]) throws(HypervisorError)

    /// This VM's x86 side, if it has one (a property rather than a dynamic
    /// cast, whose first conformance lookup would scan the executable's
    /// conformance records on the start path).
    var x86: (any X86VirtualMachine)? { get }
}

extension VirtualMachineHandle {
    public var x86: (any X86VirtualMachine)? { nil }
}

/// What an x86 VM has beyond any VM; the x86_64 platform asks for it.
public protocol X86VirtualMachine: VirtualMachineHandle {
    /// The pages KVM needs for its real-mode TSS and identity map, outside RAM.
    func setSystemPages() throws(HypervisorError)
    /// The in-kernel PIT stops re-delivering timer ticks the guest
    /// missed. The VMM calls it once the guest has stopped, just before the
    /// VM is destroyed: with reinjection on, destroying the VM removes the
    /// PIT's interrupt-acknowledge and mask notifiers, and waits for a normal
    /// SRCU grace period right after an expedited one, which with the PIT's
    /// I/O devices' own waits took 20–30 ms on the nested host; this call
    /// waits for one grace period (about 13 ms) and the destruction then for
    /// almost nothing (docs/vm-teardown.md has the kernel stacks and figures).
    /// Not while a vCPU runs: the call holds the PIT's lock throughout, and
    /// vCPU 0 takes it whenever it moves to another host CPU.
    func disableTimerReinjection() throws(HypervisorError)
}

/// One virtual CPU. Every method but `kick()` is called from the thread that
/// runs it; `kick()` makes a running or about-to-run `runOnce()` return
/// `.interrupted`, from any thread. Its registers are its architecture's
/// (`X86VirtualCPU`), which only that architecture's platform reads.
public protocol VirtualCPU: AnyObject, Sendable {
    var id: Int { get }
    /// Makes the calling thread the one `kick()` interrupts.
    func bindToCurrentThread()
    func kick()
    /// Runs the guest until it exits to the VMM. Real failures throw.
    func runOnce() throws(HypervisorError) -> VCPUExit
    /// The guest-physical address of guest-virtual `address`, nil if unmapped.
    func translate(_ address: UInt64) throws(HypervisorError) -> UInt64?

    /// Everything of this vCPU a snapshot needs (registers, FPU, MSRs, local
    /// APIC, pending events, run state), as bytes only this hypervisor reads
    /// back. Call it from the vCPU's thread, outside `runOnce()`, and restore
    /// after its identity (x86: `setCPUID`) is set as it was.
    func captureState() throws(HypervisorError) -> [UInt8]
    func restoreState(_ state: [UInt8]) throws(HypervisorError)

    /// This vCPU's x86 side, if it has one.
    var x86: (any X86VirtualCPU)? { get }
}

extension VirtualCPU {
    public var x86: (any X86VirtualCPU)? { nil }
}

/// An x86_64 vCPU's registers and CPU state; the x86_64 platform asks for it.
public protocol X86VirtualCPU: VirtualCPU {
    func registers() throws(HypervisorError) -> Registers
    func setRegisters(_ registers: Registers) throws(HypervisorError)
    func specialRegisters() throws(HypervisorError) -> SpecialRegisters
    func setSpecialRegisters(_ registers: SpecialRegisters) throws(HypervisorError)
    func setCPUID(_ entries: [CPUIDEntry]) throws(HypervisorError)
    /// Returns how many of `msrs` were set.
    @discardableResult func setMSRs(_ msrs: [(index: UInt32, value: UInt64)]) throws(HypervisorError) -> Int
    func setFPU(_ state: FPUState) throws(HypervisorError)
    /// Edits the local APIC's register page (1 KiB, as the hardware lays it out).
    func updateLocalAPIC(_ edit: (inout [UInt8]) -> Void) throws(HypervisorError)
    /// Delivers exception `vector` to the guest before it next runs.
    func injectException(_ vector: UInt8) throws(HypervisorError)
}

extension X86VirtualMachine {
    public var x86: (any X86VirtualMachine)? { self }
}

extension X86VirtualCPU {
    public var x86: (any X86VirtualCPU)? { self }
}
