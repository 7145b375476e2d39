import Synchronization

/// Address ranges mapped to devices: one bus for port I/O, one for MMIO.
///
/// Built once before the vCPUs start and immutable afterwards, so lookups
/// take no lock. Accesses nobody claims read as all ones and are ignored when
/// written, as on a PC; they are counted, and `onUnclaimed` can log them.
public final class IOBus: Sendable {
    public enum AttachError: Error, CustomStringConvertible {
        case overlap(base: UInt64, length: UInt64)
        public var description: String {
            switch self {
            case let .overlap(base, length):
                return "bus range 0x\(String(base, radix: 16))+0x\(String(length, radix: 16)) overlaps another device"
            }
        }
    }

    struct Entry: Sendable {
        let base: UInt64
        let length: UInt64
        let device: any BusDevice
    }

    public let name: String
    private let entries: [Entry]
    private let unclaimedCount = Atomic<Int>(0)
    private let onUnclaimed: (@Sendable (_ address: UInt64, _ isWrite: Bool, _ size: Int) -> Void)?

    /// Unclaimed accesses so far.
    public var unclaimedAccesses: Int { unclaimedCount.load(ordering: .relaxed) }

    public struct Builder {
        var entries: [Entry] = []
        public init() {}

        public mutating func attach(_ device: any BusDevice, at base: UInt64, length: UInt64) throws(AttachError) {
            let end = base &+ length
            guard length > 0, end > base else { throw .overlap(base: base, length: length) }
            for entry in entries where base < entry.base + entry.length && entry.base < end {
                throw .overlap(base: base, length: length)
            }
            entries.append(Entry(base: base, length: length, device: device))
        }
    }

    public init(name: String, _ builder: Builder,
                onUnclaimed: (@Sendable (_ address: UInt64, _ isWrite: Bool, _ size: Int) -> Void)? = nil) {
        self.name = name
        self.entries = builder.entries.sorted { $0.base < $1.base }
        self.onUnclaimed = onUnclaimed
    }

    /// The device whose range holds `address`, and the offset into that range.
    func lookup(_ address: UInt64) -> (device: any BusDevice, offset: UInt64)? {
        var low = 0, high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].base <= address { low = middle + 1 } else { high = middle }
        }
        guard low > 0 else { return nil }
        let entry = entries[low - 1]
        guard address - entry.base < entry.length else { return nil }
        return (entry.device, address - entry.base)
    }

    /// Dispatches a read; returns false (after filling all ones) if nobody claimed it.
    @discardableResult
    public func read(_ address: UInt64, into data: UnsafeMutableRawBufferPointer) -> Bool {
        if let (device, offset) = lookup(address) {
            device.read(offset: offset, into: data)
            return true
        }
        for index in data.indices { data[index] = 0xFF }
        unclaimed(address, isWrite: false, size: data.count)
        return false
    }

    /// Dispatches a write; returns false if nobody claimed it.
    @discardableResult
    public func write(_ address: UInt64, from data: UnsafeRawBufferPointer) -> Bool {
        if let (device, offset) = lookup(address) {
            device.write(offset: offset, from: data)
            return true
        }
        unclaimed(address, isWrite: true, size: data.count)
        return false
    }

    private func unclaimed(_ address: UInt64, isWrite: Bool, size: Int) {
        unclaimedCount.add(1, ordering: .relaxed)
        onUnclaimed?(address, isWrite, size)
    }
}
