import Memory
import Synchronization

/// virtio-vsock (virtio 1.2 §5.10): stream sockets between the guest and
/// host programs, without a network. The guest's CID sits in configuration
/// space; packets travel on the receive (0) and transmit (1) queues; the
/// event queue (2) carries TRANSPORT_RESET after a restore, which tells the
/// guest that every connection it had is gone. What the packets mean on the
/// host is `VsockUnixBackend`'s business.
public final class VirtioVsock: VirtioDevice {
    public static let receiveQueue = 0
    public static let transmitQueue = 1
    public static let eventQueue = 2
    /// The largest packet a driver may send: Linux sends at most 64 KiB of payload.
    static let maximumTransmit = VsockHeader.size + 64 * 1024
    /// The lowest CID a guest may have (0–2 are reserved for the hypervisor, loopback and host).
    public static let minimumGuestCID: UInt64 = 3
    /// VIRTIO_VSOCK_EVENT_TRANSPORT_RESET.
    static let transportReset: UInt32 = 0

    public let type = Virtio.DeviceType.socket
    public let queueSizes: [UInt16] = [256, 256, 16]
    /// Stream sockets only (no VIRTIO_VSOCK_F_SEQPACKET).
    public let features = Virtio.Feature.version1 | Virtio.Feature.indirectDescriptors | Virtio.Feature.eventIndex
    public let guestCID: UInt64

    private struct State: ~Copyable {
        let backend: VsockUnixBackend
        var resetPending = false
        var malformed = 0
    }
    private let state: Mutex<State>

    public init(guestCID: UInt64, backend: VsockUnixBackend) {
        precondition(guestCID >= Self.minimumGuestCID && guestCID <= UInt64(UInt32.max - 1), "checked by the configuration")
        self.guestCID = guestCID
        self.state = Mutex(State(backend: backend))
    }

    /// The descriptor the device loop watches for host-side news.
    public var pollFD: Int32 { state.withLock { $0.backend.pollFD } }

    public var counters: VsockUnixBackend.Counters { state.withLock { $0.backend.counters } }
    /// Packets the driver sent that were too short or longer than their header said.
    public var malformedPackets: Int { state.withLock { $0.malformed } }
    public var connectionCount: Int { state.withLock { $0.backend.connectionCount } }

    public func readConfiguration(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        // struct virtio_vsock_config { le64 guest_cid; }
        readConfigurationBytes((0..<8).map { UInt8(truncatingIfNeeded: guestCID >> (8 * UInt64($0))) }, offset: offset, into: data)
    }

    public func reset() {
        state.withLock { $0.backend.dropAll() }
    }

    /// After a restore the host streams of the old process are gone: the
    /// guest hears so through the event queue and resets its sockets.
    public func restored() {
        state.withLock { state in
            state.backend.dropAll()
            state.resetPending = true
        }
    }

    public func process(queue: Int, _ queues: inout VirtioQueues) throws(VirtqueueError) {
        try state.withLock { state throws(VirtqueueError) in
            if queue == Self.transmitQueue { try transmit(&queues, &state) }
            if queue == Self.eventQueue { try deliverEvent(&queues, &state) }
            try deliver(&queues, state.backend)
        }
    }

    public func processBackend(_ queues: inout VirtioQueues) throws(VirtqueueError) {
        try state.withLock { state throws(VirtqueueError) in
            state.backend.pollHost()
            try deliverEvent(&queues, &state)
            try deliver(&queues, state.backend)
        }
    }

    private func transmit(_ queues: inout VirtioQueues, _ state: inout State) throws(VirtqueueError) {
        let memory = queues.memory
        let backend = state.backend
        var malformed = 0
        try queues.drain(Self.transmitQueue) { chain in
            let total = chain.readableLength
            guard total >= VsockHeader.size, total <= Self.maximumTransmit,
                  let bytes = readGuestBytes(chain.readable, length: total, from: memory),
                  let header = VsockHeader(bytes), Int(header.length) <= total - VsockHeader.size else {
                malformed += 1
                return 0
            }
            backend.receive(header, payload: Array(bytes[VsockHeader.size..<VsockHeader.size + Int(header.length)]))
            return 0
        }
        state.malformed += malformed
    }

    /// Fills receive buffers with what the backend has, until either runs out.
    private func deliver(_ queues: inout VirtioQueues, _ backend: VsockUnixBackend) throws(VirtqueueError) {
        let memory = queues.memory
        while true {
            guard let chain = try queues.next(Self.receiveQueue) else {
                // No buffers: the driver's next ones notify us and we go on.
                if try queues.enableNotifications(Self.receiveQueue) { continue }
                return
            }
            let room = chain.writableLength - VsockHeader.size
            guard room >= 0 else {
                try queues.complete(Self.receiveQueue, head: chain.head, length: 0) // useless buffer: returned empty
                continue
            }
            guard let (header, payload) = backend.nextPacket(maximumPayload: room) else {
                queues.undoNext(Self.receiveQueue)
                return
            }
            writeGuestBytes(header.bytes + payload, to: chain.writable, in: memory)
            try queues.complete(Self.receiveQueue, head: chain.head, length: UInt32(VsockHeader.size + payload.count))
        }
    }

    private func deliverEvent(_ queues: inout VirtioQueues, _ state: inout State) throws(VirtqueueError) {
        guard state.resetPending, let chain = try queues.next(Self.eventQueue) else { return }
        guard chain.writableLength >= 4 else {
            try queues.complete(Self.eventQueue, head: chain.head, length: 0)
            return
        }
        writeGuestBytes((0..<4).map { UInt8(truncatingIfNeeded: Self.transportReset >> (8 * UInt32($0))) }, to: chain.writable, in: memory(queues))
        try queues.complete(Self.eventQueue, head: chain.head, length: 4)
        state.resetPending = false
    }

    private func memory(_ queues: VirtioQueues) -> GuestMemory { queues.memory }
}
