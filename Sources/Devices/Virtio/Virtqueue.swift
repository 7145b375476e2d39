import Memory
import Synchronization

/// The device side of a split virtqueue (virtio 1.x §2.7).
///
/// The driver owns the descriptor table and the available ring and may change
/// them at any moment, so everything read from them is a guest-controlled
/// value: each index is checked against the queue size, each buffer against
/// guest memory, and each chain against loops, before a device sees it.
/// Addresses the driver configured are checked once, when the device starts.
public struct Virtqueue: Sendable {
    /// Descriptor flags (§2.7.5).
    enum DescriptorFlag {
        static let next: UInt16 = 1
        static let write: UInt16 = 2
        static let indirect: UInt16 = 4
    }
    static let availableNoInterrupt: UInt16 = 1
    static let descriptorSize = 16

    public let maximumSize: UInt16
    /// What the driver configured through the transport.
    public var size: UInt16
    public var ready = false
    public var descriptorTable: UInt64 = 0
    public var availableRing: UInt64 = 0
    public var usedRing: UInt64 = 0

    /// Negotiated features that change how the rings are read.
    public var eventIndex = false
    public var indirectDescriptors = false

    /// Free-running counters, as in the spec: the next available-ring entry to
    /// take, and the next used-ring entry to fill.
    public private(set) var nextAvailable: UInt16 = 0
    public private(set) var nextUsed: UInt16 = 0
    /// The used index when the driver was last interrupted (event index only).
    fileprivate(set) var usedAtLastInterrupt: UInt16 = 0

    public init(maximumSize: UInt16) {
        precondition(maximumSize > 0 && maximumSize & (maximumSize - 1) == 0, "queue sizes are powers of two")
        self.maximumSize = maximumSize
        self.size = maximumSize
    }

    /// Back to the state after a device reset.
    public mutating func reset() {
        self = Virtqueue(maximumSize: maximumSize)
    }

    /// Checks what the driver configured before the device starts using it.
    public func validate(in memory: GuestMemory) throws(VirtqueueError) {
        guard size > 0, size <= maximumSize, size & (size - 1) == 0 else {
            throw .invalidSize(size, maximum: maximumSize)
        }
        let count = Int(size)
        let rings: [(String, UInt64, Int, UInt64)] = [
            ("descriptor table", descriptorTable, Self.descriptorSize * count, 16),
            ("available ring", availableRing, 6 + 2 * count, 2),
            ("used ring", usedRing, 6 + 8 * count, 4),
        ]
        for (name, address, length, alignment) in rings {
            guard address % alignment == 0 else { throw .misaligned(ring: name, address: address) }
            guard memory.contains(address: address, length: length) else {
                throw .ringOutsideMemory(ring: name, address: address, length: length)
            }
        }
    }

    /// What `next` found at the head of the available ring.
    public enum Request: Sendable, Equatable {
        case chain(DescriptorChain)
        /// A chain that breaks the rules: return `head` to the driver unprocessed.
        case malformed(head: UInt16, VirtqueueError)
    }

    /// Takes the next available chain, or nil if the driver has made none available.
    /// Throws only fatal errors (see `VirtqueueError.isFatal`).
    public mutating func next(in memory: GuestMemory) throws(VirtqueueError) -> Request? {
        let available = try ringRead(availableRing + 2, memory)
        let pending = available &- nextAvailable
        guard pending != 0 else { return nil }
        guard pending <= size else {
            throw .availableIndexJumped(from: nextAvailable, to: available, size: size)
        }
        // The ring entry and descriptors were written before the index: read them after it.
        atomicMemoryFence(ordering: .acquiring)
        let slot = UInt64(nextAvailable % size)
        let head = try ringRead(availableRing + 4 + 2 * slot, memory)
        guard head < size else { throw .headOutOfRange(index: head, size: size) }
        nextAvailable &+= 1
        do {
            return .chain(try walkChain(from: head, in: memory))
        } catch {
            return .malformed(head: head, error)
        }
    }

    /// Puts back the chain `next` returned last (a device that took it but
    /// cannot use it yet, such as a network device with no packet to deliver).
    public mutating func undoNext() {
        nextAvailable &-= 1
    }

