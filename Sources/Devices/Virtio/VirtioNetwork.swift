import Memory
import Synchronization

/// virtio-net (virtio 1.x §5.1): one receive and one transmit queue, a MAC
/// address in configuration space, no offloads (each frame travels whole,
/// behind a 12-byte virtio_net_hdr with nothing asked of the device).
public final class VirtioNetwork: VirtioDevice {
    public static let receiveQueue = 0
    public static let transmitQueue = 1
    /// virtio_net_hdr_v1: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, num_buffers.
    static let headerSize = 12
    /// The largest frame without offloads: 64 KiB of IP plus Ethernet and VLAN headers.
    public static let maximumFrame = 65_535 + 14 + 4

    enum Feature {
        static let mac: UInt64 = 1 << 5
    }

    public let type = Virtio.DeviceType.network
    public let queueSizes: [UInt16] = [256, 256]
    public let features = Virtio.Feature.version1 | Virtio.Feature.indirectDescriptors | Virtio.Feature.eventIndex
        | Feature.mac
    public let mac: MACAddress
    let endpoint: any PacketEndpoint
    private let counters = Counters()

    public struct Statistics: Equatable, Sendable {
        public var framesSent = 0, framesReceived = 0, bytesSent = 0, bytesReceived = 0, dropped = 0
    }
    final class Counters: Sendable {
        let framesSent = Atomic<Int>(0), framesReceived = Atomic<Int>(0)
        let bytesSent = Atomic<Int>(0), bytesReceived = Atomic<Int>(0), dropped = Atomic<Int>(0)
    }
    public var statistics: Statistics {
        Statistics(framesSent: counters.framesSent.load(ordering: .relaxed),
                   framesReceived: counters.framesReceived.load(ordering: .relaxed),
                   bytesSent: counters.bytesSent.load(ordering: .relaxed),
                   bytesReceived: counters.bytesReceived.load(ordering: .relaxed),
                   dropped: counters.dropped.load(ordering: .relaxed))
    }

    public init(endpoint: any PacketEndpoint, mac: MACAddress) {
        self.endpoint = endpoint
        self.mac = mac
    }

    public func readConfiguration(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        // struct virtio_net_config: mac[6], then fields for features not offered.
        readConfigurationBytes(mac.bytes, offset: offset, into: data)
    }

    public func process(queue: Int, _ queues: inout VirtioQueues) throws(VirtqueueError) {
        switch queue {
        case Self.transmitQueue: try transmit(&queues)
        case Self.receiveQueue: try receive(&queues) // new buffers: deliver what waited for them
        default: break
        }
    }

    /// The TAP has frames.
    public func processBackend(_ queues: inout VirtioQueues) throws(VirtqueueError) {
        try receive(&queues)
    }

    private func transmit(_ queues: inout VirtioQueues) throws(VirtqueueError) {
        let memory = queues.memory
        var frame = [UInt8](repeating: 0, count: Self.maximumFrame)
        try queues.drain(Self.transmitQueue) { chain in
            let length = chain.readableLength - Self.headerSize
            guard length > 0, length <= Self.maximumFrame,
                  let segments = guestSegments(chain.readable, offset: Self.headerSize, length: length, in: memory)
            else {
                counters.dropped.add(1, ordering: .relaxed)
                return 0
            }
            let sent = frame.withUnsafeMutableBytes { buffer -> Bool in
                var position = 0
                for segment in segments {
                    UnsafeMutableRawBufferPointer(rebasing: buffer[position..<position + segment.count])
                        .copyMemory(from: UnsafeRawBufferPointer(segment))
                    position += segment.count
                }
                return endpoint.send(UnsafeRawBufferPointer(rebasing: buffer[0..<length]))
            }
            if sent {
                counters.framesSent.add(1, ordering: .relaxed)
                counters.bytesSent.add(length, ordering: .relaxed)
            } else {
                counters.dropped.add(1, ordering: .relaxed)
            }
            return 0
        }
    }

    /// Moves frames from the endpoint into receive buffers until either runs out.
    private func receive(_ queues: inout VirtioQueues) throws(VirtqueueError) {
        let memory = queues.memory
        var packet = [UInt8](repeating: 0, count: Self.headerSize + Self.maximumFrame)
        // num_buffers = 1: each frame fits one chain (MRG_RXBUF is not offered).
        packet[10] = 1
        while true {
            guard let chain = try queues.next(Self.receiveQueue) else {
                // Out of buffers: frames wait in the TAP until the driver adds some.
                if try queues.enableNotifications(Self.receiveQueue) { continue }
                return
            }
            let received = packet.withUnsafeMutableBytes { buffer in
                endpoint.receive(into: UnsafeMutableRawBufferPointer(rebasing: buffer[Self.headerSize...]))
            }
            guard let length = received else {
                queues.undoNext(Self.receiveQueue)
                return
            }
            let total = Self.headerSize + length
            guard total <= chain.writableLength else {
                // Too big for the buffers offered: drop the frame, keep the buffers.
                counters.dropped.add(1, ordering: .relaxed)
                queues.undoNext(Self.receiveQueue)
                continue
            }
            writeGuestBytes(packet[0..<total], to: chain.writable, in: memory)
            try queues.complete(Self.receiveQueue, head: chain.head, length: UInt32(total))
            counters.framesReceived.add(1, ordering: .relaxed)
            counters.bytesReceived.add(length, ordering: .relaxed)
        }
    }
}

/// An Ethernet address.
public struct MACAddress: Equatable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard part.count == 2, let byte = UInt8(part, radix: 16) else { return nil }
            bytes.append(byte)
        }
        // A multicast address cannot be a station's.
        guard bytes[0] & 1 == 0 else { return nil }
        self.bytes = bytes
    }

    /// Six bytes of a unicast address (a saved one, say).
    public init?(bytes: [UInt8]) {
        guard bytes.count == 6, bytes[0] & 1 == 0 else { return nil }
        self.bytes = bytes
    }

    /// A locally administered unicast address derived from `seed` (the TAP's
    /// name), so a VM keeps its address across runs.
    public init(derivedFrom seed: String) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in seed.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        bytes = [0x06, 0x53, 0x4B] + (0..<3).map { UInt8(truncatingIfNeeded: hash >> (8 * UInt64($0))) }
    }

    public var description: String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
    }
}
