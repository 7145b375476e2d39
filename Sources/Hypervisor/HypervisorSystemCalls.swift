/// The system calls a hypervisor's methods make, by the kind of work a VMM
/// thread does with it, so that each thread's seccomp list (SkiffKit's
/// `VMMSeccompPolicy`) admits those and no other request of the
/// hypervisor's. Which requests a call takes is the hypervisor's (and its
/// architecture's) to know; which work each thread does is the VMM's. ioctl
/// requests are given as seccomp compares them: their low 32 bits.
public struct HypervisorSystemCalls: Sendable, Equatable {
    /// A vCPU's thread: running it, what its platform does at an exit (x86:
    /// registers for INT3/FWAIT), the pause's state capture, translation.
    public var vcpuRequests: [UInt32]
    /// Raising or lowering an interrupt line (devices, the terminal's
    /// resize, the container's control messages), from any thread.
    public var interruptRequests: [UInt32]
    /// The VM-wide state of a snapshot (`VirtualMachineHandle.captureState`).
    public var machineStateRequests: [UInt32]
    /// What the platform does just before the VM is destroyed (x86: the
    /// PIT's reinjection off).
    public var teardownRequests: [UInt32]
    /// The signal `VirtualCPU.kick()` sends a vCPU's thread (tgkill).
    public var kickSignal: Int32

    public init(vcpuRequests: [UInt32], interruptRequests: [UInt32], machineStateRequests: [UInt32],
                teardownRequests: [UInt32], kickSignal: Int32) {
        self.vcpuRequests = vcpuRequests; self.interruptRequests = interruptRequests
        self.machineStateRequests = machineStateRequests; self.teardownRequests = teardownRequests
        self.kickSignal = kickSignal
    }
}
