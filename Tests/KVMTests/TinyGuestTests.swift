import X86_64
import Devices
import Glibc
import Host
import Hypervisor
import Synchronization
import Testing
@testable import KVM
@testable import SkiffKit

@Suite(.enabled(if: kvmAvailable, "needs /dev/kvm"), .serialized)
struct TinyGuestTests {
    /// The request the machine makes before its VM is destroyed reaches
    /// KVM as meant: the PIT's reinjection goes off (and a second time there
    /// is nothing left to do), and a VM without a PIT answers ENXIO.
    @Test func timerReinjectionTurnsOffWhereThereIsAPIT() throws {
        let withPIT = try TinyGuest(irqchip: true)
        try withPIT.vm.disableTimerReinjection()
        try withPIT.vm.disableTimerReinjection()
        let withoutPIT = try TinyGuest(irqchip: false)
        #expect { try withoutPIT.vm.disableTimerReinjection() } throws: { error in
            guard let error = error as? HypervisorError else { return false }
            return error.operation == "KVM_REINJECT_CONTROL" && error.errno == ENXIO
        }
    }

    @Test func realModePortIOAndHalt() throws {
        let guest = try TinyGuest()
        try guest.enterRealMode(at: 0x1000, code: [
            0xBA, 0xF8, 0x03,   // mov dx, 0x3f8
            0xB0, 0x48, 0xEE,   // mov al, 'H'; out dx, al
            0xB0, 0x69, 0xEE,   // mov al, 'i'; out dx, al
            0xEC,               // in al, dx
            0xBA, 0xF9, 0x03,   // mov dx, 0x3f9
            0xEE,               // out dx, al: echo what was read
            0xF4,               // hlt
        ])
        let (accesses, final) = try guest.runRecording(readValue: 0x5A)
        #expect(accesses == ["out 0x3f8 0x48", "out 0x3f8 0x69", "in 0x3f8", "out 0x3f9 0x5a"])
        #expect(final == "halt")
    }

    @Test func mmioOutsideRAMExitsWithAddressDataAndSize() throws {
        let guest = try TinyGuest(memorySize: 0x10000) // RAM ends at 64 KiB
        try guest.enterRealMode(at: 0x1000, code: [
            0xB8, 0x00, 0x20,               // mov ax, 0x2000
            0x8E, 0xD8,                     // mov ds, ax: DS base 0x20000, not RAM
            0xC6, 0x06, 0x10, 0x00, 0x42,   // mov byte [0x10], 0x42
            0xA0, 0x20, 0x00,               // mov al, [0x20]
            0xE6, 0x80,                     // out 0x80, al
            0xF4,                           // hlt
        ])
        let (accesses, final) = try guest.runRecording(readValue: 0x77)
        #expect(accesses == ["write 0x20010 0x42", "read 0x20020 1", "out 0x80 0x77"])
        #expect(final == "halt")
    }

    @Test func tripleFaultStopsTheVCPU() throws {
        let guest = try TinyGuest(memorySize: 16 << 20)
        try guest.enterLongMode(at: 0x2000, code: [0x0F, 0x0B])  // ud2 with...
        var sregs = try guest.vcpu.specialRegisters()
        sregs.idt = DescriptorTable(base: 0x1000, limit: 0)                                 // ...an empty IDT: #UD → #GP → #DF → shutdown
        try guest.vcpu.setSpecialRegisters(sregs)
        let (accesses, final) = try guest.runRecording()
        #expect(accesses.isEmpty)
        #expect(final == "shutdown")
    }

    /// A vCPU halted inside KVM (in-kernel LAPIC, interrupts off) on a thread
    /// this test starts, whose signal mask the test runner decides, still stops
    /// when the machine is asked to: the kick must reach it.
    @Test func stoppingWakesAVCPUHaltedInTheKernel() throws {
        let guest = try TinyGuest(irqchip: true)
        try guest.enterRealMode(at: 0x1000, code: [0xFA, 0xF4, 0xEB, 0xFD]) // cli; hlt; jmp back
        let machine = try Machine(MachineConfiguration(kernelPath: "tiny", commandLine: ""), logger: Logger(label: "test"))
        machine.adopt([guest.vcpu])
        let runner = VCPURunner(vcpu: guest.vcpu, memory: guest.memory, ports: IOBus(name: "port", IOBus.Builder()),
                                mmio: IOBus(name: "mmio", IOBus.Builder()), machine: machine)
        let finished = Mutex(false)
        let thread = try NativeThread { runner.run(); finished.withLock { $0 = true } }
        usleep(200_000) // let it reach HLT
        #expect(!finished.withLock { $0 })
        machine.requestStop(.detached)
        for _ in 0..<500 where !finished.withLock({ $0 }) { usleep(10_000) }
        #expect(finished.withLock { $0 }, "the halted vCPU did not stop within 5 s")
        if finished.withLock({ $0 }) { thread.join() } else { thread.detach() }
        #expect(machine.stopReason == .detached)
    }

    /// The INT3 path through the real vCPU loop: on a PVM host the guest's `int3`
    /// is an emulation failure that the compatibility profile turns into #BP;
    /// on hardware KVM it never leaves the guest. Either way the guest's #BP
    /// handler runs, returns, and the guest resets through the i8042.
    @Test func int3ReachesTheGuestBreakpointHandler() throws {
        let (stop, bytes) = try runLongModeGuest(
            main: [0xCC,                 // int3
                   0xB0, 0xAA, 0xE6, 0xE9, // mov al, 0xaa; out 0xe9, al
                   0xB0, 0xFE, 0xE6, 0x64], // reset through the i8042
            profile: .pvm)
        #expect(stop == .reset)
        #expect(bytes == [0xBB, 0xAA]) // handler first, then the code after int3
    }

    /// An instruction this host cannot emulate in guest kernel mode stops the VM
    /// with its address and bytes (PVM); hardware KVM runs it.
    @Test func unemulatableInstructionStopsWithRIPAndBytes() throws {
        let (stop, bytes) = try runLongModeGuest(
            main: [0xF3, 0x0F, 0xB8, 0xC3,   // popcnt eax, ebx
                   0xB0, 0xAA, 0xE6, 0xE9,
                   0xB0, 0xFE, 0xE6, 0x64],
            profile: .pvm)
        if HostKind.detect() == .pvm {
            guard case let .emulationFailure(detail) = stop else { Issue.record("stopped with \(stop)"); return }
            #expect(detail.contains("RIP 0x2000"))
            #expect(detail.contains("f3 0f b8 c3"))
            #expect(bytes.isEmpty)
        } else {
            #expect(stop == .reset)
            #expect(bytes == [0xAA])
        }
    }

    /// What the guest kernel's PVM segment check (guest/kernel/0002-*.patch)
    /// relies on, in guest kernel mode: after a null FS selector load, an
    /// explicit WRMSR of MSR_FS_BASE sticks, and a non-null load takes the
    /// descriptor's base. What the null load itself does to the base differs
    /// by vendor (Intel clears it, older AMD keeps it); it is printed, as a
    /// fact about this host, and must be one of the two.
    @Test func fsBaseFollowsExplicitWritesAfterSelectorLoads() throws {
        let guest = try TinyGuest(memorySize: 16 << 20)
        let msrFSBase: [UInt8] = [0xB9, 0x00, 0x01, 0x00, 0xC0]                 // mov ecx, MSR_FS_BASE
        let setBase: [UInt8] = [0xB8, 0x00, 0x50, 0x34, 0x12, 0x31, 0xD2, 0x0F, 0x30] // mov eax, 0x12345000; xor edx, edx; wrmsr
        let report: [UInt8] = [0x0F, 0x32, 0x66, 0xBA, 0x00, 0x05, 0xEF]       // rdmsr; mov dx, 0x500; out dx, eax
        let code = msrFSBase + setBase
            + [0x31, 0xC0, 0x8E, 0xE0] + report                                // xor eax, eax; mov fs, eax (null)
            + setBase + report                                                 // the explicit write after it
            + [0xB8] + [UInt8(GDT.dataSelector), 0, 0, 0] + [0x8E, 0xE0] + report // mov fs, data selector (base 0)
            + [0xF4]
        try guest.enterLongMode(at: 0x2000, code: code)
        let (accesses, final) = try guest.runRecording()
        #expect(final == "halt")
        try #require(accesses.count == 3, "\(accesses)")
        #expect(["out 0x500 0x0,0x0,0x0,0x0", "out 0x500 0x0,0x50,0x34,0x12"].contains(accesses[0]))
        #expect(accesses[1] == "out 0x500 0x0,0x50,0x34,0x12", "an explicit WRMSR of the FS base did not stick")
        #expect(accesses[2] == "out 0x500 0x0,0x0,0x0,0x0", "a non-null selector load did not take the descriptor's base")
        print("this host: a null FS selector load \(accesses[0].hasSuffix("0x12") ? "keeps" : "clears") the FS base (\(HostKind.detect().rawValue))")
    }

    /// Long-mode guest: code at 0x2000, a #BP handler at 0x3000 that reports 0xBB
    /// on port 0xE9; runs it through `VCPURunner` with the given profile.
    private func runLongModeGuest(main: [UInt8], profile: CompatibilityProfile) throws -> (StopReason, [UInt8]) {
        let guest = try TinyGuest(memorySize: 16 << 20, irqchip: true)
        try guest.memory.write(bytes: [0xB0, 0xBB, 0xE6, 0xE9, 0x48, 0xCF], at: 0x3000) // out 0xbb; iretq
        try guest.enterLongMode(at: 0x2000, code: main, gates: [3: 0x3000])
        var configuration = MachineConfiguration(kernelPath: "tiny", commandLine: "")
        configuration.compatibility = profile
        let machine = try Machine(configuration, logger: Logger(label: "test"))
        let recorder = PortRecorder()
        var ports = IOBus.Builder()
        try ports.attach(recorder, at: 0xE9, length: 1)
        try ports.attach(I8042 { machine.requestStop(.reset) }, at: I8042.basePort, length: I8042.length)
        let runner = VCPURunner(vcpu: guest.vcpu, memory: guest.memory, ports: IOBus(name: "port", ports),
                                mmio: IOBus(name: "mmio", IOBus.Builder()), machine: machine)
        runner.run()
        return (machine.stopReason ?? .vmmError("none"), recorder.all)
    }
}

@Suite(.enabled(if: kvmAvailable, "needs /dev/kvm"))
struct KVMSystemTests {
    @Test func opensAndReportsWhatTheMachineNeeds() throws {
        let system = try KVMSystem()
        #expect(system.vcpuMmapSize >= 4096)
        let cpuid = try system.supportedCPUID()
        #expect(cpuid.contains { $0.function == 0 })
        #expect(cpuid.contains { $0.function == 1 })
    }

    @Test func missingDeviceIsOneClearSentence() {
        #expect { try KVMSystem(path: "/nonexistent/kvm") } throws: {
            "\($0)".hasPrefix("/nonexistent/kvm does not exist")
        }
        #expect { try KVMSystem(path: "/dev/null") } throws: { $0 is KVMSystem.OpenError }
    }
}
