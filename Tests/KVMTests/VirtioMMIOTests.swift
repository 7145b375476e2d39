import Devices
import Glibc
import Host
import Memory
import Synchronization
import Testing
@testable import KVM
@testable import SkiffKit

/// Hand-assembled x86-64 for a guest that pokes device registers through rbx.
enum Assembly {
    /// mov rbx, imm64
    static func loadBase(_ address: UInt64) -> [UInt8] { [0x48, 0xBB] + withUnsafeBytes(of: address.littleEndian, Array.init) }
    /// mov dword [rbx + offset], value
    static func store(_ offset: Int32, _ value: UInt32) -> [UInt8] {
        [0xC7, 0x83] + withUnsafeBytes(of: offset.littleEndian, Array.init) + withUnsafeBytes(of: value.littleEndian, Array.init)
    }
    /// mov eax, dword [rbx + offset]; out 0x80, al
    static func loadAndReport(_ offset: Int32) -> [UInt8] {
        [0x8B, 0x83] + withUnsafeBytes(of: offset.littleEndian, Array.init) + [0xE6, 0x80]
    }
    static let halt: [UInt8] = [0xF4]
}

final class LineCollector: Sendable {
    let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}

@Suite(.enabled(if: kvmAvailable, "needs /dev/kvm"), .serialized)
struct VirtioMMIOTests {
    /// A queue notification the guest writes to an ioeventfd address signals
    /// the eventfd and never exits to user space; a value that does not match
    /// the datamatch does exit.
    @Test func ioeventfdTakesQueueNotificationsOffTheVCPU() throws {
        let guest = try TinyGuest(irqchip: true)
        let base: UInt64 = 0xD000_0000
        let notify = try EventFD()
        try guest.vm.attachMMIOWriteEventFD(notify.fd, address: base + 0x50, length: 4, value: 1)
        let interrupt = try EventFD()
        try guest.vm.attachInterruptEventFD(interrupt.fd, line: 5)
        // Ends with a port write, not HLT: with the in-kernel irqchip, HLT never exits.
        let code = Assembly.loadBase(base) + Assembly.store(0x50, 1) + Assembly.store(0x50, 2) + [0xE6, 0x80]
        try guest.enterLongMode(at: 0x2000, code: code)
        var accesses: [String] = []
        exits: for _ in 0..<10 {
            switch try guest.vcpu.runOnce() {
            case let .mmio(access): accesses.append("write \(hex(access.address)) \(access.data.map { hex($0) })")
            case .portIO: break exits
            case let other: Issue.record("unexpected exit \(other)"); break exits
            }
        }
        #expect(accesses == ["write 0xd0000050 [\"0x2\", \"0x0\", \"0x0\", \"0x0\"]"])
        #expect(notify.drain())
        #expect(!notify.drain())
    }

    /// A guest that gives a virtio device a ring outside its RAM breaks that
    /// device, which says so; the vCPU goes on and reads DEVICE_NEEDS_RESET.
    @Test func aCorruptQueueFromARealGuestBreaksOnlyTheDevice() throws {
        let guest = try TinyGuest()
        let base: UInt64 = 0xD000_0000
        let problems = LineCollector()
        let transport = VirtioMMIOTransport(name: "virtio-rng", device: VirtioEntropy(), memory: guest.memory,
                                            interrupt: IgnoredInterrupt()) { problems.append($0) }
        var builder = IOBus.Builder()
        try builder.attach(transport, at: base, length: VirtioMMIOTransport.size)
        let bus = IOBus(name: "mmio", builder)

        var code = Assembly.loadBase(base)
        code += Assembly.store(0x70, 1) + Assembly.store(0x70, 3)                  // ACKNOWLEDGE, DRIVER
        code += Assembly.store(0x24, 1) + Assembly.store(0x20, 1)                  // accept VERSION_1
        code += Assembly.store(0x70, 0xB)                                          // FEATURES_OK
        code += Assembly.store(0x30, 0) + Assembly.store(0x38, 16)                 // queue 0, 16 entries
        code += Assembly.store(0x80, 0xFFFF_0000) + Assembly.store(0x84, 0)        // descriptors: not RAM
        code += Assembly.store(0x90, 0x4000) + Assembly.store(0xA0, 0x5000)
        code += Assembly.store(0x44, 1) + Assembly.store(0x70, 0xF)                // ready, DRIVER_OK
        code += Assembly.loadAndReport(0x70) + Assembly.loadAndReport(0x60) + Assembly.halt
        try guest.enterLongMode(at: 0x2000, code: code)

        var reported: [UInt8] = []
        exits: for _ in 0..<100 {
            switch try guest.vcpu.runOnce() {
            case let .mmio(access):
                if access.isWrite { bus.write(access.address, from: UnsafeRawBufferPointer(access.data)) } else { bus.read(access.address, into: access.data) }
            case let .portIO(access) where access.isWrite && access.port == 0x80:
                reported.append(access.data[0])
            case .halt: break exits
            case let other: Issue.record("unexpected exit \(other)"); break exits
            }
        }
        #expect(reported == [0x4F, 0x02]) // DRIVER_OK… | NEEDS_RESET; configuration-change interrupt
        #expect(problems.all.count == 1)
        #expect(problems.all.first?.contains("virtio-rng: queue 0: descriptor table at 0xffff0000 (256 bytes) is outside guest memory; device stopped until the driver resets it") == true,
                "\(problems.all)")
    }
}

/// Interrupts nobody listens to (the tiny guest has no interrupt controller).
struct IgnoredInterrupt: InterruptTrigger {
    func trigger() {}
}
