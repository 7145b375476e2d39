import X86_64
import Devices
import Glibc
import Memory
import Synchronization
@testable import KVM
@testable import SkiffKit

/// Whether this machine can run KVM tests at all.
let kvmAvailable = access("/dev/kvm", R_OK | W_OK) == 0

/// A VM with one vCPU and a little RAM, for a few bytes of hand-written code.
struct TinyGuest {
    let system: KVMSystem
    let vm: any X86VirtualMachine
    let memory: GuestMemory
    let vcpu: any X86VirtualCPU

    init(memorySize: Int = 1 << 20, irqchip: Bool = false) throws {
        system = try KVMSystem()
        vm = try x86(system.createVirtualMachine())
        memory = try GuestMemory(layout: [(0, memorySize)])
        try vm.map(memory)
        try vm.setSystemPages()
        if irqchip { try vm.createInterruptController() }
        vcpu = try x86(vm.createVCPU(id: 0))
        try vcpu.setCPUID(X86CPUSetup.cpuid(try system.supportedCPUID(), vcpu: 0, of: 1))
    }

    /// Real mode, CS:IP = 0:`start`.
    func enterRealMode(at start: UInt64, code: [UInt8]) throws {
        try memory.write(bytes: code, at: start)
        var sregs = try vcpu.specialRegisters()
        var cs = sregs.cs
        cs.base = 0
        cs.selector = 0
        sregs.cs = cs
        try vcpu.setSpecialRegisters(sregs)
        var registers = Registers()
        registers.rip = start
        try vcpu.setRegisters(registers)
    }

    /// 64-bit mode at `start` with the boot GDT and identity page tables, and
    /// an IDT of `gates` (vector → handler address) at 0x1000.
    func enterLongMode(at start: UInt64, code: [UInt8], gates: [Int: UInt64] = [:]) throws {
        try memory.write(bytes: code, at: start)
        try memory.write(bytes: GDT.bytes, at: X86Layout.gdt)
        for page in PageTables.build() { try memory.write(bytes: page.bytes, at: page.address) }
        let idtBase: UInt64 = 0x1000
        for (vector, handler) in gates {
            var gate = [UInt8](repeating: 0, count: 16)
            gate[0] = UInt8(handler & 0xFF); gate[1] = UInt8(handler >> 8 & 0xFF)
            gate[2] = UInt8(GDT.codeSelector); gate[3] = 0
            gate[5] = 0x8E // present, DPL 0, 64-bit interrupt gate
            gate[6] = UInt8(handler >> 16 & 0xFF); gate[7] = UInt8(handler >> 24 & 0xFF)
            try memory.write(bytes: gate, at: idtBase + UInt64(vector) * 16)
        }
        let limit = UInt16((gates.keys.max() ?? 0) * 16 + 15)
        let state = X86BootState(format: .elf, instructionPointer: start, kernelEntry: start,
                                 idt: (idtBase, limit), kernelRange: start..<start + UInt64(code.count))
        try X86CPUSetup.enterLongMode(vcpu, state)
    }

    /// Runs until an exit other than port I/O or MMIO, answering reads with
    /// `readValue`, and returns the accesses seen and the final exit.
    func runRecording(readValue: UInt8 = 0x5A, limit: Int = 100) throws -> (accesses: [String], final: String) {
        var accesses: [String] = []
        for _ in 0..<limit {
            switch try vcpu.runOnce() {
            case let .portIO(access):
                if access.isWrite {
                    accesses.append("out \(hex(access.port)) \(access.data.map { hex($0) }.joined(separator: ","))")
                } else {
                    for index in access.data.indices { access.data[index] = readValue }
                    accesses.append("in \(hex(access.port))")
                }
            case let .mmio(access):
                if access.isWrite {
                    accesses.append("write \(hex(access.address)) \(access.data.map { hex($0) }.joined(separator: ","))")
                } else {
                    for index in access.data.indices { access.data[index] = readValue }
                    accesses.append("read \(hex(access.address)) \(access.data.count)")
                }
            case .halt: return (accesses, "halt")
            case .shutdown: return (accesses, "shutdown")
            case let .emulationFailure(bytes): return (accesses, "emulation failure \(bytes)")
            case let other: return (accesses, "\(other)")
            }
        }
        return (accesses, "still running")
    }
}

func hex<T: BinaryInteger>(_ value: T) -> String { "0x" + String(value, radix: 16) }

/// Records bytes written to a port.
final class PortRecorder: BusDevice {
    let bytes = Mutex<[UInt8]>([])
    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {}
    func write(offset: UInt64, from data: UnsafeRawBufferPointer) { bytes.withLock { $0 += data } }
    var all: [UInt8] { bytes.withLock { $0 } }
}

/// KVM's VM and vCPUs on x86 hosts, seen from their x86 side.
func x86(_ vm: any VirtualMachineHandle) throws -> any X86VirtualMachine {
    guard let x86 = vm.x86 else { throw HypervisorError("KVM's VM has an x86 side", errno: 22) }
    return x86
}

func x86(_ vcpu: any VirtualCPU) throws -> any X86VirtualCPU {
    guard let x86 = vcpu.x86 else { throw HypervisorError("KVM's vCPU has an x86 side", errno: 22) }
    return x86
}
