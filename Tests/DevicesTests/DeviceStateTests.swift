import Memory
import Testing
@testable import Devices

/// Snapshots of each device model: saved, restored into a new instance, and
/// then used, the new one behaving exactly as the old one would have.
@Suite struct DeviceStateTests {
    @Test func aUARTRestoredCarriesOnWithItsRegistersFIFOAndInterrupt() throws {
        let line = RecordingLine(), output = ByteCollector()
        let old = Serial16550(interrupt: line) { output.append($0) }
        old.writeByte(3, 0x80)            // DLAB
        old.writeByte(0, 0x01)            // divisor 115200
        old.writeByte(3, 0x03)            // 8N1
        old.writeByte(7, 0x5A)            // scratch
        old.writeByte(1, 0x01)            // receive interrupts
        #expect(old.receive(Array("abc".utf8)) == 3)
        #expect(old.readByte(0) == UInt8(ascii: "a"))
        #expect(line.history == [true])
        let saved = old.saveState()

        let newLine = RecordingLine(), newOutput = ByteCollector()
        let new = Serial16550(interrupt: newLine) { newOutput.append($0) }
        try new.restoreState(saved)
        #expect(newLine.history == [true], "a line that was high is driven high again")
        #expect(new.saveState() == saved)
        #expect(new.readByte(7) == 0x5A && new.readByte(3) == 0x03 && new.readByte(1) == 0x01)
        #expect(new.readByte(2) & 0x0F == 0x04, "received data pending")
        #expect(new.readByte(0) == UInt8(ascii: "b") && new.readByte(0) == UInt8(ascii: "c"))
        #expect(newLine.history == [true, false], "drained: the interrupt drops")
        new.writeByte(0, UInt8(ascii: "x"))
        #expect(newOutput.all == [UInt8(ascii: "x")] && output.all.isEmpty)
        new.writeByte(3, 0x80)
        #expect(new.readByte(0) == 0x01, "divisor kept")
    }

    @Test func aUARTRefusesStateThatIsNotAUARTs() {
        let uart = Serial16550(interrupt: RecordingLine()) { _ in }
        let saved = uart.saveState()
        for broken in [[], Array(saved.dropLast()), saved + [0], [0xFF, 0xFF, 0xFF, 0xFF] + saved.dropFirst(4)] {
            #expect(throws: DeviceStateError.self) { try uart.restoreState(broken) }
        }
        var badFlag = saved
        badFlag[badFlag.count - 1] = 7
        #expect(throws: DeviceStateError.self) { try uart.restoreState(badFlag) }
        #expect(uart.saveState() == saved, "a refused state leaves the device as it was")
    }

    @Test func theBootMarkerValueSurvives() throws {
        let old = BootMarkerDevice(clock: { 1 })
        old.writeByte(1, 42)
        let new = BootMarkerDevice(clock: { 2 })
        try new.restoreState(old.saveState())
        new.writeByte(0, BootMarkerDevice.Phase.workloadExited.rawValue)
        #expect(new.events.map(\.value) == [42])
        #expect(throws: DeviceStateError.self) { try new.restoreState([1, 2]) }
    }

    @Test func aVirtioDeviceRestoredMidStreamServesTheNextRequestWhereTheOldLeftOff() throws {
        var old = try TestDriver(VirtioEntropy(source: countingBytes))
        old.start(features: Virtio.Feature.version1 | Virtio.Feature.eventIndex)
        for _ in 0..<3 {
            _ = try old.submit(0, [.init(address: TestDriver.dataArea, length: 8, writable: true)])
            old.notify(0)
            _ = try old.takeUsed(0)
        }
        // A request made available but not yet notified when the snapshot is taken.
        let pending = try old.submit(0, [.init(address: TestDriver.dataArea + 64, length: 16, writable: true)])
        let saved = old.transport.saveState()

        // The new device on a copy of the old guest memory, as a restore maps it.
        var new = try TestDriver(VirtioEntropy(source: countingBytes))
        try new.memory.write(bytes: try old.memory.readBytes(at: 0, count: TestDriver.memorySize), at: 0)
        new.layouts = old.layouts; new.availableIndex = old.availableIndex
        new.freeDescriptor = old.freeDescriptor; new.usedSeen = old.usedSeen
        try new.transport.restoreState(saved)
        #expect(new.transport.saveState() == saved)
        #expect(new.status == old.status)
        new.transport.resumeAfterRestore()
        let used = try new.takeUsed(0)
        #expect(used.map(\.head) == [pending] && used.map(\.length) == [16], "the pending request is served on resume")
        #expect(new.interrupts.count == 1)
        _ = try new.submit(0, [.init(address: TestDriver.dataArea, length: 4, writable: true)])
        new.notify(0)
        #expect(try new.takeUsed(0).map(\.length) == [4])
        #expect(new.problems.all.isEmpty)
    }

