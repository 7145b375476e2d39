import Devices

/// Where a machine's devices sit on a platform, so that its guest finds them
/// without being told (x86: the legacy ports Linux probes and the I/O APIC's
/// pins) or is told once (the virtio-mmio windows:
/// `GuestPlatform.deviceParameters`).
public struct DeviceLayout: Sendable, Equatable {
    public enum Bus: Sendable, Equatable { case port, mmio }

    /// One device's place: its bus, its first address, its interrupt line.
    public struct Slot: Sendable, Equatable {
        public var bus: Bus
        public var address: UInt64
        public var irq: UInt32?
        public init(bus: Bus, address: UInt64, irq: UInt32? = nil) { self.bus = bus; self.address = address; self.irq = irq }
    }

    /// 16550 serial lines: ttyS0 (the kernel console), then ttyS1 and ttyS2
    /// (`skiff run`'s container output, and its errors and control messages).
    /// Lines with the same IRQ share it, as ISA serial ports do.
    public var serialLines: [Slot]
    /// The boot-marker device (`BootMarkerDevice`), which Skiff's init writes.
    public var bootMarkers: Slot
    /// The first virtio-mmio window; the others follow it, one per device.
    public var virtioBase: UInt64
    /// The interrupt lines virtio devices get, one each, in order: how many
    /// fit is how many virtio devices a machine can have.
    public var virtioIRQs: ClosedRange<UInt32>
    /// The hand-over mailbox (`HandoverMailbox`, 64 KiB): guest RAM the
    /// guest's kernel never allocates and its init reads, at the address
    /// the init was built with (guest/init/handover.h).
    public var handoverMailbox: UInt64

    public init(serialLines: [Slot], bootMarkers: Slot, virtioBase: UInt64, virtioIRQs: ClosedRange<UInt32>,
                handoverMailbox: UInt64) {
        self.serialLines = serialLines; self.bootMarkers = bootMarkers
        self.virtioBase = virtioBase; self.virtioIRQs = virtioIRQs; self.handoverMailbox = handoverMailbox
    }
}

/// A device a platform adds to every machine, and where.
public struct PlacedDevice: Sendable {
    public let device: any BusDevice
    public let slot: DeviceLayout.Slot
    public let length: UInt64
    public init(_ device: any BusDevice, at slot: DeviceLayout.Slot, length: UInt64) {
        self.device = device; self.slot = slot; self.length = length
    }
}
