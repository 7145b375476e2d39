import Memory
import Synchronization

/// virtio-blk (virtio 1.x §5.2) over a raw image: read, write, flush, get-id.
///
/// Each request is checked before any I/O: a header, a status byte, data in
/// whole sectors, inside the disk. A read-only disk offers VIRTIO_BLK_F_RO and
/// answers writes with IOERR without touching the file, as the spec requires.
public final class VirtioBlock: VirtioDevice {
    public static let sectorSize = 512
    static let queueSize: UInt16 = 256

    enum Feature {
        static let segmentMaximum: UInt64 = 1 << 2
        static let readOnly: UInt64 = 1 << 5
        static let flush: UInt64 = 1 << 9
    }
    enum RequestType: UInt32 {
        case read = 0, write = 1, flush = 4, getID = 8
    }
    enum Status: UInt8 {
        case ok = 0, ioError = 1, unsupported = 2
    }
    static let headerSize = 16
    static let identifierSize = 20

    public let disk: DiskImage
    public let type = Virtio.DeviceType.block
    public let queueSizes = [VirtioBlock.queueSize]
    public let features: UInt64
    private let configuration: [UInt8]
    private let counters = Counters()

    /// What the device has done, for benchmarks and tests.
    public struct Statistics: Equatable, Sendable {
        public var reads = 0, writes = 0, flushes = 0, failed = 0
        public var bytesRead = 0, bytesWritten = 0
    }
    final class Counters: Sendable {
        let reads = Atomic<Int>(0), writes = Atomic<Int>(0), flushes = Atomic<Int>(0), failed = Atomic<Int>(0)
        let bytesRead = Atomic<Int>(0), bytesWritten = Atomic<Int>(0)
    }
    public var statistics: Statistics {
        Statistics(reads: counters.reads.load(ordering: .relaxed), writes: counters.writes.load(ordering: .relaxed),
                   flushes: counters.flushes.load(ordering: .relaxed), failed: counters.failed.load(ordering: .relaxed),
                   bytesRead: counters.bytesRead.load(ordering: .relaxed),
                   bytesWritten: counters.bytesWritten.load(ordering: .relaxed))
    }

    public init(disk: DiskImage) {
        self.disk = disk
        var features = Virtio.Feature.version1 | Virtio.Feature.indirectDescriptors | Virtio.Feature.eventIndex
            | Feature.flush | Feature.segmentMaximum
        if disk.readOnly { features |= Feature.readOnly }
        self.features = features
        // struct virtio_blk_config: capacity (sectors) at 0, size_max at 8, seg_max at 12.
        var config = [UInt8](repeating: 0, count: 24)
        let capacity = disk.size / UInt64(Self.sectorSize)
        for byte in 0..<8 { config[byte] = UInt8(truncatingIfNeeded: capacity >> (8 * UInt64(byte))) }
        let segments = UInt32(Self.queueSize) - 2
        for byte in 0..<4 { config[12 + byte] = UInt8(truncatingIfNeeded: segments >> (8 * UInt32(byte))) }
        self.configuration = config
    }

    public func readConfiguration(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        readConfigurationBytes(configuration, offset: offset, into: data)
    }

    public func process(queue: Int, _ queues: inout VirtioQueues) throws(VirtqueueError) {
        let memory = queues.memory
        try queues.drain(queue) { chain in serve(chain, memory) }
    }

    /// Carries out one request; returns the bytes written into the chain.
    func serve(_ chain: DescriptorChain, _ memory: GuestMemory) -> UInt32 {
        // The status byte is the last writable byte; without it nothing can be answered.
        let writableLength = chain.writableLength
        guard writableLength >= 1,
              let status = guestSegments(chain.writable, offset: writableLength - 1, length: 1, in: memory)?.first
        else {
            counters.failed.add(1, ordering: .relaxed)
            return 0
        }
        let (result, written) = execute(chain, memory, dataCapacity: writableLength - 1)
        if result != .ok { counters.failed.add(1, ordering: .relaxed) }
        status[0] = result.rawValue
        return UInt32(written + 1)
    }

    private func execute(_ chain: DescriptorChain, _ memory: GuestMemory, dataCapacity: Int) -> (Status, Int) {
        guard let header = readGuestBytes(chain.readable, length: Self.headerSize, from: memory) else { return (.ioError, 0) }
        let type = header.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
        let sector = header.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
        switch RequestType(rawValue: type) {
        case .read:
            guard let offset = byteRange(sector: sector, length: dataCapacity),
                  let segments = guestSegments(chain.writable, offset: 0, length: dataCapacity, in: memory)
            else { return (.ioError, 0) }
            guard disk.read(into: segments, at: offset) else { return (.ioError, 0) }
            counters.reads.add(1, ordering: .relaxed)
            counters.bytesRead.add(dataCapacity, ordering: .relaxed)
            return (.ok, dataCapacity)
        case .write:
            guard !disk.readOnly else { return (.ioError, 0) }
            let length = chain.readableLength - Self.headerSize
            guard let offset = byteRange(sector: sector, length: length),
                  let segments = guestSegments(chain.readable, offset: Self.headerSize, length: length, in: memory)
            else { return (.ioError, 0) }
            guard disk.write(segments, at: offset) else { return (.ioError, 0) }
            counters.writes.add(1, ordering: .relaxed)
            counters.bytesWritten.add(length, ordering: .relaxed)
            return (.ok, 0)
        case .flush:
            counters.flushes.add(1, ordering: .relaxed)
            return (disk.readOnly || disk.flush() ? .ok : .ioError, 0)
        case .getID:
            var identifier = Array(disk.identifier.utf8.prefix(Self.identifierSize))
            identifier += [UInt8](repeating: 0, count: Self.identifierSize - identifier.count)
            let length = min(dataCapacity, Self.identifierSize)
            guard writeGuestBytes(identifier.prefix(length), to: chain.writable, in: memory) else { return (.ioError, 0) }
            return (.ok, length)
        case nil:
            return (.unsupported, 0)
        }
    }

    /// The byte offset of `length` bytes at `sector`, if they are whole sectors inside the disk.
    private func byteRange(sector: UInt64, length: Int) -> UInt64? {
        guard length >= 0, length % Self.sectorSize == 0 else { return nil }
        let (offset, overflow) = sector.multipliedReportingOverflow(by: UInt64(Self.sectorSize))
        guard !overflow else { return nil }
        let (end, overflow2) = offset.addingReportingOverflow(UInt64(length))
        guard !overflow2, end <= disk.size else { return nil }
        return offset
    }
}
