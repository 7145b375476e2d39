/// What x86_64 guests need on a host whose KVM cannot run everything a PC
/// can: the nested "PVM" host interprets guest kernel mode, and its emulator
/// knows neither some instructions nor some hypercalls
/// (shared/docs/kvm-on-this-host.md). Applied only where they are asked for
/// (SkiffKit's `CompatibilityProfile`); on hardware KVM, `none`.
public struct X86Workarounds: Sendable, Equatable {
    /// Kernel parameters that keep the guest kernel off instructions the
    /// host's emulator cannot run, and turn on the guest kernel's SYSCALL
    /// completion.
    public let kernelParameters: [String]
    /// KVM paravirtual feature bits (CPUID 0x40000001 EAX) hidden from the
    /// guest: those whose hypercalls (`vmcall`) the host re-executes for ever
    /// instead of serving.
    public let hiddenKVMFeatures: UInt32
    /// INT3 and FWAIT in guest kernel mode come back as emulation failures:
    /// step over them (INT3 delivering #BP) instead of stopping.
    public let stepsOverTrappedInstructions: Bool

    public init(kernelParameters: [String], hiddenKVMFeatures: UInt32, stepsOverTrappedInstructions: Bool) {
        self.kernelParameters = kernelParameters
        self.hiddenKVMFeatures = hiddenKVMFeatures
        self.stepsOverTrappedInstructions = stepsOverTrappedInstructions
    }

    /// (Made at each use: a stored constant costs a one-time initialization
    /// on every start, for three empty fields.)
    public static var none: X86Workarounds {
        X86Workarounds(kernelParameters: [], hiddenKVMFeatures: 0, stepsOverTrappedInstructions: false)
    }

    /// KVM_FEATURE_PV_UNHALT (7, KVM_HC_KICK_CPU), KVM_FEATURE_PV_SEND_IPI (11,
    /// KVM_HC_SEND_IPI: measured here, an AP hung in it at SMP bring-up) and
    /// KVM_FEATURE_PV_SCHED_YIELD (13, KVM_HC_SCHED_YIELD).
    public static let hypercallFeatures: UInt32 = 1 << 7 | 1 << 11 | 1 << 13

    /// Linux reads at most 127 bytes of `clearcpuid=`, so the list names only
    /// what must go: clearing AVX also clears AVX2 and AVX-512 (the kernel's
    /// cpuid-deps), leaving room for `--hide-cpu-feature`.
    public static let pvm = X86Workarounds(
        kernelParameters: [
            "noxsave",
            "clearcpuid=smap,smep,cx16,popcnt,fsgsbase,rdpid,invpcid,umip,pku,erms,fsrm,movbe,avx,bmi1,bmi2,clflushopt,clwb,pcid",
            "skiff.pvm_syscall",
            "skiff.pvm_segments",
        ],
        hiddenKVMFeatures: hypercallFeatures, stepsOverTrappedInstructions: true)
}