    /// Follows a chain through the table (and at most one indirect table),
    /// checking each descriptor once.
    private func walkChain(from head: UInt16, in memory: GuestMemory) throws(VirtqueueError) -> DescriptorChain {
        var table = descriptorTable
        var tableSize = Int(size)
        var index = head
        var inIndirectTable = false
        var visited = 0
        var readable: [DescriptorChain.Buffer] = []
        var writable: [DescriptorChain.Buffer] = []
        while true {
            guard Int(index) < tableSize else { throw .descriptorOutOfRange(index: index, tableSize: tableSize) }
            // A chain may not be longer than the queue (§2.7.13.1); a loop would be.
            visited += 1
            guard visited <= Int(size) else { throw .chainTooLong(limit: Int(size)) }
            let entry = table + UInt64(index) * UInt64(Self.descriptorSize)
            guard let raw = try? memory.buffer(at: entry, length: Self.descriptorSize) else {
                throw .descriptorOutOfRange(index: index, tableSize: tableSize)
            }
            let address = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
            let length = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
            let flags = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 12, as: UInt16.self))
            let next = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 14, as: UInt16.self))

            if flags & DescriptorFlag.indirect != 0 {
                guard indirectDescriptors else { throw .indirectNotNegotiated }
                guard !inIndirectTable else { throw .nestedIndirectTable }
                guard flags & DescriptorFlag.next == 0 else { throw .indirectTableWithNext }
                let count = Int(length) / Self.descriptorSize
                guard length > 0, Int(length) % Self.descriptorSize == 0,
                      memory.contains(address: address, length: Int(length)) else {
                    throw .invalidIndirectTable(address: address, length: length)
                }
                table = address
                tableSize = count
                index = 0
                inIndirectTable = true
                continue
            }
            guard memory.contains(address: address, length: Int(length)) else {
                throw .bufferOutsideMemory(address: address, length: length)
            }
            let buffer = DescriptorChain.Buffer(address: address, length: length)
            if flags & DescriptorFlag.write != 0 {
                writable.append(buffer)
            } else {
                guard writable.isEmpty else { throw .readableAfterWritable }
                readable.append(buffer)
            }
            guard flags & DescriptorFlag.next != 0 else { break }
            index = next
        }
        return DescriptorChain(head: head, readable: readable, writable: writable)
    }

    /// Returns a chain to the driver with `length` bytes written into its writable buffers.
    public mutating func complete(head: UInt16, length: UInt32, in memory: GuestMemory) throws(VirtqueueError) {
        let slot = UInt64(nextUsed % size)
        let entry = usedRing + 4 + 8 * slot
        do {
            try memory.write(UInt32(head), at: entry)
            try memory.write(length, at: entry + 4)
            nextUsed &+= 1
            // The entry must be visible before the index that publishes it.
            atomicMemoryFence(ordering: .releasing)
            try memory.write(nextUsed, at: usedRing + 2)
        } catch {
            throw .ringOutsideMemory(ring: "used ring", address: usedRing, length: 6 + 8 * Int(size))
        }
    }

    /// Asks the driver to notify the device for every new chain from here on,
    /// then returns whether chains arrived meanwhile (the caller processes
    /// them, otherwise that notification could be lost).
    public mutating func enableNotifications(in memory: GuestMemory) throws(VirtqueueError) -> Bool {
        if eventIndex {
            // avail_event, after the used ring's entries.
            do { try memory.write(nextAvailable, at: usedRing + 4 + 8 * UInt64(size)) } catch {
                throw .ringOutsideMemory(ring: "used ring", address: usedRing, length: 6 + 8 * Int(size))
            }
        }
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        return try ringRead(availableRing + 2, memory) != nextAvailable
    }

    /// Whether the driver wants an interrupt for the chains completed since the
    /// last one (§2.7.7.2: the NO_INTERRUPT flag, or used_event with event index).
    public mutating func needsInterrupt(in memory: GuestMemory) throws(VirtqueueError) -> Bool {
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if eventIndex {
            let usedEvent = try ringRead(availableRing + 4 + 2 * UInt64(size), memory)
            let previous = usedAtLastInterrupt
            usedAtLastInterrupt = nextUsed
            // vring_need_event: did the index pass used_event since the last interrupt?
            return nextUsed &- usedEvent &- 1 < nextUsed &- previous
        }
        return try ringRead(availableRing, memory) & Self.availableNoInterrupt == 0
    }

    private func ringRead(_ address: UInt64, _ memory: GuestMemory) throws(VirtqueueError) -> UInt16 {
        do { return try memory.read(UInt16.self, at: address) } catch {
            throw .ringOutsideMemory(ring: "available ring", address: availableRing, length: 6 + 2 * Int(size))
        }
    }
}

extension Virtqueue {
    /// Everything the driver configured and both free-running counters.
    func save(into out: inout StateWriter) {
        out.put(maximumSize)
        out.put(size)
        out.put(ready)
        out.put(descriptorTable)
        out.put(availableRing)
        out.put(usedRing)
        out.put(eventIndex)
        out.put(indirectDescriptors)
        out.put(nextAvailable)
        out.put(nextUsed)
        out.put(usedAtLastInterrupt)
    }

    /// A queue as `save` wrote it; its maximum size must be this one's.
    func restored(from input: inout StateReader) throws(DeviceStateError) -> Virtqueue {
        let maximum: UInt16 = try input.get()
        guard maximum == maximumSize else {
            throw DeviceStateError("saved queue holds up to \(maximum) entries; this device's holds \(maximumSize)")
        }
        var queue = Virtqueue(maximumSize: maximumSize)
        queue.size = try input.get()
        queue.ready = try input.getBool()
        queue.descriptorTable = try input.get()
        queue.availableRing = try input.get()
        queue.usedRing = try input.get()
        queue.eventIndex = try input.getBool()
        queue.indirectDescriptors = try input.getBool()
        queue.nextAvailable = try input.get()
        queue.nextUsed = try input.get()
        queue.usedAtLastInterrupt = try input.get()
        return queue
    }
}
