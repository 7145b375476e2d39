import Devices
import Host
import Hypervisor
import Memory
import Platform

/// The machine's virtio-mmio devices: where each sits, its IRQ, the eventfds
/// that carry its notifications and interrupts, and its host backend.
///
/// Layout: 4 KiB windows from the platform's `DeviceLayout.virtioBase`, one
/// of its `virtioIRQs` each (x86: from 0xD000_0000, inside the MMIO hole
/// below 4 GiB, IRQs 5 to 23). Disks come first so that --disk order gives
/// vda, vdb, ...; then networks; then entropy; then vsock.
final class VirtioDevices {
    /// Window `slot`'s base and interrupt line.
    static func place(_ slot: Int, in layout: DeviceLayout) -> (base: UInt64, irq: UInt32) {
        (layout.virtioBase + UInt64(slot) * VirtioMMIOTransport.size, layout.virtioIRQs.lowerBound + UInt32(slot))
    }
    private let layout: DeviceLayout

    struct Attached {
        let transport: VirtioMMIOTransport
        let summary: @Sendable () -> String
    }

    private(set) var attached: [Attached] = []
    /// eventfds the loop and KVM hold on to; they live as long as the machine.
    private var eventFDs: [EventFD] = []
    private var taps: [TapDevice] = []
    private var fallbacks = 0

    /// The host side of the devices, opened before any VM exists (and before
    /// a jail: the jailed VMM keeps these descriptors, the TAPs in the host's
    /// network namespace, and sees none of their paths).
    struct Backends {
        let disks: [DiskImage]
        let taps: [TapDevice]
        /// The vsock device's listening socket.
        let vsockListener: Int32?
    }

    /// Opens every disk image and TAP; throws, naming the file or TAP, if one cannot be opened.
    static func openBackends(_ config: MachineConfiguration, logger: Logger) throws(MachineError) -> Backends {
        var disks: [DiskImage] = []
        for disk in config.disks {
            let image: DiskImage
            do { image = try DiskImage(path: disk.path, readOnly: disk.readOnly) } catch {
                throw .invalidConfiguration("--disk \(error)")
            }
            if image.fileSize != image.size {
                logger.warning("--disk \(disk.path): size is not a whole number of 512-byte sectors; the tail is not visible to the guest")
            }
            disks.append(image)
        }
        var taps: [TapDevice] = []
        for network in config.networks {
            do { taps.append(try TapDevice(name: network.tap)) } catch { throw .invalidConfiguration("--net \(error)") }
        }
        var vsockListener: Int32?
        if let vsock = config.vsock {
            do { vsockListener = try VsockUnixBackend.listen(at: vsock.path) } catch { throw .invalidConfiguration("--vsock \(error)") }
        }
        return Backends(disks: disks, taps: taps, vsockListener: vsockListener)
    }

    /// Attaches every device to its opened backend.
    init(_ config: MachineConfiguration, layout: DeviceLayout, backends: Backends, vm: any VirtualMachineHandle, memory: GuestMemory,
         loop: EventLoop, mmio: inout IOBus.Builder, logger: Logger) throws(MachineError) {
        self.layout = layout
        for (index, (disk, image)) in zip(config.disks, backends.disks).enumerated() {
            let device = VirtioBlock(disk: image)
            let name = "virtio-blk vd\(Self.driveLetter(index)) (\(disk.path)\(disk.readOnly ? ", read-only" : ""))"
            try attach(device, name: name, vm: vm, memory: memory, loop: loop, mmio: &mmio, logger: logger) {
                let s = device.statistics
                return "\(name): \(s.reads) reads (\(s.bytesRead) bytes), \(s.writes) writes (\(s.bytesWritten) bytes), \(s.flushes) flushes, \(s.failed) failed"
            }
        }
        for (index, (network, tap)) in zip(config.networks, backends.taps).enumerated() {
            taps.append(tap)
            let mac = network.mac ?? MACAddress(derivedFrom: tap.name)
            let device = VirtioNetwork(endpoint: tap, mac: mac)
            let interface = "eth\(index)"
            let name = "virtio-net \(interface) (TAP \(tap.name), \(mac))"
            let transport = try attach(device, name: name, vm: vm, memory: memory, loop: loop, mmio: &mmio, logger: logger) {
                let s = device.statistics
                return "\(name): \(s.framesSent) frames sent (\(s.bytesSent) bytes), \(s.framesReceived) received (\(s.bytesReceived) bytes), \(s.dropped) dropped"
            }
            do { try loop.register(tap.fd, edgeTriggered: true) { transport.backendReady() } } catch { throw MachineError(error) }
        }
        if config.entropyDevice {
            let device = VirtioEntropy()
            try attach(device, name: "virtio-rng", vm: vm, memory: memory, loop: loop, mmio: &mmio, logger: logger) {
                "virtio-rng: \(device.bytesServed) random bytes served"
            }
        }
        if let vsock = config.vsock, let listener = backends.vsockListener {
            let backend: VsockUnixBackend
            do { backend = try VsockUnixBackend(listener: listener, path: vsock.path, guestCID: vsock.guestCID) } catch {
                throw .invalidConfiguration("--vsock \(error)")
            }
            let device = VirtioVsock(guestCID: vsock.guestCID, backend: backend)
            let name = "virtio-vsock (CID \(vsock.guestCID), \(vsock.path))"
            let transport = try attach(device, name: name, vm: vm, memory: memory, loop: loop, mmio: &mmio, logger: logger) {
                let c = device.counters
                return "\(name): \(c.opened) connections, \(c.bytesToGuest) bytes to the guest, \(c.bytesToHost) to the host, \(c.reset) reset, \(c.refused) refused"
            }
            do { try loop.register(device.pollFD) { transport.backendReady() } } catch { throw MachineError(error) }
        }
        if fallbacks > 0 {
            logger.warning("KVM refused \(fallbacks) ioeventfd/irqfd registrations; those notifications go through vCPU exits instead")
        }
    }

