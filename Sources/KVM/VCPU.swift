import CKVM
import Glibc
import Synchronization

/// One virtual CPU: its fd and the kvm_run page shared with the kernel.
///
/// A vCPU belongs to the thread that runs it: every method but `kick()` is
/// meant to be called from that thread (KVM requires vCPU ioctls there).
/// `kick()` is the one cross-thread operation: it makes a running or
/// about-to-run KVM_RUN return `.interrupted`.
public final class VCPU: X86VirtualCPU, @unchecked Sendable {
    public let id: Int
    let fd: Int32
    let run: UnsafeMutablePointer<kvm_run>
    let runSize: Int
    public let vm: VirtualMachine
    /// pthread_t of the thread in `run()`, for kick(); 0 before one binds.
    private let thread = Atomic<UInt>(0)

    init(id: Int, fd: Int32, run: UnsafeMutablePointer<kvm_run>, runSize: Int, vm: VirtualMachine) {
        self.id = id
        self.fd = fd
        self.run = run
        self.runSize = runSize
        self.vm = vm
    }

    deinit {
        munmap(run, runSize)
        close(fd)
    }

    /// kick()'s signal would kill the process without a handler: one no-op
    /// handler is installed, once, before the first vCPU exists.
    static let kickHandlerInstalled: Bool = ckvm_install_kick_handler(ckvm_kick_signal()) == 0

    /// Makes the calling thread the one `kick()` interrupts (and lets the kick
    /// signal through to it, whatever mask the thread inherited).
    public func bindToCurrentThread() {
        _ = ckvm_unblock_kick_signal()
        thread.store(UInt(pthread_self()), ordering: .sequentiallyConsistent)
    }

    /// Makes KVM_RUN return as soon as possible, now or at its next call.
    public func kick() {
        ckvm_run_set_immediate_exit(run, 1)
        let target = thread.load(ordering: .sequentiallyConsistent)
        if target != 0 { _ = pthread_kill(pthread_t(target), ckvm_kick_signal()) }
    }

    // MARK: state

    public func registers() throws(KVMError) -> Registers {
        var raw = kvm_regs()
        try syscallRetrying("KVM_GET_REGS") { ckvm_ioctl_pointer(fd, CKVM_GET_REGS, &raw) }
        return Registers(raw)
    }

    public func setRegisters(_ registers: Registers) throws(KVMError) {
        var raw = registers.raw
        try syscallRetrying("KVM_SET_REGS") { ckvm_ioctl_pointer(fd, CKVM_SET_REGS, &raw) }
    }

    public func specialRegisters() throws(KVMError) -> SpecialRegisters {
        var raw = kvm_sregs()
        try syscallRetrying("KVM_GET_SREGS") { ckvm_ioctl_pointer(fd, CKVM_GET_SREGS, &raw) }
        return SpecialRegisters(raw)
    }

    public func setSpecialRegisters(_ registers: SpecialRegisters) throws(KVMError) {
        var current = kvm_sregs()
        try syscallRetrying("KVM_GET_SREGS") { ckvm_ioctl_pointer(fd, CKVM_GET_SREGS, &current) }
        var raw = registers.applied(to: current)
        try syscallRetrying("KVM_SET_SREGS") { ckvm_ioctl_pointer(fd, CKVM_SET_SREGS, &raw) }
    }

    public func setCPUID(_ entries: [CPUIDEntry]) throws(KVMError) {
        guard let buffer = ckvm_cpuid2_allocate(UInt32(entries.count)) else { throw KVMError("allocate cpuid", errno: ENOMEM) }
        defer { free(buffer) }
        let raw = ckvm_cpuid2_entries(buffer)!
        for (index, entry) in entries.enumerated() { raw[index] = entry.raw }
        try syscallRetrying("KVM_SET_CPUID2") { ckvm_ioctl_pointer(fd, CKVM_SET_CPUID2, buffer) }
    }

