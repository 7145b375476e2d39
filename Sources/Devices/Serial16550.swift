import Synchronization

/// A 16550A UART: the guest's console. Transmitted bytes go to `output`
/// at once (the transmitter is always empty); received bytes wait in a FIFO
/// until the guest reads them. Interrupts (receive data available, transmitter
/// empty) follow the 16550's identification priorities, and the line changes
/// level only when the pending state does.
public final class Serial16550: BusDevice {
    /// Register offsets from the base port.
    enum Register {
        static let data: UInt64 = 0          // RBR / THR, DLL when DLAB
        static let interruptEnable: UInt64 = 1 // IER, DLM when DLAB
        static let interruptID: UInt64 = 2     // IIR (read) / FCR (write)
        static let lineControl: UInt64 = 3
        static let modemControl: UInt64 = 4
        static let lineStatus: UInt64 = 5
        static let modemStatus: UInt64 = 6
        static let scratch: UInt64 = 7
    }

    enum Bit {
        static let ierReceiveData: UInt8 = 0x01
        static let ierTransmitEmpty: UInt8 = 0x02
        static let lcrDLAB: UInt8 = 0x80
        static let mcrLoopback: UInt8 = 0x10
        static let lsrDataReady: UInt8 = 0x01
        static let lsrTransmitEmpty: UInt8 = 0x20
        static let lsrIdle: UInt8 = 0x40
        static let iirNone: UInt8 = 0x01
        static let iirTransmitEmpty: UInt8 = 0x02
        static let iirReceiveData: UInt8 = 0x04
        static let iirFIFOEnabled: UInt8 = 0xC0
        static let fcrEnable: UInt8 = 0x01
        static let fcrClearReceive: UInt8 = 0x02
    }

    /// Host-side receive buffer; bytes beyond it are refused (the caller retries).
    public static let receiveCapacity = 4096

    struct State {
        var receive: [UInt8] = []
        var receiveHead = 0
        var interruptEnable: UInt8 = 0
        var lineControl: UInt8 = 0x03
        var modemControl: UInt8 = 0x08
        var scratch: UInt8 = 0
        var divisorLow: UInt8 = 0x0C // 9600 baud
        var divisorHigh: UInt8 = 0
        var fifoEnabled = false
        var transmitEmptyPending = false
        var lineHigh = false

        var receivedCount: Int { receive.count - receiveHead }
        var dlab: Bool { lineControl & Bit.lcrDLAB != 0 }
        var loopback: Bool { modemControl & Bit.mcrLoopback != 0 }

        var interruptIdentification: UInt8 {
            if interruptEnable & Bit.ierReceiveData != 0 && receivedCount > 0 { return Bit.iirReceiveData }
            if interruptEnable & Bit.ierTransmitEmpty != 0 && transmitEmptyPending { return Bit.iirTransmitEmpty }
            return Bit.iirNone
        }

        mutating func pop() -> UInt8 {
            guard receiveHead < receive.count else { return 0 }
            let byte = receive[receiveHead]
            receiveHead += 1
            if receiveHead == receive.count { receive.removeAll(keepingCapacity: true); receiveHead = 0 }
            return byte
        }
    }

    private let state = Mutex(State())
    private let interrupt: any InterruptLine
    private let output: @Sendable (UInt8) -> Void
    /// Called (on the reading vCPU's thread, outside the lock) when the guest
    /// has read the last received byte: the host's input relay sends more
    /// then, instead of polling for room.
    private let receiveDrained = Mutex<(@Sendable () -> Void)?>(nil)

    public init(interrupt: any InterruptLine, output: @escaping @Sendable (UInt8) -> Void) {
        self.interrupt = interrupt
        self.output = output
    }

    /// Queues bytes from the host for the guest; returns how many fit.
    @discardableResult
    public func receive<Bytes: Collection>(_ bytes: Bytes) -> Int where Bytes.Element == UInt8 {
        state.withLock { state in
            let room = max(0, Self.receiveCapacity - state.receivedCount)
            let accepted = min(room, bytes.count)
            state.receive.append(contentsOf: bytes.prefix(accepted))
            updateLine(&state)
            return accepted
        }
    }

    /// Sets the callback for "the guest read every received byte".
    public func whenReceiveDrained(_ callback: (@Sendable () -> Void)?) {
        receiveDrained.withLock { $0 = callback }
    }

