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

/// Which host workarounds a machine's platform applies: a profile names them,
/// the platform holds what they are for its architecture (x86_64:
/// `X86Workarounds`), so that the configuration, its snapshots and the
/// ready-guest keys say only which.
public enum CompatibilityProfile: String, Sendable, Equatable, CaseIterable {
    /// Hardware KVM: nothing to work around.
    case none
    /// A nested PVM host (shared/docs/kvm-on-this-host.md).
    case pvm

    /// How snapshots and ready-guest keys record it.
    public var name: String { rawValue }

    public static func resolve(_ mode: CompatibilityMode, host: HostKind) -> CompatibilityProfile {
        switch mode {
        case .pvm: return .pvm
        case .none: return .none
        case .auto: return host == .pvm ? .pvm : .none
        }
    }
}
