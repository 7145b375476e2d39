import Memory
import Synchronization

/// The virtio-mmio transport, register layout version 2 (virtio 1.x §4.2.2):
/// status handshake, feature negotiation, queue setup, interrupt status and
/// acknowledgement, configuration space, reset.
///
/// Register accesses come from vCPU threads; queue work comes from the event
/// loop (through `notify`, which the machine wires to an ioeventfd) or, without
/// ioeventfd, from the vCPU that wrote QueueNotify. One lock serialises them:
/// a reset in the middle of I/O waits for that I/O and then discards the queues.
///
/// Whatever the driver does wrong, it breaks this device only: rejected
/// features leave FEATURES_OK clear, a corrupt queue sets DEVICE_NEEDS_RESET
/// and raises a configuration-change interrupt, and `onProblem` says why.
public final class VirtioMMIOTransport: BusDevice {
    public static let size: UInt64 = 0x1000
    static let magic: UInt32 = 0x7472_6976 // "virt"
    static let vendor: UInt32 = 0x4B53_4B53 // "SKSK"
    static let configurationStart = 0x100

    enum Register {
        static let magic = 0x000, version = 0x004, deviceID = 0x008, vendorID = 0x00C
        static let deviceFeatures = 0x010, deviceFeaturesSelect = 0x014
        static let driverFeatures = 0x020, driverFeaturesSelect = 0x024
        static let queueSelect = 0x030, queueSizeMaximum = 0x034, queueSize = 0x038
        static let queueReady = 0x044, queueNotify = 0x050
        static let interruptStatus = 0x060, interruptAcknowledge = 0x064, status = 0x070
        static let queueDescriptorLow = 0x080, queueDescriptorHigh = 0x084
        static let queueDriverLow = 0x090, queueDriverHigh = 0x094
        static let queueDeviceLow = 0x0A0, queueDeviceHigh = 0x0A4
        static let sharedMemorySelect = 0x0AC, sharedMemoryLengthLow = 0x0B0, sharedMemoryLengthHigh = 0x0B4
        static let configurationGeneration = 0x0FC
    }

    private struct State: ~Copyable {
        var device: any VirtioDevice
        var status: UInt32 = 0
        var deviceFeaturesSelect: UInt32 = 0
        var driverFeaturesSelect: UInt32 = 0
        var driverFeatures: UInt64 = 0
        var queueSelect: UInt32 = 0
        var queues: [Virtqueue]
        var interruptStatus: UInt32 = 0
        var configurationGeneration: UInt32 = 0
        /// Set when a queue was found corrupt; cleared by reset.
        var broken = false
        /// A restore found the device's configuration changed (another disk
        /// behind it): the interrupt that says so is raised on resume.
        var changedAtRestore = false
        var active: Bool { status & Virtio.Status.driverOK != 0 && !broken }
    }

    public let name: String
    public let deviceType: Virtio.DeviceType
    public let queueCount: Int
    private let memory: GuestMemory
    private let interrupt: any InterruptTrigger
    private let onProblem: @Sendable (String) -> Void
    private let state: Mutex<State>
    private let problems = Atomic<Int>(0)
    static let problemsReported = 20

    /// - Parameter onProblem: told, in a sentence, what the driver got wrong
    ///   (the first `problemsReported` times; `problemCount` counts them all).
    public init(name: String, device: any VirtioDevice, memory: GuestMemory,
                interrupt: any InterruptTrigger, onProblem: @escaping @Sendable (String) -> Void = { _ in }) {
        self.name = name
        self.deviceType = device.type
        let sizes = device.queueSizes
        self.queueCount = sizes.count
        self.memory = memory
        self.interrupt = interrupt
        self.onProblem = onProblem
        self.state = Mutex(State(device: device, queues: sizes.map { Virtqueue(maximumSize: $0) }))
    }

    /// Problems the driver caused so far.
    public var problemCount: Int { problems.load(ordering: .relaxed) }

    /// The device status register (for tests and diagnostics).
    public var status: UInt32 { state.withLock { $0.status } }

    /// The kernel parameter that announces this device to a Linux guest.
    public static func kernelParameter(base: UInt64, irq: UInt32) -> String {
        "virtio_mmio.device=4K@0x\(String(base, radix: 16)):\(irq)"
    }

