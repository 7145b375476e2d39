import Memory
import Synchronization
@testable import Devices

/// Counts the edges a virtio transport raises.
final class CountingTrigger: InterruptTrigger {
    let edges = Atomic<Int>(0)
    func trigger() { edges.add(1, ordering: .relaxed) }
    var count: Int { edges.load(ordering: .relaxed) }
}

/// Collects what a transport reports about a misbehaving driver.
final class ProblemLog: Sendable {
    let lines = Mutex<[String]>([])
    var all: [String] { lines.withLock { $0 } }
    var report: @Sendable (String) -> Void { { [self] line in self.lines.withLock { $0.append(line) } } }
}

/// Plays a Linux virtio-mmio driver against a transport, in 1 MiB of
/// in-memory "guest RAM": handshake through registers, rings laid out by hand,
/// requests made available, notifications, used entries read back.
struct TestDriver {
    struct Buffer {
        var address: UInt64
        var length: UInt32
        var writable = false
    }
    struct QueueLayout {
        var descriptors: UInt64, available: UInt64, used: UInt64, size: UInt16
    }

    static let memorySize = 1 << 20
    /// Where tests put request data (the rings live below).
    static let dataArea: UInt64 = 0x40000

    let memory: GuestMemory
    let transport: VirtioMMIOTransport
    let interrupts = CountingTrigger()
    let problems = ProblemLog()
    var layouts: [QueueLayout] = []
    var availableIndex: [UInt16] = []
    var freeDescriptor: [UInt16] = []
    var usedSeen: [UInt16] = []

    init(_ device: any VirtioDevice) throws {
        memory = try GuestMemory(layout: [(0, Self.memorySize)])
        transport = VirtioMMIOTransport(name: "test", device: device, memory: memory,
                                        interrupt: interrupts, onProblem: problems.report)
    }

    func read(_ register: Int) -> UInt32 {
        var value: UInt32 = 0
        withUnsafeMutableBytes(of: &value) { transport.read(offset: UInt64(register), into: $0) }
        return UInt32(littleEndian: value)
    }

    func write(_ register: Int, _ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { transport.write(offset: UInt64(register), from: $0) }
    }

    var status: UInt32 { read(0x70) }

    var deviceFeatures: UInt64 {
        write(0x14, 0)
        let low = UInt64(read(0x10))
        write(0x14, 1)
        return low | UInt64(read(0x10)) << 32
    }

    /// The Linux probe sequence up to FEATURES_OK; returns whether the device accepted the features.
    @discardableResult
    func negotiate(_ features: UInt64? = nil) -> Bool {
        write(0x70, 0)
        write(0x70, Virtio.Status.acknowledge)
        write(0x70, Virtio.Status.acknowledge | Virtio.Status.driver)
        let accepted = features ?? deviceFeatures
        write(0x24, 0); write(0x20, UInt32(truncatingIfNeeded: accepted))
        write(0x24, 1); write(0x20, UInt32(truncatingIfNeeded: accepted >> 32))
        write(0x70, Virtio.Status.acknowledge | Virtio.Status.driver | Virtio.Status.featuresOK)
        return status & Virtio.Status.featuresOK != 0
    }

    /// Lays out each queue (16 entries unless told) 64 KiB apart and sets it ready.
    mutating func setUpQueues(size: UInt16 = 16, layout: ((Int) -> QueueLayout)? = nil) {
        let count = transport.queueCount
        layouts = (0..<count).map { index in
            layout?(index) ?? QueueLayout(descriptors: UInt64(0x1000 + index * 0x8000),
                                          available: UInt64(0x4000 + index * 0x8000),
                                          used: UInt64(0x5000 + index * 0x8000), size: size)
        }
        availableIndex = Array(repeating: 0, count: count)
        freeDescriptor = Array(repeating: 0, count: count)
        usedSeen = Array(repeating: 0, count: count)
        for (index, queue) in layouts.enumerated() {
            write(0x30, UInt32(index))
            write(0x38, UInt32(queue.size))
            write(0x80, UInt32(truncatingIfNeeded: queue.descriptors)); write(0x84, UInt32(queue.descriptors >> 32))
            write(0x90, UInt32(truncatingIfNeeded: queue.available)); write(0x94, UInt32(queue.available >> 32))
            write(0xA0, UInt32(truncatingIfNeeded: queue.used)); write(0xA4, UInt32(queue.used >> 32))
            write(0x44, 1)
        }
    }