    /// The windows and IRQs `init` gives `config`'s devices (disks,
    /// networks, entropy, vsock, one slot each, in order): known before any
    /// VM exists, for the platform to announce (`GuestPlatform.deviceParameters`).
    static func windows(for config: MachineConfiguration, layout: DeviceLayout) -> [DeviceLayout.Slot] {
        let count = config.disks.count + config.networks.count + (config.entropyDevice ? 1 : 0) + (config.vsock != nil ? 1 : 0)
        return (0..<count).map { slot in
            let (base, irq) = place(slot, in: layout)
            return DeviceLayout.Slot(bus: .mmio, address: base, irq: irq)
        }
    }

    /// The `ip=` parameters of the networks that have an address (any
    /// architecture's Linux reads them), `eth0` first.
    static func networkParameters(for config: MachineConfiguration) -> [String] {
        config.networks.enumerated().compactMap { index, network in network.kernelParameter(interface: "eth\(index)") }
    }

    static func driveLetter(_ index: Int) -> String {
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        return index < 26 ? String(letters[index]) : String(letters[index / 26 - 1]) + String(letters[index % 26])
    }

    /// Places `device` in the next window, wires its interrupt (irqfd) and queue
    /// notifications (ioeventfd → event loop), and announces it.
    @discardableResult
    private func attach(_ device: any VirtioDevice, name: String, vm: any VirtualMachineHandle, memory: GuestMemory,
                        loop: EventLoop, mmio: inout IOBus.Builder, logger: Logger,
                        summary: @escaping @Sendable () -> String) throws(MachineError) -> VirtioMMIOTransport {
        let (base, irq) = Self.place(attached.count, in: layout)

        let trigger: any InterruptTrigger
        let interruptFD = try EventFD.make()
        do {
            try vm.attachInterruptEventFD(interruptFD.fd, line: irq)
            eventFDs.append(interruptFD)
            trigger = EventFDTrigger(eventFD: interruptFD)
        } catch {
            logger.debug("irqfd for IRQ \(irq) refused: \(error)")
            fallbacks += 1
            trigger = PulsedLineTrigger(vm: vm, line: irq, logger: logger)
        }
        let transport = VirtioMMIOTransport(name: name, device: device, memory: memory, interrupt: trigger) { [logger] problem in
            logger.error("guest driver error: \(problem)")
        }
        do { try mmio.attach(transport, at: base, length: VirtioMMIOTransport.size) } catch {
            throw .invalidConfiguration("\(error)")
        }
        for queue in 0..<transport.queueCount {
            let notifyFD = try EventFD.make()
            do {
                try vm.attachMMIOWriteEventFD(notifyFD.fd, address: base + 0x50, length: 4, value: UInt64(queue))
            } catch {
                // Without ioeventfd the QueueNotify write exits to the vCPU, which serves the queue itself.
                logger.debug("ioeventfd for \(name) queue \(queue) refused: \(error)")
                fallbacks += 1
                continue
            }
            eventFDs.append(notifyFD)
            do {
                try loop.register(notifyFD.fd) {
                    notifyFD.drain()
                    transport.notify(queue: queue)
                }
            } catch {
                throw MachineError(error)
            }
        }
        attached.append(Attached(transport: transport, summary: summary))
        logger.debug("attached \(name)", metadata: ["base": "0x\(String(base, radix: 16))", "irq": "\(irq)"])
        return transport
    }
}

/// An interrupt through a KVM irqfd: one eventfd write, no VM exit, no ioctl.
struct EventFDTrigger: InterruptTrigger {
    let eventFD: EventFD
    func trigger() { eventFD.signal() }
}

/// An edge made by raising and lowering an I/O APIC line (when irqfd is unavailable).
struct PulsedLineTrigger: InterruptTrigger {
    let vm: any VirtualMachineHandle
    let line: UInt32
    let logger: Logger
    func trigger() {
        do {
            try vm.setInterruptLine(line, high: true)
            try vm.setInterruptLine(line, high: false)
        } catch {
            logger.error("cannot raise IRQ \(line): \(error)")
        }
    }
}