    /// KVM_SET_MSRS; returns how many of `msrs` (in order) KVM accepted.
    @discardableResult
    public func setMSRs(_ msrs: [(index: UInt32, value: UInt64)]) throws(KVMError) -> Int {
        guard let buffer = ckvm_msrs_allocate(UInt32(msrs.count)) else { throw KVMError("allocate msrs", errno: ENOMEM) }
        defer { free(buffer) }
        let raw = ckvm_msrs_entries(buffer)!
        for (slot, msr) in msrs.enumerated() {
            raw[slot] = kvm_msr_entry(index: msr.index, reserved: 0, data: msr.value)
        }
        return Int(try syscallRetrying("KVM_SET_MSRS") { ckvm_ioctl_pointer(fd, CKVM_SET_MSRS, buffer) })
    }

    public func setFPU(_ state: FPUState) throws(KVMError) {
        var raw = kvm_fpu()
        raw.fcw = state.fcw
        raw.mxcsr = state.mxcsr
        try syscallRetrying("KVM_SET_FPU") { ckvm_ioctl_pointer(fd, CKVM_SET_FPU, &raw) }
    }

    /// Reads, edits and writes back the in-kernel local APIC's 1 KiB register page.
    public func updateLocalAPIC(_ edit: (inout [UInt8]) -> Void) throws(KVMError) {
        var state = kvm_lapic_state()
        try syscallRetrying("KVM_GET_LAPIC") { ckvm_ioctl_pointer(fd, CKVM_GET_LAPIC, &state) }
        var bytes = withUnsafeBytes(of: &state.regs) { Array($0) }
        edit(&bytes)
        withUnsafeMutableBytes(of: &state.regs) { $0.copyBytes(from: bytes) }
        try syscallRetrying("KVM_SET_LAPIC") { ckvm_ioctl_pointer(fd, CKVM_SET_LAPIC, &state) }
    }

    /// Queues exception `vector` (without error code) for delivery at the next entry.
    public func injectException(_ vector: UInt8) throws(KVMError) {
        var events = kvm_vcpu_events()
        try syscallRetrying("KVM_GET_VCPU_EVENTS") { ckvm_ioctl_pointer(fd, CKVM_GET_VCPU_EVENTS, &events) }
        events.exception.injected = 1
        events.exception.nr = vector
        events.exception.has_error_code = 0
        events.exception.error_code = 0
        events.flags = 0
        try syscallRetrying("KVM_SET_VCPU_EVENTS") { ckvm_ioctl_pointer(fd, CKVM_SET_VCPU_EVENTS, &events) }
    }

    /// Guest virtual → guest physical through the guest's current page tables.
    public func translate(_ virtualAddress: UInt64) throws(KVMError) -> UInt64? {
        var translation = kvm_translation()
        translation.linear_address = virtualAddress
        try syscallRetrying("KVM_TRANSLATE") { ckvm_ioctl_pointer(fd, CKVM_TRANSLATE, &translation) }
        return translation.valid != 0 ? translation.physical_address : nil
    }

    // MARK: running