    /// Bytes received from the host that the guest has not read yet.
    public var pendingInput: Int { state.withLock { $0.receivedCount } }

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        guard !data.isEmpty else { return }
        let (value, drained): (UInt8, Bool) = state.withLock { state in
            let before = state.receivedCount
            let value = readRegister(offset, &state)
            updateLine(&state)
            return (value, before > 0 && state.receivedCount == 0)
        }
        if drained, let callback = receiveDrained.withLock({ $0 }) { callback() }
        data[0] = value
        for index in data.indices.dropFirst() { data[index] = 0 }
    }

    public func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        guard let value = data.first else { return }
        state.withLock { state in
            writeRegister(offset, value, &state)
            updateLine(&state)
        }
    }

    private func readRegister(_ offset: UInt64, _ state: inout State) -> UInt8 {
        switch offset {
        case Register.data:
            return state.dlab ? state.divisorLow : state.pop()
        case Register.interruptEnable:
            return state.dlab ? state.divisorHigh : state.interruptEnable
        case Register.interruptID:
            let id = state.interruptIdentification
            // Reading IIR while it reports "transmitter empty" acknowledges that interrupt.
            if id == Bit.iirTransmitEmpty { state.transmitEmptyPending = false }
            return id | (state.fifoEnabled ? Bit.iirFIFOEnabled : 0)
        case Register.lineControl:
            return state.lineControl
        case Register.modemControl:
            return state.modemControl
        case Register.lineStatus:
            return (state.receivedCount > 0 ? Bit.lsrDataReady : 0) | Bit.lsrTransmitEmpty | Bit.lsrIdle
        case Register.modemStatus:
            if state.loopback {
                // Loopback wires DTR→DSR, RTS→CTS, OUT1→RI, OUT2→DCD.
                let mcr = state.modemControl
                return (mcr & 0x01) << 5 | (mcr & 0x02) << 3 | (mcr & 0x04) << 4 | (mcr & 0x08) << 4
            }
            return 0xB0 // DCD, DSR, CTS: a peer is always there
        case Register.scratch:
            return state.scratch
        default:
            return 0xFF
        }
    }

    private func writeRegister(_ offset: UInt64, _ value: UInt8, _ state: inout State) {
        switch offset {
        case Register.data:
            if state.dlab {
                state.divisorLow = value
            } else {
                if state.loopback {
                    if state.receivedCount < Self.receiveCapacity { state.receive.append(value) }
                } else {
                    output(value)
                }
                state.transmitEmptyPending = true
            }
        case Register.interruptEnable:
            if state.dlab {
                state.divisorHigh = value
            } else {
                let enablingTransmit = value & Bit.ierTransmitEmpty != 0
                    && state.interruptEnable & Bit.ierTransmitEmpty == 0
                state.interruptEnable = value & 0x0F
                // The transmitter is empty, so enabling its interrupt raises one at once.
                if enablingTransmit { state.transmitEmptyPending = true }
            }
        case Register.interruptID:
            state.fifoEnabled = value & Bit.fcrEnable != 0
            if value & Bit.fcrClearReceive != 0 {
                state.receive.removeAll(keepingCapacity: true)
                state.receiveHead = 0
            }
        case Register.lineControl:
            state.lineControl = value
        case Register.modemControl:
            state.modemControl = value & 0x1F
        case Register.scratch:
            state.scratch = value
        default:
            break // LSR and MSR are read-only
        }
    }

    private func updateLine(_ state: inout State) {
        let high = state.interruptIdentification != Bit.iirNone
        if high != state.lineHigh {
            state.lineHigh = high
            interrupt.set(high: high)
        }
    }
}

extension Serial16550: SnapshotDevice {
    /// Registers, the divisor, the pending transmit-empty interrupt, the line's
    /// level and the bytes received but not yet read.
    public func saveState() -> [UInt8] {
        state.withLock { state in
            var out = StateWriter()
            out.put(bytes: state.receive[state.receiveHead...])
            for register in [state.interruptEnable, state.lineControl, state.modemControl, state.scratch,
                             state.divisorLow, state.divisorHigh] { out.put(register) }
            out.put(state.fifoEnabled)
            out.put(state.transmitEmptyPending)
            out.put(state.lineHigh)
            return out.bytes
        }
    }

    public func restoreState(_ bytes: [UInt8]) throws(DeviceStateError) {
        var input = StateReader(bytes, what: "16550 UART")
        var restored = State()
        restored.receive = try input.getBytes(limit: Self.receiveCapacity)
        restored.interruptEnable = try input.get() & 0x0F
        restored.lineControl = try input.get()
        restored.modemControl = try input.get() & 0x1F
        restored.scratch = try input.get()
        restored.divisorLow = try input.get()
        restored.divisorHigh = try input.get()
        restored.fifoEnabled = try input.getBool()
        restored.transmitEmptyPending = try input.getBool()
        let lineHigh = try input.getBool()
        try input.finish()
        state.withLock { state in
            state = restored
            // The interrupt controller's saved state has the line as it was;
            // driving it again keeps a shared line's other inputs in step.
            state.lineHigh = lineHigh
            if lineHigh { interrupt.set(high: true) }
        }
    }
}
