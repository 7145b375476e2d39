import CSystem
import Glibc
import Memory
import Synchronization
import Host

/// virtio-rng (virtio 1.x §5.4): fills each buffer the driver offers with
/// bytes from the host's `getrandom`.
public final class VirtioEntropy: VirtioDevice {
    /// Bytes served per request at most, so one request cannot occupy the
    /// event loop for long (the driver simply asks again).
    public static let maximumRequest = 64 * 1024

    public let type = Virtio.DeviceType.entropy
    public let queueSizes: [UInt16] = [256]
    public let features = Virtio.Feature.version1 | Virtio.Feature.indirectDescriptors | Virtio.Feature.eventIndex
    /// Fills the buffer with random bytes; false if it cannot.
    let source: @Sendable (UnsafeMutableRawBufferPointer) -> Bool
    private let served = Atomic<Int>(0)

    /// Random bytes handed to the guest so far.
    public var bytesServed: Int { served.load(ordering: .relaxed) }

    public init(source: @escaping @Sendable (UnsafeMutableRawBufferPointer) -> Bool = VirtioEntropy.hostRandom) {
        self.source = source
    }

    public func readConfiguration(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        data.initializeMemory(as: UInt8.self, repeating: 0)
    }

    public func process(queue: Int, _ queues: inout VirtioQueues) throws(VirtqueueError) {
        let memory = queues.memory
        try queues.drain(queue) { chain in
            let length = min(chain.writableLength, Self.maximumRequest)
            guard let segments = guestSegments(chain.writable, offset: 0, length: length, in: memory) else { return 0 }
            for segment in segments where !source(segment) { return 0 }
            served.add(length, ordering: .relaxed)
            return UInt32(length)
        }
    }

    /// getrandom(2), blocking only until the host's pool is initialised.
    @Sendable public static func hostRandom(_ buffer: UnsafeMutableRawBufferPointer) -> Bool {
        transferAll(buffer.count) { done in getrandom(buffer.baseAddress! + done, buffer.count - done, 0) } == nil
    }
}