    /// One KVM_RUN. Real failures throw; EINTR and kicks return `.interrupted`.
    public func runOnce() throws(KVMError) -> VCPUExit {
        if ckvm_ioctl(fd, CKVM_RUN) < 0 {
            let error = errno
            if error == EINTR || error == EAGAIN {
                // The kick has been honoured; a later kick sets it again, so
                // none is lost, and the caller decides whether to run on.
                ckvm_run_set_immediate_exit(run, 0)
                return .interrupted
            }
            throw KVMError("KVM_RUN on vCPU \(id)", errno: error)
        }
        let raw = UnsafeMutableRawPointer(run)
        switch Int32(ckvm_run_exit_reason(run)) {
        case KVM_EXIT_IO:
            let size = Int(ckvm_run_io_size(run))
            let count = Int(ckvm_run_io_count(run))
            let offset = Int(ckvm_run_io_data_offset(run))
            guard offset >= 0, size * count <= runSize - offset else { return .internalError(suberror: UInt32.max) }
            return .portIO(PortAccess(
                port: ckvm_run_io_port(run), size: size, count: count,
                isWrite: Int32(ckvm_run_io_direction(run)) == KVM_EXIT_IO_OUT,
                data: UnsafeMutableRawBufferPointer(start: raw + offset, count: size * count)))
        case KVM_EXIT_MMIO:
            let length = min(Int(ckvm_run_mmio_length(run)), 8)
            return .mmio(MMIOAccess(
                address: ckvm_run_mmio_address(run), isWrite: ckvm_run_mmio_is_write(run) != 0,
                data: UnsafeMutableRawBufferPointer(start: ckvm_run_mmio_data(run), count: length)))
        case KVM_EXIT_HLT:
            return .halt
        case KVM_EXIT_SHUTDOWN:
            return .shutdown
        case KVM_EXIT_SYSTEM_EVENT:
            return .systemEvent(type: ckvm_run_system_event_type(run))
        case KVM_EXIT_INTR:
            return .interrupted
        case KVM_EXIT_FAIL_ENTRY:
            return .failedEntry(reason: ckvm_run_fail_entry_reason(run))
        case KVM_EXIT_INTERNAL_ERROR:
            let suberror = ckvm_run_internal_suberror(run)
            guard suberror == UInt32(KVM_INTERNAL_ERROR_EMULATION) else { return .internalError(suberror: suberror) }
            var bytes = [UInt8](repeating: 0, count: 16)
            let count = bytes.withUnsafeMutableBufferPointer { ckvm_run_emulation_instruction(run, $0.baseAddress!) }
            return .emulationFailure(instruction: Array(bytes.prefix(Int(count))))
        case let reason:
            return .unhandled(reason: UInt32(reason))
        }
    }
}

extension VCPU {
    public func captureState() throws(KVMError) -> [UInt8] {
        try capturedState("save vCPU \(id) state") { ckvm_vcpu_save(vm.system.fd, fd, $0, $1, $2) }
    }

    public func restoreState(_ state: [UInt8]) throws(KVMError) {
        try restoredState(state, "restore vCPU \(id) state") { ckvm_vcpu_restore(fd, $0, $1, $2) }
    }
}

extension VirtualMachine {
    public func captureState() throws(KVMError) -> [UInt8] {
        try capturedState("save VM state") { ckvm_vm_save(fd, $0, $1, $2) }
    }

    public func restoreState(_ state: [UInt8]) throws(KVMError) {
        try restoredState(state, "restore VM state") { ckvm_vm_restore(fd, $0, $1, $2) }
    }
}

/// Runs one of CKVM's `*_save` calls and takes its malloc'd bytes.
private func capturedState(_ operation: String,
                           _ save: (UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>, UnsafeMutablePointer<Int>, UnsafeMutablePointer<UInt32>) -> Int32)
    throws(KVMError) -> [UInt8] {
    var bytes: UnsafeMutablePointer<UInt8>?
    var length = 0
    var failed: UInt32 = 0
    guard save(&bytes, &length, &failed) == 0, let bytes else { throw KVMError("\(operation) (\(sectionName(failed)))", errno: errno) }
    defer { free(bytes) }
    return Array(UnsafeBufferPointer(start: bytes, count: length))
}

/// Runs one of CKVM's `*_restore` calls on `state`.
private func restoredState(_ state: [UInt8], _ operation: String,
                           _ restore: (UnsafePointer<UInt8>?, Int, UnsafeMutablePointer<UInt32>) -> Int32) throws(KVMError) {
    var failed: UInt32 = 0
    let result = state.withUnsafeBufferPointer { restore($0.baseAddress, $0.count, &failed) }
    guard result == 0 else { throw KVMError("\(operation) (\(sectionName(failed)))", errno: errno) }
}

/// A state section's four-letter tag (CKVM's shim.c), for messages.
func sectionName(_ tag: UInt32) -> String {
    guard tag != 0 else { return "state" }
    let letters = (0..<4).map { UInt8(truncatingIfNeeded: tag >> (8 * $0)) }.filter { $0 != UInt8(ascii: " ") }
    return String(decoding: letters, as: UTF8.self)
}
