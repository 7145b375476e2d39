/// Something the guest driver put in a virtqueue that the device refuses.
///
/// `isFatal` errors corrupt the queue itself (its rings, or the available
/// index), so the device can no longer tell which requests exist: it stops and
/// asks the driver for a reset. The others spoil one descriptor chain, which
/// is returned to the driver unprocessed while the queue goes on.
public enum VirtqueueError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidSize(UInt16, maximum: UInt16)
    case misaligned(ring: String, address: UInt64)
    case ringOutsideMemory(ring: String, address: UInt64, length: Int)
    case availableIndexJumped(from: UInt16, to: UInt16, size: UInt16)
    case headOutOfRange(index: UInt16, size: UInt16)
    case descriptorOutOfRange(index: UInt16, tableSize: Int)
    case chainTooLong(limit: Int)
    case nestedIndirectTable
    case indirectTableWithNext
    case indirectNotNegotiated
    case invalidIndirectTable(address: UInt64, length: UInt32)
    case bufferOutsideMemory(address: UInt64, length: UInt32)
    case readableAfterWritable

    public var isFatal: Bool {
        switch self {
        case .invalidSize, .misaligned, .ringOutsideMemory, .availableIndexJumped, .headOutOfRange: return true
        default: return false
        }
    }

    public var description: String {
        func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
        switch self {
        case let .invalidSize(size, maximum): return "queue size \(size) is not a power of two in 1…\(maximum)"
        case let .misaligned(ring, address): return "\(ring) at \(hex(address)) is misaligned"
        case let .ringOutsideMemory(ring, address, length): return "\(ring) at \(hex(address)) (\(length) bytes) is outside guest memory"
        case let .availableIndexJumped(from, to, size): return "available index jumped from \(from) to \(to), more than the queue size \(size)"
        case let .headOutOfRange(index, size): return "available ring names descriptor \(index), beyond the queue size \(size)"
        case let .descriptorOutOfRange(index, tableSize): return "chain links to descriptor \(index) of a table of \(tableSize)"
        case let .chainTooLong(limit): return "descriptor chain longer than \(limit) (a loop?)"
        case .nestedIndirectTable: return "indirect table inside an indirect table"
        case .indirectTableWithNext: return "indirect descriptor that also has NEXT set"
        case .indirectNotNegotiated: return "indirect descriptor, but the driver did not negotiate them"
        case let .invalidIndirectTable(address, length): return "indirect table at \(hex(address)) of \(length) bytes is empty, ragged or outside guest memory"
        case let .bufferOutsideMemory(address, length): return "buffer at \(hex(address)) of \(length) bytes is outside guest memory"
        case .readableAfterWritable: return "device-readable buffer after a device-writable one"
        }
    }
}