    // MARK: Bus access (vCPU threads)

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        let offset = Int(offset)
        if offset >= Self.configurationStart {
            state.withLock { $0.device.readConfiguration(offset: offset - Self.configurationStart, into: data) }
            return
        }
        guard data.count == 4, offset % 4 == 0 else {
            data.initializeMemory(as: UInt8.self, repeating: 0)
            report("\(data.count)-byte read of register 0x\(String(offset, radix: 16)) (registers are 32-bit)")
            return
        }
        let value = state.withLock { state in readRegister(offset, &state) }
        data.storeBytes(of: value.littleEndian, as: UInt32.self)
    }

    public func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        let offset = Int(offset)
        if offset >= Self.configurationStart {
            state.withLock { state in
                state.device.writeConfiguration(offset: offset - Self.configurationStart, from: data)
            }
            return
        }
        guard data.count == 4, offset % 4 == 0 else {
            report("\(data.count)-byte write of register 0x\(String(offset, radix: 16)) (registers are 32-bit)")
            return
        }
        let value = UInt32(littleEndian: data.loadUnaligned(as: UInt32.self))
        if offset == Register.queueNotify {
            notify(queue: Int(value))
            return
        }
        let raise = state.withLock { state in writeRegister(offset, value, &state) }
        if raise { interrupt.trigger() }
    }

    private func readRegister(_ offset: Int, _ state: inout State) -> UInt32 {
        let queue = Int(state.queueSelect) < state.queues.count ? Int(state.queueSelect) : nil
        switch offset {
        case Register.magic: return Self.magic
        case Register.version: return 2
        case Register.deviceID: return deviceType.rawValue
        case Register.vendorID: return Self.vendor
        case Register.deviceFeatures:
            let features = state.device.features
            switch state.deviceFeaturesSelect {
            case 0: return UInt32(truncatingIfNeeded: features)
            case 1: return UInt32(truncatingIfNeeded: features >> 32)
            default: return 0
            }
        case Register.queueSizeMaximum: return queue.map { UInt32(state.queues[$0].maximumSize) } ?? 0
        case Register.queueSize: return queue.map { UInt32(state.queues[$0].size) } ?? 0
        case Register.queueReady: return queue.map { state.queues[$0].ready ? 1 : 0 } ?? 0
        case Register.interruptStatus: return state.interruptStatus
        case Register.status: return state.status
        case Register.queueDescriptorLow: return queue.map { UInt32(truncatingIfNeeded: state.queues[$0].descriptorTable) } ?? 0
        case Register.queueDescriptorHigh: return queue.map { UInt32(truncatingIfNeeded: state.queues[$0].descriptorTable >> 32) } ?? 0
        case Register.queueDriverLow: return queue.map { UInt32(truncatingIfNeeded: state.queues[$0].availableRing) } ?? 0
        case Register.queueDriverHigh: return queue.map { UInt32(truncatingIfNeeded: state.queues[$0].availableRing >> 32) } ?? 0
        case Register.queueDeviceLow: return queue.map { UInt32(truncatingIfNeeded: state.queues[$0].usedRing) } ?? 0
        case Register.queueDeviceHigh: return queue.map { UInt32(truncatingIfNeeded: state.queues[$0].usedRing >> 32) } ?? 0
        // No shared memory regions: their length reads as -1 (§4.2.2).
        case Register.sharedMemoryLengthLow, Register.sharedMemoryLengthHigh: return 0xFFFF_FFFF
        case Register.configurationGeneration: return state.configurationGeneration
        default: return 0
        }
    }

    /// Applies a register write; returns whether to raise an interrupt.
    private func writeRegister(_ offset: Int, _ value: UInt32, _ state: inout State) -> Bool {
        switch offset {
        case Register.deviceFeaturesSelect: state.deviceFeaturesSelect = value
        case Register.driverFeaturesSelect: state.driverFeaturesSelect = value
        case Register.driverFeatures:
            guard state.status & Virtio.Status.featuresOK == 0 else {
                report("driver features written after FEATURES_OK")
                return false
            }
            switch state.driverFeaturesSelect {
            case 0: state.driverFeatures = state.driverFeatures & ~0xFFFF_FFFF | UInt64(value)
            case 1: state.driverFeatures = state.driverFeatures & 0xFFFF_FFFF | UInt64(value) << 32
            default: break
            }
        case Register.queueSelect: state.queueSelect = value
        case Register.queueSize, Register.queueReady, Register.queueDescriptorLow, Register.queueDescriptorHigh,
             Register.queueDriverLow, Register.queueDriverHigh, Register.queueDeviceLow, Register.queueDeviceHigh:
            return writeQueueRegister(offset, value, &state)
        case Register.interruptAcknowledge:
            state.interruptStatus &= ~value
        case Register.status:
            return writeStatus(value, &state)
        case Register.sharedMemorySelect: break
        default:
            report("write of 0x\(String(value, radix: 16)) to read-only or unknown register 0x\(String(offset, radix: 16))")
        }
        return false
    }

    private func writeQueueRegister(_ offset: Int, _ value: UInt32, _ state: inout State) -> Bool {
        let index = Int(state.queueSelect)
        guard index < state.queues.count else {
            report("queue register 0x\(String(offset, radix: 16)) written with queue \(index) selected; the device has \(state.queues.count)")
            return false
        }
        if offset == Register.queueReady {
            if value == 0 {
                state.queues[index].ready = false
                return false
            }
            state.queues[index].ready = true
            if state.active { return validateQueues(&state) }
            return false
        }
        guard !state.queues[index].ready else {
            report("queue \(index) reconfigured while ready")
            return false
        }
        func low(_ old: UInt64) -> UInt64 { old & ~0xFFFF_FFFF | UInt64(value) }
        func high(_ old: UInt64) -> UInt64 { old & 0xFFFF_FFFF | UInt64(value) << 32 }
        switch offset {
        case Register.queueSize: state.queues[index].size = UInt16(truncatingIfNeeded: min(value, 0xFFFF))
        case Register.queueDescriptorLow: state.queues[index].descriptorTable = low(state.queues[index].descriptorTable)
        case Register.queueDescriptorHigh: state.queues[index].descriptorTable = high(state.queues[index].descriptorTable)
        case Register.queueDriverLow: state.queues[index].availableRing = low(state.queues[index].availableRing)
        case Register.queueDriverHigh: state.queues[index].availableRing = high(state.queues[index].availableRing)
        case Register.queueDeviceLow: state.queues[index].usedRing = low(state.queues[index].usedRing)
        case Register.queueDeviceHigh: state.queues[index].usedRing = high(state.queues[index].usedRing)
        default: break
        }
        return false
    }

    private func writeStatus(_ value: UInt32, _ state: inout State) -> Bool {
        if value == 0 {
            resetLocked(&state)
            return false
        }
        let added = value & ~state.status
        guard value & state.status == state.status else {
            report("driver cleared status bits (0x\(String(state.status, radix: 16)) → 0x\(String(value, radix: 16))) without a reset")
            return false
        }
        var accepted = value
        if added & Virtio.Status.featuresOK != 0 {
            let offered = state.device.features
            let unknown = state.driverFeatures & ~offered
            if unknown != 0 || state.driverFeatures & Virtio.Feature.version1 == 0 {
                report(unknown != 0
                       ? "driver accepted features it was not offered (0x\(String(unknown, radix: 16)))"
                       : "driver did not accept VERSION_1; legacy virtio is not supported")
                accepted &= ~Virtio.Status.featuresOK
            }
        }
        if added & Virtio.Status.driverOK != 0 && accepted & Virtio.Status.featuresOK == 0 {
            report("DRIVER_OK without FEATURES_OK")
            accepted &= ~Virtio.Status.driverOK
        }
        state.status = accepted | (state.status & Virtio.Status.deviceNeedsReset)
        guard added & Virtio.Status.driverOK != 0, accepted & Virtio.Status.driverOK != 0 else { return false }
        let features = state.driverFeatures
        for index in state.queues.indices {
            state.queues[index].eventIndex = features & Virtio.Feature.eventIndex != 0
            state.queues[index].indirectDescriptors = features & Virtio.Feature.indirectDescriptors != 0
        }
        if validateQueues(&state) { return true }
        state.device.activate(features: features)
        // Chains made available before DRIVER_OK were not acted on: do so now.
        var raise = false
        for queue in state.queues.indices where state.queues[queue].ready {
            raise = processLocked(queue: queue, &state) || raise
        }
        return raise
    }

    /// Checks every ready queue; on a bad one, marks the device broken and returns true (interrupt).
    private func validateQueues(_ state: inout State) -> Bool {
        for (index, queue) in state.queues.enumerated() where queue.ready {
            do { try queue.validate(in: memory) } catch {
                markBroken(queue: index, error, &state)
                return true
            }
        }
        return false
    }

    private func markBroken(queue: Int, _ error: VirtqueueError, _ state: inout State) {
        state.broken = true
        state.status |= Virtio.Status.deviceNeedsReset
        state.interruptStatus |= Virtio.InterruptReason.configurationChange
        report("queue \(queue): \(error); device stopped until the driver resets it")
    }

    private func resetLocked(_ state: inout State) {
        for index in state.queues.indices { state.queues[index].reset() }
        state.status = 0
        state.driverFeatures = 0
        state.deviceFeaturesSelect = 0
        state.driverFeaturesSelect = 0
        state.queueSelect = 0
        state.interruptStatus = 0
        state.broken = false
        state.device.reset()
    }

    // MARK: Queue work (event loop)

    /// The driver notified `queue` (QueueNotify, or its ioeventfd).
    public func notify(queue: Int) {
        let raise = state.withLock { state -> Bool in
            guard state.active else { return false }
            guard queue >= 0, queue < state.queues.count else {
                report("notification for queue \(queue); the device has \(state.queues.count)")
                return false
            }
            guard state.queues[queue].ready else { return false }
            return processLocked(queue: queue, &state)
        }
        if raise { interrupt.trigger() }
    }

    /// The device's host side has something (a packet from the TAP, say).
    public func backendReady() {
        let raise = state.withLock { state -> Bool in
            guard state.active else { return false }
            return runDevice(&state, queue: nil) { device, queues throws(VirtqueueError) in try device.processBackend(&queues) }
        }
        if raise { interrupt.trigger() }
    }

    private func processLocked(queue: Int, _ state: inout State) -> Bool {
        runDevice(&state, queue: queue) { device, queues throws(VirtqueueError) in try device.process(queue: queue, &queues) }
    }

    /// Lends the queues to the device; afterwards, decides on an interrupt.
    /// `queue` is the one notified (nil: host-side work), named if it fails.
    private func runDevice(_ state: inout State, queue notified: Int?,
                          _ body: (any VirtioDevice, inout VirtioQueues) throws(VirtqueueError) -> Void) -> Bool {
        let onMalformed: (Int, VirtqueueError) -> Void = { [self] queue, error in
            report("queue \(queue): \(error); request returned unprocessed")
        }
        var queues = VirtioQueues(memory: memory, queues: state.queues, reportMalformed: onMalformed)
        var failure: (Int, VirtqueueError)?
        do {
            try body(state.device, &queues)
        } catch {
            failure = (notified ?? queues.lastQueue ?? 0, error)
        }
        state.queues = queues.queues
        if let (queue, error) = failure {
            markBroken(queue: queue, error, &state)
            return true
        }
        var raise = false
        for queue in queues.completedQueues.sorted() {
            let wanted: Bool
            do { wanted = try state.queues[queue].needsInterrupt(in: memory) } catch {
                markBroken(queue: queue, error, &state)
                return true
            }
            if wanted { raise = true }
        }
        if raise { state.interruptStatus |= Virtio.InterruptReason.usedBuffer }
        return raise
    }

    private func report(_ problem: String) {
        let count = problems.add(1, ordering: .relaxed).newValue
        if count <= Self.problemsReported {
            onProblem("\(name): \(problem)")
        } else if count == Self.problemsReported + 1 {
            onProblem("\(name): further problems not reported")
        }
    }
}

