import Platform
import X86_64

extension MachineConfiguration {
    /// The guest platform a machine of this configuration is built on (see
    /// `platform(compatibility:hiddenCPUFeatures:)`).
    public var platform: any GuestPlatform {
        Self.platform(compatibility: compatibility, hiddenCPUFeatures: hiddenCPUFeatures)
    }

    /// Where the machine's architecture is chosen, and where a second one
    /// would be: x86_64, with the compatibility profile's workarounds and
    /// the CPU features `--hide-cpu-feature` hides.
    static func platform(compatibility: CompatibilityProfile, hiddenCPUFeatures: [String]) -> any GuestPlatform {
        X86Platform(workarounds: compatibility == .pvm ? .pvm : .none, hiddenFeatures: hiddenCPUFeatures)
    }

    /// The architecture machines are built for (what a snapshot must be of).
    public static var architecture: String {
        platform(compatibility: .none, hiddenCPUFeatures: []).architecture
    }

    /// vCPUs: at least one, at most what the platform's boot structures describe.
    public static var cpuRange: ClosedRange<Int> {
        1...platform(compatibility: .none, hiddenCPUFeatures: []).maximumCPUs
    }
}
