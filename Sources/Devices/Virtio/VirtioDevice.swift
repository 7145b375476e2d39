import Memory

/// A virtio device type (block, network, entropy): its features, its
/// configuration space and what it does with its queues. Transport-neutral:
/// `VirtioMMIOTransport` owns the queues and calls these methods, always
/// under its lock; the devices themselves hold only immutable configuration
/// and host handles (and atomic counters), so they are plainly Sendable.
public protocol VirtioDevice: AnyObject, Sendable {
    var type: Virtio.DeviceType { get }
    /// Feature bits offered, the generic ones (VERSION_1, ring features) included.
    var features: UInt64 { get }
    /// Maximum size of each of the device's queues.
    var queueSizes: [UInt16] { get }

    func readConfiguration(offset: Int, into data: UnsafeMutableRawBufferPointer)
    func writeConfiguration(offset: Int, from data: UnsafeRawBufferPointer)

    /// The driver set DRIVER_OK having accepted `features`.
    func activate(features: UInt64)
    /// The driver wrote 0 to the status register.
    func reset()
    /// The machine was restored from a snapshot with this device running:
    /// host-side state of the process that saved it is gone.
    func restored()

    /// The driver notified queue `queue`: serve what it made available.
    func process(queue: Int, _ queues: inout VirtioQueues) throws(VirtqueueError)
    /// Something on the host side is ready (a packet on the TAP, say).
    func processBackend(_ queues: inout VirtioQueues) throws(VirtqueueError)
}

extension VirtioDevice {
    public func writeConfiguration(offset: Int, from data: UnsafeRawBufferPointer) {}
    public func activate(features: UInt64) {}
    public func reset() {}
    public func restored() {}
    public func processBackend(_ queues: inout VirtioQueues) throws(VirtqueueError) {}
}

/// Reads little-endian configuration-space bytes from a byte image: what
/// devices whose configuration is a fixed struct need.
func readConfigurationBytes(_ image: [UInt8], offset: Int, into data: UnsafeMutableRawBufferPointer) {
    for index in 0..<data.count {
        let position = offset + index
        data[index] = position >= 0 && position < image.count ? image[position] : 0
    }
}

/// A device's queues, as a device sees them while it works: chains that break
/// the rules are returned to the driver and reported here, so that devices
/// only ever see valid ones.
public struct VirtioQueues {
    public let memory: GuestMemory
    var queues: [Virtqueue]
    /// Queues with chains completed since the transport last looked.
    var completedQueues: Set<Int> = []
    /// The queue touched last (what a failure is reported against).
    var lastQueue: Int?
    let reportMalformed: (Int, VirtqueueError) -> Void

    /// The next valid chain of `queue`, or nil if none is available.
    public mutating func next(_ queue: Int) throws(VirtqueueError) -> DescriptorChain? {
        lastQueue = queue
        while let request = try queues[queue].next(in: memory) {
            switch request {
            case let .chain(chain):
                return chain
            case let .malformed(head, error):
                reportMalformed(queue, error)
                try complete(queue, head: head, length: 0)
            }
        }
        return nil
    }

    /// Puts the chain `next` just returned back, for later.
    public mutating func undoNext(_ queue: Int) { queues[queue].undoNext() }

    public mutating func complete(_ queue: Int, head: UInt16, length: UInt32) throws(VirtqueueError) {
        try queues[queue].complete(head: head, length: length, in: memory)
        completedQueues.insert(queue)
    }

    /// See `Virtqueue.enableNotifications`: true if more chains arrived.
    public mutating func enableNotifications(_ queue: Int) throws(VirtqueueError) -> Bool {
        try queues[queue].enableNotifications(in: memory)
    }

    /// Serves every available chain of `queue` with `serve`, which returns the
    /// bytes it wrote, until the ring is empty with notifications re-enabled.
    public mutating func drain(_ queue: Int, _ serve: (DescriptorChain) -> UInt32) throws(VirtqueueError) {
        repeat {
            while let chain = try next(queue) {
                try complete(queue, head: chain.head, length: serve(chain))
            }
        } while try enableNotifications(queue)
    }
}