    /// The OCI runtime restores one ready guest with each bundle's disk behind
    /// vda: a disk of another size must reach the driver as a running device
    /// would announce it (new generation, configuration-change interrupt).
    @Test func aDiskOfAnotherSizeAtRestoreIsAConfigurationChange() throws {
        let small = try ScratchDisk(sectors: 8), large = try ScratchDisk(sectors: 24), same = try ScratchDisk(sectors: 8)
        var old = try TestDriver(VirtioBlock(disk: try DiskImage(path: small.path, readOnly: true)))
        old.start()
        let generation = old.read(0xFC)
        let saved = old.transport.saveState()

        let grown = try TestDriver(VirtioBlock(disk: try DiskImage(path: large.path, readOnly: true)))
        try grown.memory.write(bytes: try old.memory.readBytes(at: 0, count: TestDriver.memorySize), at: 0)
        try grown.transport.restoreState(saved)
        #expect(grown.read(0x60) & 2 != 0, "InterruptStatus: configuration change")
        #expect(grown.read(0xFC) == generation &+ 1)
        #expect(grown.read(0x100) == 24, "the capacity is the new disk's")
        #expect(grown.interrupts.count == 0, "raised on resume, once the whole machine is restored")
        grown.transport.resumeAfterRestore()
        #expect(grown.interrupts.count == 1)
        grown.write(0x64, 2)
        #expect(grown.read(0x60) == 0, "acknowledged as any interrupt")

        let alike = try TestDriver(VirtioBlock(disk: try DiskImage(path: same.path, readOnly: true)))
        try alike.transport.restoreState(saved)
        alike.transport.resumeAfterRestore()
        #expect(alike.read(0x60) == 0 && alike.read(0xFC) == generation && alike.interrupts.count == 0,
                "the same configuration: nothing to announce")
        #expect(alike.transport.saveState() == saved)
    }

    @Test func aVirtioStateForAnotherDeviceOrMemoryIsRefused() throws {
        var driver = try TestDriver(VirtioEntropy(source: countingBytes))
        driver.start()
        let saved = driver.transport.saveState()
        let disk = try ScratchDisk(sectors: 8)
        let block = try TestDriver(VirtioBlock(disk: try DiskImage(path: disk.path, readOnly: true)))
        #expect(throws: DeviceStateError.self) { try block.transport.restoreState(saved) }
        // Rings beyond this machine's memory: refused, not trusted.
        var shifted = saved
        let tableOffset = 4 + 6 * 4 + 8 + 1 + 4 + 2 + 2 + 1 // type, registers, features, broken, count, max, size, ready
        shifted[tableOffset + 7] = 0x10                       // descriptor table at 2^60
        let other = try TestDriver(VirtioEntropy(source: countingBytes))
        #expect(throws: DeviceStateError.self) { try other.transport.restoreState(shifted) }
        #expect(throws: DeviceStateError.self) { try other.transport.restoreState(Array(saved.dropLast(3))) }
        #expect(other.status == 0)
    }

    @Test func stateReaderRefusesHostileLengths() {
        var writer = StateWriter()
        writer.put(bytes: [1, 2, 3])
        var reader = StateReader(writer.bytes, what: "test")
        #expect(throws: DeviceStateError.self) { _ = try reader.getBytes(limit: 2) }
        var liar = StateReader([0xFF, 0xFF, 0xFF, 0x7F], what: "test")
        #expect(throws: DeviceStateError.self) { _ = try liar.getBytes(limit: .max) }
        var short = StateReader([1], what: "test")
        #expect(throws: DeviceStateError.self) { _ = try short.get(UInt32.self) }
    }
}

@Suite struct HandoverMailboxTests {
    let delivery = HandoverMailbox.Delivery(realtimeSeconds: 1_800_000_000, realtimeNanoseconds: 123_456_789,
                                            seed: (0..<64).map { UInt8($0) })

    @Test func theHeaderByteByByte() throws {
        let memory = try GuestMemory(layout: [(0, 1 << 20)])
        let next = try HandoverMailbox.write(Array("abc".utf8), from: 0, delivery, at: 0xE0000, into: memory)
        #expect(next == 3)
        let header = try memory.readBytes(at: 0xE0000, count: 128)
        #expect(Array(header[0..<8]) == Array("SKIFFHO1".utf8))
        #expect(Array(header[8..<12]) == [1, 0, 0, 0], "version")
        #expect(Array(header[12..<16]) == [3, 0, 0, 0], "chunk length")
        #expect(Array(header[16..<24]) == [3, 0, 0, 0, 0, 0, 0, 0], "total")
        #expect(Array(header[24..<32]) == [0, 0, 0, 0, 0, 0, 0, 0], "offset")
        #expect(Array(header[32..<40]) == [0x00, 0xD2, 0x49, 0x6B, 0, 0, 0, 0], "seconds")
        #expect(Array(header[40..<44]) == [0x15, 0xCD, 0x5B, 0x07], "nanoseconds")
        #expect(Array(header[48..<112]) == (0..<64).map { UInt8($0) }, "seed")
        #expect(try memory.readBytes(at: 0xE0000 + 128, count: 3) == Array("abc".utf8))
    }

    @Test func aLargePayloadTravelsInChunks() throws {
        let memory = try GuestMemory(layout: [(0, 1 << 20)])
        let payload = (0..<(HandoverMailbox.chunkCapacity * 2 + 100)).map { UInt8(truncatingIfNeeded: $0 * 7) }
        var received: [UInt8] = []
        var offset = 0
        repeat {
            offset = try HandoverMailbox.write(payload, from: offset, delivery, at: 0xE0000, into: memory)
            let chunk = Int(try memory.read(UInt32.self, at: 0xE0000 + 12))
            #expect(Int(try memory.read(UInt64.self, at: 0xE0000 + 24)) == received.count)
            received += try memory.readBytes(at: 0xE0000 + 128, count: chunk)
        } while offset < payload.count
        #expect(received == payload)
        #expect(try HandoverMailbox.write(payload, from: Int.max, delivery, at: 0xE0000, into: memory) == payload.count, "past the end: an empty chunk")
    }
}
