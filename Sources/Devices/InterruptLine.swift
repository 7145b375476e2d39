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
