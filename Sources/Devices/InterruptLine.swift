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

/// An edge-triggered interrupt: each `trigger` delivers one. Virtio devices
/// use it (the machine backs it with a KVM irqfd, so no VM exit is involved);
/// the guest learns why from the device's interrupt status register.
public protocol InterruptTrigger: Sendable {
    func trigger()
}
