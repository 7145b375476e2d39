import CKVM
import Glibc
import Memory

/// A KVM virtual machine (the fd from KVM_CREATE_VM).
///
/// VM-wide ioctls (IRQ lines, irqfd, ioeventfd) are safe from any thread, so
/// this type is Sendable and devices on other threads may raise interrupts.
public final class VirtualMachine: X86VirtualMachine {
    let fd: Int32
    public let system: KVMSystem

    init(fd: Int32, system: KVMSystem) {
        self.fd = fd
        self.system = system
    }

    deinit { close(fd) }

    /// Registers each region of `memory` as a KVM memory slot (slot = index).
    public func map(_ memory: GuestMemory) throws(KVMError) {
        for (slot, region) in memory.regions.enumerated() {
            var descriptor = kvm_userspace_memory_region(
                slot: UInt32(slot), flags: 0, guest_phys_addr: region.guestAddress,
                memory_size: UInt64(region.size), userspace_addr: UInt64(UInt(bitPattern: region.host)))
            try syscallRetrying("KVM_SET_USER_MEMORY_REGION slot \(slot)") {
                ckvm_ioctl_pointer(fd, CKVM_SET_USER_MEMORY_REGION, &descriptor)
            }
        }
    }

    /// KVM_SET_TSS_ADDR and KVM_SET_IDENTITY_MAP_ADDR: three pages plus one that
    /// Intel VMX needs inside guest physical space, placed below the IOAPIC.
    public func setSystemPages() throws(KVMError) {
        let tss: UInt64 = 0xFFFB_D000, identityMap: UInt64 = 0xFFFB_C000
        try syscallRetrying("KVM_SET_TSS_ADDR") { ckvm_ioctl_value(fd, CKVM_SET_TSS_ADDR, UInt(tss)) }
        var address = identityMap
        if system.checkExtension(KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0 {
            try syscallRetrying("KVM_SET_IDENTITY_MAP_ADDR") {
                ckvm_ioctl_pointer(fd, CKVM_SET_IDENTITY_MAP_ADDR, &address)
            }
        }
    }

    /// In-kernel PIC, IOAPIC and per-vCPU LAPICs (KVM_CREATE_IRQCHIP), and the PIT.
    public func createInterruptController() throws(KVMError) {
        try syscallRetrying("KVM_CREATE_IRQCHIP") { ckvm_ioctl(fd, CKVM_CREATE_IRQCHIP) }
        var pit = kvm_pit_config()
        pit.flags = UInt32(KVM_PIT_SPEAKER_DUMMY)
        try syscallRetrying("KVM_CREATE_PIT2") { ckvm_ioctl_pointer(fd, CKVM_CREATE_PIT2, &pit) }
    }

    /// KVM_REINJECT_CONTROL with pit_reinject 0 (the protocol's comment says why and when).
    public func disableTimerReinjection() throws(KVMError) {
        var control = kvm_reinject_control()
        control.pit_reinject = 0
        try syscallRetrying("KVM_REINJECT_CONTROL") { ckvm_ioctl_pointer(fd, CKVM_REINJECT_CONTROL, &control) }
    }

    /// Drives an interrupt line of the in-kernel IRQ chip (GSI `line`) high or low.
    public func setInterruptLine(_ line: UInt32, high: Bool) throws(KVMError) {
        var level = kvm_irq_level()
        level.irq = line
        level.level = high ? 1 : 0
        try syscallRetrying("KVM_IRQ_LINE \(line)") { ckvm_ioctl_pointer(fd, CKVM_IRQ_LINE, &level) }
    }

    /// KVM_IRQFD: a write to `eventFD` raises GSI `line` without a trip through user space.
    public func attachInterruptEventFD(_ eventFD: Int32, line: UInt32) throws(KVMError) {
        var irqfd = kvm_irqfd()
        irqfd.fd = UInt32(eventFD)
        irqfd.gsi = line
        try syscallRetrying("KVM_IRQFD gsi \(line)") { ckvm_ioctl_pointer(fd, CKVM_IRQFD, &irqfd) }
    }

    /// KVM_IOEVENTFD: a guest MMIO write of `length` bytes to `address` signals
    /// `eventFD` instead of exiting to the vCPU thread; with `value`, only that value does.
    public func attachMMIOWriteEventFD(_ eventFD: Int32, address: UInt64, length: UInt32,
                                       value: UInt64? = nil) throws(KVMError) {
        var ioeventfd = kvm_ioeventfd()
        ioeventfd.fd = eventFD
        ioeventfd.addr = address
        ioeventfd.len = length
        if let value {
            ioeventfd.datamatch = value
            ioeventfd.flags = UInt32(1 << kvm_ioeventfd_flag_nr_datamatch)
        }
        try syscallRetrying("KVM_IOEVENTFD 0x\(String(address, radix: 16))") {
            ckvm_ioctl_pointer(fd, CKVM_IOEVENTFD, &ioeventfd)
        }
    }

    /// KVM_CREATE_VCPU with the given APIC id, and its shared kvm_run page mapped.
    public func createVCPU(id: Int) throws(KVMError) -> any VirtualCPU {
        guard VCPU.kickHandlerInstalled else { throw KVMError("sigaction for the vCPU kick signal", errno: EINVAL) }
        let vcpufd = try syscallRetrying("KVM_CREATE_VCPU \(id)") { ckvm_ioctl_value(fd, CKVM_CREATE_VCPU, UInt(id)) }
        let size = system.vcpuMmapSize
        guard let run = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpufd, 0), run != MAP_FAILED else {
            let error = errno
            close(vcpufd)
            throw KVMError("mmap kvm_run of vCPU \(id)", errno: error)
        }
        return VCPU(id: id, fd: vcpufd, run: run.assumingMemoryBound(to: kvm_run.self), runSize: size, vm: self)
    }
}
