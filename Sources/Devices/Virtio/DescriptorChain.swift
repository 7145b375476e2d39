import Memory

/// One request the driver made available: the buffers of a descriptor chain,
/// already validated (inside guest memory, no loop, readable before writable),
/// so that a device reads each descriptor exactly once and never again.
public struct DescriptorChain: Sendable, Equatable {
    public struct Buffer: Sendable, Equatable {
        public let address: UInt64
        public let length: UInt32
        public init(address: UInt64, length: UInt32) {
            self.address = address
            self.length = length
        }
    }

    /// Index of the head descriptor: what goes back in the used ring.
    public let head: UInt16
    /// Buffers the device reads (driver → device), in order.
    public let readable: [Buffer]
    /// Buffers the device writes (device → driver), in order.
    public let writable: [Buffer]

    public init(head: UInt16, readable: [Buffer], writable: [Buffer]) {
        self.head = head
        self.readable = readable
        self.writable = writable
    }

    public var readableLength: Int { readable.reduce(0) { $0 + Int($1.length) } }
    public var writableLength: Int { writable.reduce(0) { $0 + Int($1.length) } }
}

/// Host views of a byte range spread across chain buffers: `offset` bytes in,
/// `length` bytes long. Each piece is a bounds-checked slice of guest memory.
/// Returns nil if the buffers hold fewer than `offset + length` bytes.
public func guestSegments(_ buffers: [DescriptorChain.Buffer], offset: Int, length: Int,
                          in memory: GuestMemory) -> [UnsafeMutableRawBufferPointer]? {
    guard offset >= 0, length >= 0 else { return nil }
    var segments: [UnsafeMutableRawBufferPointer] = []
    var skip = offset
    var remaining = length
    for buffer in buffers where remaining > 0 {
        let size = Int(buffer.length)
        if skip >= size { skip -= size; continue }
        let take = min(size - skip, remaining)
        guard let piece = try? memory.buffer(at: buffer.address + UInt64(skip), length: take) else { return nil }
        segments.append(piece)
        remaining -= take
        skip = 0
    }
    return remaining == 0 ? segments : nil
}

/// Copies `length` bytes starting `offset` bytes into `buffers` out of guest memory.
public func readGuestBytes(_ buffers: [DescriptorChain.Buffer], offset: Int = 0, length: Int,
                           from memory: GuestMemory) -> [UInt8]? {
    guard let segments = guestSegments(buffers, offset: offset, length: length, in: memory) else { return nil }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(length)
    for segment in segments { bytes.append(contentsOf: segment) }
    return bytes
}

/// Copies `bytes` into `buffers`, starting `offset` bytes in; false if they do not fit.
@discardableResult
public func writeGuestBytes<Bytes: Collection<UInt8>>(_ bytes: Bytes, to buffers: [DescriptorChain.Buffer],
                                                      offset: Int = 0, in memory: GuestMemory) -> Bool {
    guard let segments = guestSegments(buffers, offset: offset, length: bytes.count, in: memory) else { return false }
    var index = bytes.startIndex
    for segment in segments {
        let end = bytes.index(index, offsetBy: segment.count)
        segment.copyBytes(from: bytes[index..<end])
        index = end
    }
    return true
}
