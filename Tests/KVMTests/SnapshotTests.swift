import Glibc
import Testing
import Hypervisor
import X86_64
@testable import KVM
@testable import Memory
@testable import SkiffKit

/// Snapshots at the hypervisor level: a tiny guest stopped mid-computation,
/// its VM and vCPU state and memory saved, then restored into a brand-new VM
/// whose memory is the saved file mapped copy-on-write, finishes exactly as a
/// guest never interrupted.
@Suite(.enabled(if: kvmAvailable, "needs /dev/kvm"), .serialized)
struct SnapshotTests {
    /// Long mode at 0x2000: a counter kept in memory at 0x3000, incremented and
    /// written to port 0x80 until it reaches 10, then port 0x81 says done.
    static let program: [UInt8] = [
        0x8B, 0x0C, 0x25, 0x00, 0x30, 0x00, 0x00, // loop: mov ecx, [0x3000]
        0xFF, 0xC1,                               // inc ecx
        0x89, 0x0C, 0x25, 0x00, 0x30, 0x00, 0x00, // mov [0x3000], ecx
        0x89, 0xC8,                               // mov eax, ecx
        0x66, 0xBA, 0x80, 0x00,                   // mov dx, 0x80
        0xEF,                                     // out dx, eax
        0x83, 0xF9, 0x0A,                         // cmp ecx, 10
        0x75, 0xE4,                               // jne loop
        0xE6, 0x81,                               // out 0x81, al: done
        0xF4,                                     // hlt
    ]

    /// Runs until the done port or `limit` counter values; returns the values seen.
    func run(_ vcpu: any VirtualCPU, limit: Int = .max) throws -> (values: [UInt32], done: Bool) {
        var values: [UInt32] = []
        for _ in 0..<1000 {
            guard case let .portIO(access) = try vcpu.runOnce() else { continue }
            if access.port == 0x81 { return (values, true) }
            if access.port == 0x80 {
                values.append(access.data.loadUnaligned(as: UInt32.self))
                if values.count == limit { return (values, false) }
            }
        }
        return (values, false)
    }

    @Test func aGuestStoppedMidwayAndRestoredInANewVMFinishesTheSame() throws {
        let whole = try TinyGuest(memorySize: 16 << 20, irqchip: true)
        try whole.enterLongMode(at: 0x2000, code: Self.program)
        let uninterrupted = try run(whole.vcpu)
        #expect(uninterrupted.values == Array(1...10) && uninterrupted.done)

        // Stop after 3, complete the pending port I/O (an immediate exit), save.
        let first = try TinyGuest(memorySize: 16 << 20, irqchip: true)
        try first.enterLongMode(at: 0x2000, code: Self.program)
        #expect(try run(first.vcpu, limit: 3).values == [1, 2, 3])
        first.vcpu.kick()
        guard case .interrupted = try first.vcpu.runOnce() else { Issue.record("the kick did not end KVM_RUN"); return }
        let cpuid = CPUIdentity(cpuid: X86CPUSetup.cpuid(try first.system.supportedCPUID(), vcpu: 0, of: 1))
        let state = SnapshotState(architecture: "x86_64", hostKind: HostKind.detect(),
                                  memory: first.memory.layout.map { .init(guestAddress: $0.guestAddress, size: $0.size) },
                                  machine: .init(memoryMiB: 16, cpus: 1, compatibility: "none", disks: [], networks: [], entropyDevice: false),
                                  machineState: try first.vm.captureState(),
                                  vcpus: [.init(identity: cpuid, state: try first.vcpu.captureState())], devices: [])
        let path = "/tmp/skiff-snapshot-test-\(getpid()).mem"
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        defer { close(fd); unlink(path) }
        let written = try first.memory.write(toFile: fd)
        #expect(written < 1 << 20, "16 MiB of mostly zero memory is written sparse: \(written) bytes")

        // Through the state file's bytes, into a new VM on the memory file.
        let restored = try SnapshotState.decode(state.encoded(), restoringOn: HostKind.detect(), architecture: "x86_64")
        #expect(restored == state)
        let system = try KVMSystem()
        let vm = try x86(system.createVirtualMachine())
        let memory = try GuestMemory(layout: restored.memory.map { ($0.guestAddress, $0.size) }, mappingFile: fd)
        try vm.map(memory)
        try vm.setSystemPages()
        try vm.createInterruptController()
        let vcpu = try x86(vm.createVCPU(id: 0))
        try X86Platform().setIdentity(restored.vcpus[0].identity, of: vcpu)
        try vm.restoreState(restored.machineState)
        try vcpu.restoreState(restored.vcpus[0].state)
        let rest = try run(vcpu)
        #expect(rest.values == Array(4...10) && rest.done, "carried on where it stopped")
        #expect(try memory.readBytes(at: 0x3000, count: 1) == [10])
        var onDisk: UInt8 = 0
        #expect(pread(fd, &onDisk, 1, 0x3000) == 1 && onDisk == 3, "the guest's writes stay out of the file (copy-on-write)")
    }
}
