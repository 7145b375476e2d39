import Synchronization

/// The boot-marker port: the guest writes a phase code, the VMM stamps it with
/// the host's monotonic clock. Codes below 0x10 come from the guest init
/// (guest/init/boot_marker.h must agree); 0x10 is the VMM's own first-instruction
/// trampoline. A write to `valuePort` sets a value the next code carries.
public final class BootMarkerDevice: BusDevice {
    public static let port: UInt64 = 0x440
    /// Two ports: code at +0, value at +1.
    public static let length: UInt64 = 2

    public enum Phase: UInt8, Sendable, CaseIterable, Codable {
        case firstInstruction = 0x10
        case initStarted = 0x01
        case workloadStarted = 0x02
        case workloadExited = 0x03
        case shutdownRequested = 0x04
        /// `skiff run`: the image's root is mounted and the output lines are
        /// open; standard input may flow from here on.
        case containerReady = 0x05
        /// The guest waits for its hand-over (`HandoverMailbox`): the point a
        /// snapshot is taken at, so that every restore starts here.
        case guestReady = 0x06
        /// The guest read a hand-over chunk and asks for the next.
        case handoverMore = 0x07
        /// The guest has its hand-over: randomness reseeded, clock set. After
        /// a restore, the first sign of the guest running on.
        case handoverTaken = 0x08

        public var label: String {
            switch self {
            case .firstInstruction: return "first guest instruction"
            case .initStarted: return "init started"
            case .workloadStarted: return "workload started"
            case .workloadExited: return "workload exited"
            case .shutdownRequested: return "shutdown requested"
            case .containerReady: return "container root ready"
            case .guestReady: return "guest ready for hand-over"
            case .handoverMore: return "hand-over continued"
            case .handoverTaken: return "hand-over taken"
            }
        }
    }

    public struct Event: Sendable, Equatable {
        /// Known phase, or nil for a code this VMM does not know.
        public let phase: Phase?
        public let code: UInt8
        public let value: UInt8
        /// Host CLOCK_MONOTONIC, nanoseconds.
        public let time: UInt64
    }

    private let clock: @Sendable () -> UInt64
    private let state = Mutex<(value: UInt8, events: [Event])>((0, []))
    private let onEvent: (@Sendable (Event) -> Void)?
    /// A second listener, set once the owner exists (the machine's hand-over and snapshot triggers).
    private let observer = Mutex<(@Sendable (Event) -> Void)?>(nil)

    /// Events kept; a guest that writes more is only breaking its own report.
    public static let eventLimit = 1024

    public init(clock: @escaping @Sendable () -> UInt64, onEvent: (@Sendable (Event) -> Void)? = nil) {
        self.clock = clock
        self.onEvent = onEvent
    }

    public var events: [Event] { state.withLock { $0.events } }

    /// Calls `handler` with every event, on the vCPU thread that wrote it,
    /// before that vCPU's port write completes.
    public func observe(_ handler: @escaping @Sendable (Event) -> Void) {
        observer.withLock { $0 = handler }
    }

    /// The first time `phase` was reached, if it was.
    public func firstTime(of phase: Phase) -> Event? { events.first { $0.phase == phase } }

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        for index in data.indices { data[index] = 0 }
    }

    public func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        guard let byte = data.first else { return }
        if offset == 1 {
            state.withLock { $0.value = byte }
            return
        }
        let now = clock()
        let event: Event = state.withLock { state in
            let event = Event(phase: Phase(rawValue: byte), code: byte, value: state.value, time: now)
            if state.events.count < Self.eventLimit { state.events.append(event) }
            state.value = 0
            return event
        }
        onEvent?(event)
        observer.withLock { $0 }?(event)
    }
}

extension BootMarkerDevice: SnapshotDevice {
    /// The value register (a value written before a snapshot belongs to the
    /// code written after it). The events are this process's timeline, not
    /// the guest's state.
    public func saveState() -> [UInt8] {
        var out = StateWriter()
        out.put(state.withLock { $0.value })
        return out.bytes
    }

    public func restoreState(_ bytes: [UInt8]) throws(DeviceStateError) {
        var input = StateReader(bytes, what: "boot-marker port")
        let value: UInt8 = try input.get()
        try input.finish()
        state.withLock { $0.value = value }
    }
}
