/// The header every virtio-vsock packet starts with (virtio 1.2 §5.10.6,
/// `struct virtio_vsock_hdr`): 44 bytes, little endian, then `length` bytes
/// of payload for RW packets.
public struct VsockHeader: Equatable, Sendable {
    public static let size = 44
    /// The host's CID, as a guest addresses it (VMADDR_CID_HOST).
    public static let hostCID: UInt64 = 2
    /// The only socket type Skiff offers (VIRTIO_VSOCK_TYPE_STREAM).
    public static let streamType: UInt16 = 1

    public enum Operation: UInt16, Sendable {
        case invalid = 0, request, response, reset, shutdown, readWrite, creditUpdate, creditRequest
    }

    /// SHUTDOWN flags: the sender will receive no more, send no more.
    public enum Shutdown {
        public static let receive: UInt32 = 1
        public static let send: UInt32 = 2
    }

    public var sourceCID: UInt64
    public var destinationCID: UInt64
    public var sourcePort: UInt32
    public var destinationPort: UInt32
    public var length: UInt32
    public var type: UInt16
    /// Raw: an unknown operation is the guest's mistake, answered with RST, not a parse failure.
    public var operation: UInt16
    public var flags: UInt32
    /// The sender's receive buffer, and how much of what it received it has consumed (credit, §5.10.6.3).
    public var bufferAllocation: UInt32
    public var forwardCount: UInt32

    public init(sourceCID: UInt64, destinationCID: UInt64, sourcePort: UInt32, destinationPort: UInt32,
                operation: Operation, length: UInt32 = 0, flags: UInt32 = 0,
                bufferAllocation: UInt32 = 0, forwardCount: UInt32 = 0) {
        self.sourceCID = sourceCID
        self.destinationCID = destinationCID
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.length = length
        self.type = Self.streamType
        self.operation = operation.rawValue
        self.flags = flags
        self.bufferAllocation = bufferAllocation
        self.forwardCount = forwardCount
    }

    /// Reads a header from the first 44 bytes of `bytes`; nil if there are fewer.
    public init?<Bytes: RandomAccessCollection<UInt8>>(_ bytes: Bytes) where Bytes.Index == Int {
        guard bytes.count >= Self.size else { return nil }
        let base = bytes.startIndex
        func value<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            var result: T = 0
            for index in 0..<MemoryLayout<T>.size { result |= T(bytes[base + offset + index]) << (8 * index) }
            return result
        }
        sourceCID = value(0, UInt64.self)
        destinationCID = value(8, UInt64.self)
        sourcePort = value(16, UInt32.self)
        destinationPort = value(20, UInt32.self)
        length = value(24, UInt32.self)
        type = value(28, UInt16.self)
        operation = value(30, UInt16.self)
        flags = value(32, UInt32.self)
        bufferAllocation = value(36, UInt32.self)
        forwardCount = value(40, UInt32.self)
    }

    public var knownOperation: Operation? { Operation(rawValue: operation) }

    /// The 44 bytes as the driver reads them.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.size)
        func put<T: FixedWidthInteger>(_ value: T) {
            for index in 0..<MemoryLayout<T>.size { out.append(UInt8(truncatingIfNeeded: value >> (8 * index))) }
        }
        put(sourceCID); put(destinationCID); put(sourcePort); put(destinationPort); put(length)
        put(type); put(operation); put(flags); put(bufferAllocation); put(forwardCount)
        return out
    }
}
