import Devices
import Hypervisor
import Memory
import Platform

/// The KVM_RUN loop of one vCPU, on its own thread: exits go to the port and
/// MMIO buses; what stops the machine goes to `Machine.requestStop`.
struct VCPURunner: @unchecked Sendable {
    let vcpu: any VirtualCPU
    let memory: GuestMemory
    let ports: IOBus
    let mmio: IOBus
    let machine: Machine

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

    /// An instruction the hypervisor could not emulate goes to the platform
    /// (`GuestPlatform.handleUnemulated`; x86 on a PVM host steps over INT3,
    /// delivering #BP, and FWAIT). Anything it leaves stops the machine with
    /// the instruction's bytes.
    private func handleEmulationFailure(_ reported: [UInt8]) {
        let pc: UInt64
        do { pc = try machine.platform.instructionPointer(of: vcpu) } catch {
            machine.requestStop(.vmmError("\(error)"))
            return
        }
        let bytes = reported.isEmpty ? instructionBytes(at: pc) : reported
        let hexBytes = bytes.isEmpty ? "unavailable" : bytes.map { String($0, radix: 16).leftPadded(2) }.joined(separator: " ")
        let outcome: UnemulatedInstruction
        do { outcome = try machine.platform.handleUnemulated(bytes, on: vcpu) } catch {
            machine.requestStop(.vmmError("\(error)"))
            return
        }
        switch outcome {
        case let .deliveredException(vector):
            if machine.countDeliveredException() == 1 {
                machine.logger.debug("\(machine.platform.architecture): instruction \(hexBytes) at 0x\(String(pc, radix: 16)) stepped over, exception \(vector) delivered to the guest")
            }
        case .skipped:
            if machine.countSkippedInstruction() == 1 {
                machine.logger.debug("\(machine.platform.architecture): instruction \(hexBytes) at 0x\(String(pc, radix: 16)) skipped")
            }
        case .unhandled:
            machine.requestStop(.emulationFailure("vCPU \(vcpu.id) at \(machine.platform.registerSummary(of: vcpu)), instruction bytes: \(hexBytes)"))
        }
    }

    /// Up to 15 bytes (x86's longest instruction; the platform reads what
    /// its own need) at guest virtual `pc`, through the guest's page
    /// tables, within one page.
    private func instructionBytes(at pc: UInt64) -> [UInt8] {
        guard let physical = try? vcpu.translate(pc) else { return [] }
        let count = min(15, 4096 - Int(physical & 0xFFF))
        return (try? memory.readBytes(at: physical, count: count)) ?? []
    }

    /// " (where the vCPU was, as its platform says it)", or nothing if unreadable.
    private func registerSummary() -> String {
        let summary = machine.platform.registerSummary(of: vcpu)
        return summary.isEmpty ? "" : " (\(summary))"
    }
}

extension String {
    public func leftPadded(_ width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