extension VirtioMMIOTransport: SnapshotDevice {
    /// Configuration-space bytes compared across a save and a restore (every
    /// device's fits: virtio-blk's is 24 bytes, virtio-net's 12, vsock's 8).
    static let comparedConfigurationSize = 64

    private static func configurationBytes(_ device: any VirtioDevice) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: comparedConfigurationSize)
        bytes.withUnsafeMutableBytes { device.readConfiguration(offset: 0, into: $0) }
        return bytes
    }

    /// The transport's registers, every queue, and the configuration space
    /// the driver saw. The devices behind it keep no guest-visible state of
    /// their own (their configuration comes from their host backends, which a
    /// restore re-opens, possibly onto another disk: see `restoreState`).
    public func saveState() -> [UInt8] {
        state.withLock { state in
            var out = StateWriter()
            out.put(deviceType.rawValue)
            for value in [state.status, state.deviceFeaturesSelect, state.driverFeaturesSelect, state.queueSelect,
                          state.interruptStatus, state.configurationGeneration] { out.put(value) }
            out.put(state.driverFeatures)
            out.put(state.broken)
            out.put(UInt32(state.queues.count))
            for queue in state.queues { queue.save(into: &out) }
            out.put(bytes: Self.configurationBytes(state.device))
            return out.bytes
        }
    }

    /// Applies saved state; a device that was running is activated with the
    /// features its driver accepted, and its rings are checked against this
    /// machine's memory before it trusts them. When its configuration space
    /// differs from the saved one (a restore with another disk behind it, of
    /// another size), the driver is told as a running device would tell it
    /// (virtio 1.x §2.5.1): a new configuration generation and a
    /// configuration-change interrupt, raised by `resumeAfterRestore`.
    public func restoreState(_ bytes: [UInt8]) throws(DeviceStateError) {
        var input = StateReader(bytes, what: name)
        let type: UInt32 = try input.get()
        guard type == deviceType.rawValue else {
            throw DeviceStateError("\(name): saved state is of virtio device type \(type), this is type \(deviceType.rawValue)")
        }
        let status: UInt32 = try input.get()
        let deviceFeaturesSelect: UInt32 = try input.get(), driverFeaturesSelect: UInt32 = try input.get()
        let queueSelect: UInt32 = try input.get(), interruptStatus: UInt32 = try input.get()
        let generation: UInt32 = try input.get()
        let driverFeatures: UInt64 = try input.get()
        let broken = try input.getBool()
        let count = Int(try input.get(UInt32.self))
        try state.withLock { state throws(DeviceStateError) in
            guard count == state.queues.count else {
                throw DeviceStateError("\(name): saved state has \(count) queues, the device \(state.queues.count)")
            }
            var queues: [Virtqueue] = []
            for queue in state.queues { queues.append(try queue.restored(from: &input)) }
            let savedConfiguration = try input.getBytes(limit: Self.comparedConfigurationSize)
            try input.finish()
            guard driverFeatures & ~state.device.features == 0 else {
                throw DeviceStateError("\(name): saved driver features 0x\(String(driverFeatures, radix: 16)) are not all offered here")
            }
            if status & Virtio.Status.driverOK != 0 && !broken {
                for (index, queue) in queues.enumerated() where queue.ready {
                    do { try queue.validate(in: memory) } catch {
                        throw DeviceStateError("\(name): saved queue \(index) does not fit this machine's memory: \(error)")
                    }
                }
            }
            state.status = status
            state.deviceFeaturesSelect = deviceFeaturesSelect
            state.driverFeaturesSelect = driverFeaturesSelect
            state.driverFeatures = driverFeatures
            state.queueSelect = queueSelect
            state.interruptStatus = interruptStatus
            state.configurationGeneration = generation
            state.broken = broken
            state.queues = queues
            state.changedAtRestore = false
            if state.active {
                state.device.activate(features: driverFeatures)
                state.device.restored()
                if savedConfiguration != Self.configurationBytes(state.device) {
                    state.configurationGeneration &+= 1
                    state.interruptStatus |= Virtio.InterruptReason.configurationChange
                    state.changedAtRestore = true
                }
            }
        }
    }

    /// After a restore: serves whatever the driver made available while the
    /// snapshot was taken (its notifications went to the old process), and
    /// asks the backend for what it has.
    public func resumeAfterRestore() {
        if state.withLock({ $0.changedAtRestore }) { interrupt.trigger() }
        for queue in 0..<queueCount { notify(queue: queue) }
        backendReady()
    }
}
