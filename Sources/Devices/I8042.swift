import Synchronization

/// Just enough of the PC keyboard controller for a guest to reset the machine:
/// Linux's `reboot=k` writes command 0xFE ("pulse reset line") to port 0x64
/// after waiting for the input buffer to be empty, which it always is here.
/// Attached at 0x60 with length 5; port 0x61 in between belongs to the
/// in-kernel PIT, which KVM serves before user space sees it.
public final class I8042: BusDevice {
    public static let basePort: UInt64 = 0x60
    public static let length: UInt64 = 5
    static let commandOffset: UInt64 = 4
    static let resetCommand: UInt8 = 0xFE

    private let onReset: @Sendable () -> Void
    private let resets = Atomic<Int>(0)

    /// Times the guest asked for a reset.
    public var resetRequests: Int { resets.load(ordering: .relaxed) }

    public init(onReset: @escaping @Sendable () -> Void) {
        self.onReset = onReset
    }

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        // Status 0: output and input buffers empty. Data: nothing pending.
        for index in data.indices { data[index] = 0 }
    }

    public func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        guard offset == Self.commandOffset, data.first == Self.resetCommand else { return }
        resets.add(1, ordering: .relaxed)
        onReset()
    }
}
