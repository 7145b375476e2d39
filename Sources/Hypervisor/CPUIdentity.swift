/// What a vCPU shows its guest of the CPU it runs on (x86: its CPUID table;
/// aarch64 would be its ID registers), in the encoding of the architecture's
/// platform, which alone reads it. The machine passes it from the platform
/// to the vCPUs, a snapshot records its bytes, and a restore asks the
/// platform whether the saved one is the one this host would give; none of
/// that needs to know what is inside, so a second architecture changes
/// neither the machine nor the snapshot format.
public struct CPUIdentity: Sendable, Equatable {
    public var bytes: [UInt8]
    public init(bytes: [UInt8]) { self.bytes = bytes }
}
