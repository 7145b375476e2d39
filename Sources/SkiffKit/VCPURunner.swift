import Devices
import Hypervisor
import Memory

/// The KVM_RUN loop of one vCPU, on its own thread: exits go to the port and
/// MMIO buses; what stops the machine goes to `Machine.requestStop`.
struct VCPURunner: @unchecked Sendable {
    let vcpu: any VirtualCPU
    let memory: GuestMemory
    let ports: IOBus
    let mmio: IOBus
    let machine: Machine

    static let int3: UInt8 = 0xCC
    static let fwait: UInt8 = 0x9B
    static let breakpointVector: UInt8 = 3

    func run() {
        vcpu.bindToCurrentThread()
        defer {
            machine.pause.ended()
            machine.logger.debug("vCPU \(vcpu.id) stopped\(registerSummary())")
        }
        while !machine.stopped {
            if machine.pause.isRequested {
                machine.pause.park(vcpu)
                continue
            }
            machine.noteEntry()
            let exit: VCPUExit
            do { exit = try vcpu.runOnce() } catch {
                machine.requestStop(.vmmError("\(error)"))
                return
            }
            machine.noteExit()
            switch exit {
            case let .portIO(access):
                for index in 0..<access.count {
                    let slice = UnsafeMutableRawBufferPointer(rebasing: access.data[index * access.size..<(index + 1) * access.size])
                    if access.isWrite {
                        ports.write(UInt64(access.port), from: UnsafeRawBufferPointer(slice))
                    } else {
                        ports.read(UInt64(access.port), into: slice)
                    }
                }
            case let .mmio(access):
                if access.isWrite {
                    mmio.write(access.address, from: UnsafeRawBufferPointer(access.data))
                } else {
                    mmio.read(access.address, into: access.data)
                }
            case .halt:
                // Only without an in-kernel LAPIC; nothing would wake this vCPU.
                machine.guestStopped(.halted)
            case .shutdown:
                machine.guestStopped(.tripleFault)
            case let .systemEvent(type):
                machine.guestStopped(.systemEvent(type))
            case let .emulationFailure(reported):
                handleEmulationFailure(reported)
            case .interrupted:
                continue
            case let .internalError(suberror):
                machine.requestStop(.vmmError("vCPU \(vcpu.id): KVM internal error, suberror \(suberror)\(registerSummary())"))
            case let .failedEntry(reason):
                machine.requestStop(.vmmError("vCPU \(vcpu.id): VM entry failed, hardware reason 0x\(String(reason, radix: 16))\(registerSummary())"))
            case let .unhandled(reason):
                machine.requestStop(.vmmError("vCPU \(vcpu.id): unexpected KVM exit reason \(reason)\(registerSummary())"))
            }
        }
    }

    /// On a PVM host, INT3 and FWAIT in guest kernel mode reach us as emulation
    /// failures. INT3: step over it and deliver #BP, as the CPU would have.
    /// FWAIT only checks for pending x87 exceptions, which the guest never has
    /// here: step over it. Anything else stops the machine with the bytes.
    private func handleEmulationFailure(_ reported: [UInt8]) {
        var registers: Registers
        do { registers = try vcpu.registers() } catch {
            machine.requestStop(.vmmError("\(error)"))
            return
        }
        let bytes = reported.isEmpty ? instructionBytes(at: registers.rip) : reported
        let profile = machine.configuration.compatibility
        if profile.handlesEmulationFailures, let first = bytes.first, first == Self.int3 || first == Self.fwait {
            registers.rip &+= 1
            do {
                try vcpu.setRegisters(registers)
                if first == Self.int3 {
                    try vcpu.injectException(Self.breakpointVector)
                    if machine.countBreakpoint() == 1 {
                        machine.logger.debug("PVM compatibility: INT3 at 0x\(String(registers.rip &- 1, radix: 16)) delivered to the guest as #BP")
                    }
                } else if machine.countFwait() == 1 {
                    machine.logger.debug("PVM compatibility: FWAIT at 0x\(String(registers.rip &- 1, radix: 16)) skipped")
                }
            } catch {
                machine.requestStop(.vmmError("\(error)"))
            }
            return
        }
        let hexBytes = bytes.isEmpty ? "unavailable" : bytes.map { String($0, radix: 16).leftPadded(2) }.joined(separator: " ")
        machine.requestStop(.emulationFailure("vCPU \(vcpu.id) at RIP 0x\(String(registers.rip, radix: 16)), instruction bytes: \(hexBytes)"))
    }

    /// Up to 15 bytes at guest virtual `rip`, through the guest's page tables, within one page.
    private func instructionBytes(at rip: UInt64) -> [UInt8] {
        guard let physical = try? vcpu.translate(rip) else { return [] }
        let count = min(15, 4096 - Int(physical & 0xFFF))
        return (try? memory.readBytes(at: physical, count: count)) ?? []
    }

    private func registerSummary() -> String {
        guard let registers = try? vcpu.registers(), let special = try? vcpu.specialRegisters() else { return "" }
        return " (RIP 0x\(String(registers.rip, radix: 16)), CS 0x\(String(special.cs.selector, radix: 16)), CR0 0x\(String(special.cr0, radix: 16)))"
    }
}

extension String {
    public func leftPadded(_ width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
