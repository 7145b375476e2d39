import Glibc

/// What kind of KVM this host has, which decides whether Skiff must work
/// around an interpreting, nested "PVM" host (shared/docs/kvm-on-this-host.md).
public enum HostKind: String, Sendable, Codable {
    case hardware = "hardware KVM"
    case pvm = "nested PVM (kvm_pvm)"

    /// PVM announces itself as the `kvm_pvm` module.
    public static func detect(moduleDirectory: String = "/sys/module") -> HostKind {
        access(moduleDirectory + "/kvm_pvm", F_OK) == 0 ? .pvm : .hardware
    }
}

/// `--compat auto|pvm|none`.
public enum CompatibilityMode: String, Sendable, CaseIterable {
    case auto, pvm, none
}

/// The workarounds a PVM host needs, applied only where they are needed.
public struct CompatibilityProfile: Sendable, Equatable {
    /// Kernel parameters that keep the guest kernel off instructions the host's
    /// emulator cannot run, and turn on the guest kernel's SYSCALL completion.
    public let kernelParameters: [String]
    /// Handle INT3 (inject #BP) and FWAIT (skip) emulation failures in the VMM.
    public let handlesEmulationFailures: Bool
    /// KVM paravirtual feature bits (CPUID 0x40000001 EAX) to hide: the ones whose
    /// hypercalls (`vmcall`) a PVM host re-executes for ever instead of serving.
    public let hiddenKVMFeatures: UInt32
    public let name: String

    public static let none = CompatibilityProfile(kernelParameters: [], handlesEmulationFailures: false,
                                                  hiddenKVMFeatures: 0, name: "none")

    /// KVM_FEATURE_PV_UNHALT (7, KVM_HC_KICK_CPU), KVM_FEATURE_PV_SEND_IPI (11,
    /// KVM_HC_SEND_IPI: measured here, an AP hung in it at SMP bring-up) and
    /// KVM_FEATURE_PV_SCHED_YIELD (13, KVM_HC_SCHED_YIELD).
    public static let hypercallFeatures: UInt32 = 1 << 7 | 1 << 11 | 1 << 13

    /// Linux reads at most 127 bytes of `clearcpuid=`, so the list names only
    /// what must go: clearing AVX also clears AVX2 and AVX-512 (the kernel's
    /// cpuid-deps), leaving room for `--hide-cpu-feature`.
    public static let pvm = CompatibilityProfile(
        kernelParameters: [
            "noxsave",
            "clearcpuid=smap,smep,cx16,popcnt,fsgsbase,rdpid,invpcid,umip,pku,erms,fsrm,movbe,avx,bmi1,bmi2,clflushopt,clwb,pcid",
            "skiff.pvm_syscall",
            "skiff.pvm_segments",
        ],
        handlesEmulationFailures: true, hiddenKVMFeatures: hypercallFeatures, name: "pvm")

    public static func resolve(_ mode: CompatibilityMode, host: HostKind) -> CompatibilityProfile {
        switch mode {
        case .pvm: return .pvm
        case .none: return .none
        case .auto: return host == .pvm ? .pvm : .none
        }
    }
}