    func driverOK() {
        write(0x70, Virtio.Status.acknowledge | Virtio.Status.driver | Virtio.Status.featuresOK | Virtio.Status.driverOK)
    }

    /// Negotiates everything offered, sets up the queues and says DRIVER_OK.
    mutating func start(features: UInt64? = nil, size: UInt16 = 16) {
        precondition(negotiate(features))
        setUpQueues(size: size)
        driverOK()
    }

    /// Writes one descriptor of `queue`'s table (or of a table at `table`).
    func writeDescriptor(_ queue: Int, _ index: UInt16, address: UInt64, length: UInt32, flags: UInt16, next: UInt16,
                         table: UInt64? = nil) throws {
        let base = (table ?? layouts[queue].descriptors) + UInt64(index) * 16
        try memory.write(address, at: base)
        try memory.write(length, at: base + 8)
        try memory.write(flags, at: base + 12)
        try memory.write(next, at: base + 14)
    }

    /// Chains `buffers` in `queue`'s table (or in an indirect table at
    /// `indirectTable`) and makes the chain available; returns its head.
    @discardableResult
    mutating func submit(_ queue: Int, _ buffers: [Buffer], indirectTable: UInt64? = nil) throws -> UInt16 {
        let size = layouts[queue].size
        let head = freeDescriptor[queue]
        if let table = indirectTable {
            for (position, buffer) in buffers.enumerated() {
                let last = position == buffers.count - 1
                try writeDescriptor(queue, UInt16(position), address: buffer.address, length: buffer.length,
                                    flags: (last ? 0 : 1) | (buffer.writable ? 2 : 0), next: UInt16(position + 1),
                                    table: table)
            }
            try writeDescriptor(queue, head, address: table, length: UInt32(buffers.count * 16), flags: 4, next: 0)
            freeDescriptor[queue] = (head + 1) % size
        } else {
            var index = head
            for (position, buffer) in buffers.enumerated() {
                let last = position == buffers.count - 1
                let next = (index + 1) % size
                try writeDescriptor(queue, index, address: buffer.address, length: buffer.length,
                                    flags: (last ? 0 : 1) | (buffer.writable ? 2 : 0), next: next)
                index = next
            }
            freeDescriptor[queue] = index
        }
        try publish(queue, head: head)
        return head
    }

    /// Puts `head` in the available ring and bumps the index.
    mutating func publish(_ queue: Int, head: UInt16) throws {
        let layout = layouts[queue]
        let slot = UInt64(availableIndex[queue] % layout.size)
        try memory.write(head, at: layout.available + 4 + 2 * slot)
        availableIndex[queue] &+= 1
        try memory.write(availableIndex[queue], at: layout.available + 2)
    }

    func notify(_ queue: Int) { transport.notify(queue: queue) }

    /// Used entries (head, length) that appeared since the last call; then,
    /// as Linux does, asks for an interrupt at the next one (used_event).
    mutating func takeUsed(_ queue: Int) throws -> [(head: UInt16, length: UInt32)] {
        defer { try? memory.write(usedSeen[queue], at: layouts[queue].available + 4 + 2 * UInt64(layouts[queue].size)) }
        let layout = layouts[queue]
        let index: UInt16 = try memory.read(at: layout.used + 2)
        var entries: [(UInt16, UInt32)] = []
        while usedSeen[queue] != index {
            let slot = UInt64(usedSeen[queue] % layout.size)
            let head: UInt32 = try memory.read(at: layout.used + 4 + 8 * slot)
            let length: UInt32 = try memory.read(at: layout.used + 8 + 8 * slot)
            entries.append((UInt16(truncatingIfNeeded: head), length))
            usedSeen[queue] &+= 1
        }
        return entries
    }

    /// The interrupt handler's first act: read the status and acknowledge it.
    func acknowledgeInterrupt() -> UInt32 {
        let reasons = read(0x60)
        write(0x64, reasons)
        return reasons
    }
}
