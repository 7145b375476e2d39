import CKVM
import Hypervisor

extension KVMSystem {
    /// The ioctls this target's VM and vCPU methods make, and the kick's
    /// signal (x86_64 KVM). Taken from strace of `skiff boot`, `skiff run`
    /// (cold, snapshotting, restored) and `skiff restore`, then cut to what
    /// the methods call; a request missing here ends a `--seccomp kill` VMM
    /// with a line naming it.
    public static let systemCalls = HypervisorSystemCalls(
        vcpuRequests: [
            CKVM_RUN, CKVM_GET_REGS, CKVM_SET_REGS, CKVM_GET_SREGS, CKVM_SET_SREGS,
            CKVM_GET_MSRS, CKVM_GET_LAPIC, CKVM_GET_VCPU_EVENTS, CKVM_SET_VCPU_EVENTS, CKVM_GET_FPU,
            CKVM_GET_XSAVE, CKVM_GET_XCRS, CKVM_GET_DEBUGREGS, CKVM_GET_MP_STATE, CKVM_TRANSLATE,
            CKVM_CHECK_EXTENSION, CKVM_GET_MSR_INDEX_LIST, // the capture asks which state the host has
        ].map { UInt32(truncatingIfNeeded: $0) },
        interruptRequests: [UInt32(truncatingIfNeeded: CKVM_IRQ_LINE)],
        machineStateRequests: [CKVM_GET_CLOCK, CKVM_GET_IRQCHIP, CKVM_GET_PIT2, CKVM_CHECK_EXTENSION].map { UInt32(truncatingIfNeeded: $0) },
        teardownRequests: [UInt32(truncatingIfNeeded: CKVM_REINJECT_CONTROL)],
        kickSignal: ckvm_kick_signal())
}
