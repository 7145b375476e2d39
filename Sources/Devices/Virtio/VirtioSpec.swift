/// Numbers from the virtio 1.x specification (OASIS, "Virtual I/O Device
/// Version 1.2") that more than one file needs.
public enum Virtio {
    /// Device types (spec §5): the DeviceID register.
    public enum DeviceType: UInt32, Sendable {
        case network = 1
        case block = 2
        case entropy = 4
        case socket = 19
    }

    /// Device status bits (spec §2.1).
    public enum Status {
        public static let acknowledge: UInt32 = 1
        public static let driver: UInt32 = 2
        public static let driverOK: UInt32 = 4
        public static let featuresOK: UInt32 = 8
        public static let deviceNeedsReset: UInt32 = 64
        public static let failed: UInt32 = 128
    }

    /// Feature bits every device type shares (spec §6).
    public enum Feature {
        public static let indirectDescriptors: UInt64 = 1 << 28
        public static let eventIndex: UInt64 = 1 << 29
        /// Modern (non-legacy) interface; register layout version 2 requires it.
        public static let version1: UInt64 = 1 << 32
    }

    /// Bits of the InterruptStatus register (spec §4.2.2).
    public enum InterruptReason {
        public static let usedBuffer: UInt32 = 1
        public static let configurationChange: UInt32 = 2
    }
}
