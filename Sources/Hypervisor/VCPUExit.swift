/// A port I/O access the guest made; for `rep ins/outs`, `count` accesses of
/// `size` bytes each lie back to back in `data`. For reads, fill `data`.
public struct PortAccess {
    public let port: UInt16
    public let size: Int
    public let count: Int
    public let isWrite: Bool
    /// Points into the vCPU's kvm_run page; valid until the next `run()`.
    public let data: UnsafeMutableRawBufferPointer

    public init(port: UInt16, size: Int, count: Int, isWrite: Bool, data: UnsafeMutableRawBufferPointer) {
        self.port = port; self.size = size; self.count = count; self.isWrite = isWrite; self.data = data
    }
}

/// An MMIO access to guest physical memory that is not RAM. For reads, fill `data`.
public struct MMIOAccess {
    public let address: UInt64
    public let isWrite: Bool
    /// 1 to 8 bytes; points into the vCPU's kvm_run page, valid until the next `run()`.
    public let data: UnsafeMutableRawBufferPointer

    public init(address: UInt64, isWrite: Bool, data: UnsafeMutableRawBufferPointer) {
        self.address = address; self.isWrite = isWrite; self.data = data
    }
}

/// Why KVM_RUN returned.
public enum VCPUExit {
    case portIO(PortAccess)
    case mmio(MMIOAccess)
    case halt
    /// The guest triple-faulted (or otherwise shut down its CPU).
    case shutdown
    /// KVM_EXIT_SYSTEM_EVENT: the guest asked for reset, shutdown or crash (type as KVM numbers it).
    case systemEvent(type: UInt32)
    /// KVM could not emulate an instruction; its bytes when KVM reported them.
    case emulationFailure(instruction: [UInt8])
    case internalError(suberror: UInt32)
    case failedEntry(reason: UInt64)
    /// KVM_RUN returned EINTR or honoured immediate_exit: someone kicked this vCPU.
    case interrupted
    case unhandled(reason: UInt32)
}
