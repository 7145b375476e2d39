import Synchronization

/// An interrupt line a device drives. The machine wires it to the in-kernel
/// IRQ chip; a test records what the device did with it.
public protocol InterruptLine: Sendable {
    /// Drives the line to `high`. Devices call it only when the level changes,
    /// so an edge-triggered controller sees one edge per new interrupt.
    func set(high: Bool)
}

/// A line connected to nothing (for devices whose interrupts nobody wants).
public struct DisconnectedInterruptLine: InterruptLine {
    public init() {}
    public func set(high: Bool) {}
}

/// Devices sharing one interrupt line, as ISA serial ports share IRQ 4: the
/// line is high while any of them holds it high (a wired OR). Each device
/// gets its own input, so one lowering its request cannot hide another's.
public final class SharedInterruptLine: Sendable {
    private let line: any InterruptLine
    private let levels = Mutex<UInt64>(0)

    public init(_ line: any InterruptLine) { self.line = line }

    /// The input for device number `index` (0–63).
    public func input(_ index: Int) -> any InterruptLine {
        precondition((0..<64).contains(index), "a shared line has 64 inputs")
        return Input(shared: self, bit: 1 << UInt64(index))
    }

    private struct Input: InterruptLine {
        let shared: SharedInterruptLine
        let bit: UInt64
        func set(high: Bool) { shared.drive(bit, high: high) }
    }

    private func drive(_ bit: UInt64, high: Bool) {
        levels.withLock { levels in
            let wasHigh = levels != 0
            if high { levels |= bit } else { levels &= ~bit }
            // Under the lock, so that two inputs cannot reorder the line's edges.
            if (levels != 0) != wasHigh { line.set(high: levels != 0) }
        }
    }
}

/// An edge-triggered interrupt: each `trigger` delivers one. Virtio devices
/// use it (the machine backs it with a KVM irqfd, so no VM exit is involved);
/// the guest learns why from the device's interrupt status register.
public protocol InterruptTrigger: Sendable {
    func trigger()
}
