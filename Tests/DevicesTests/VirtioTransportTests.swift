import Memory
import Testing
import TestSupport
@testable import Devices

/// A deterministic entropy source: byte i of every request is i & 0xFF.
@Sendable func countingBytes(_ buffer: UnsafeMutableRawBufferPointer) -> Bool {
    for index in buffer.indices { buffer[index] = UInt8(truncatingIfNeeded: index) }
    return true
}

@Suite struct VirtioTransportTests {
    @Test func identifiesItselfAsAVersion2Device() throws {
        let driver = try TestDriver(VirtioEntropy(source: countingBytes))
        #expect(driver.read(0x000) == 0x7472_6976)
        #expect(driver.read(0x004) == 2)
        #expect(driver.read(0x008) == 4)
        #expect(driver.deviceFeatures & Virtio.Feature.version1 != 0)
        driver.write(0x30, 0)
        #expect(driver.read(0x34) == 256)
        driver.write(0x30, 1) // no such queue
        #expect(driver.read(0x34) == 0)
        #expect(driver.read(0xB0) == 0xFFFF_FFFF) // no shared memory
    }

    @Test func acceptsOfferedFeaturesAndRefusesOthers() throws {
        let driver = try TestDriver(VirtioEntropy(source: countingBytes))
        #expect(driver.negotiate())
        #expect(!driver.negotiate(driver.deviceFeatures | 1 << 40))
        #expect(!driver.negotiate(Virtio.Feature.indirectDescriptors)) // legacy: no VERSION_1
        #expect(driver.problems.all.count == 2)
        #expect(driver.problems.all[1].contains("VERSION_1"))
    }

    @Test func servesARequestAndInterrupts() throws {
        var driver = try TestDriver(VirtioEntropy(source: countingBytes))
        driver.start()
        #expect(driver.status & Virtio.Status.driverOK != 0)
        let head = try driver.submit(0, [.init(address: TestDriver.dataArea, length: 32, writable: true)])
        driver.notify(0)
        let used = try driver.takeUsed(0)
        #expect(used.map(\.head) == [head])
        #expect(used.map(\.length) == [32])
        #expect(try driver.memory.readBytes(at: TestDriver.dataArea, count: 32) == (0..<32).map { UInt8($0) })
        #expect(driver.interrupts.count == 1)
        #expect(driver.acknowledgeInterrupt() == Virtio.InterruptReason.usedBuffer)
        #expect(driver.read(0x60) == 0)
    }

    @Test func requestsMadeBeforeDriverOKAreServedOnDriverOK() throws {
        var driver = try TestDriver(VirtioEntropy(source: countingBytes))
        #expect(driver.negotiate())
        driver.setUpQueues()
        try driver.submit(0, [.init(address: TestDriver.dataArea, length: 8, writable: true)])
        driver.notify(0) // ignored: not DRIVER_OK yet
        #expect(try driver.takeUsed(0).isEmpty)
        driver.driverOK()
        #expect(try driver.takeUsed(0).count == 1)
    }

    @Test func noInterruptFlagSuppressesInterrupts() throws {
        var driver = try TestDriver(VirtioEntropy(source: countingBytes))
        driver.start(features: Virtio.Feature.version1)
        try driver.memory.write(UInt16(1), at: driver.layouts[0].available) // VRING_AVAIL_F_NO_INTERRUPT
        try driver.submit(0, [.init(address: TestDriver.dataArea, length: 8, writable: true)])
        driver.notify(0)
        #expect(try driver.takeUsed(0).count == 1)
        #expect(driver.interrupts.count == 0)
    }

    @Test func eventIndexInterruptsOnlyWhenUsedEventIsPassed() throws {
        var driver = try TestDriver(VirtioEntropy(source: countingBytes))
        driver.start()
        let layout = driver.layouts[0]
        let usedEvent = layout.available + 4 + 2 * UInt64(layout.size)
        // "Interrupt me when entry 2 is used" (the third completion).
        try driver.memory.write(UInt16(2), at: usedEvent)
        for expected in [0, 0, 1] {
            try driver.submit(0, [.init(address: TestDriver.dataArea, length: 4, writable: true)])
            driver.notify(0)
            #expect(driver.interrupts.count == expected)
        }
        // The device asks to be notified from the next available entry on.
        let availableEvent = layout.used + 4 + 8 * UInt64(layout.size)
        #expect(try driver.memory.read(UInt16.self, at: availableEvent) == 3)
    }

    @Test func indirectTablesAreFollowed() throws {
        var driver = try TestDriver(VirtioEntropy(source: countingBytes))
        driver.start()
        let base = TestDriver.dataArea
        try driver.submit(0, [.init(address: base, length: 4, writable: true),
                              .init(address: base + 0x100, length: 4, writable: true)],
                          indirectTable: 0x30000)
        driver.notify(0)
        #expect(try driver.takeUsed(0).map(\.length) == [8])
        #expect(try driver.memory.readBytes(at: base, count: 5) == [0, 1, 2, 3, 0])
        #expect(try driver.memory.readBytes(at: base + 0x100, count: 5) == [0, 1, 2, 3, 0])
    }

    @Test func resetForgetsQueuesAndTheDeviceWorksAfterReinitialising() throws {
        var driver = try TestDriver(VirtioEntropy(source: countingBytes))
        driver.start()
        try driver.submit(0, [.init(address: TestDriver.dataArea, length: 8, writable: true)])
        driver.write(0x70, 0) // reset with a request in flight
        #expect(driver.status == 0)
        driver.notify(0)
        #expect(try driver.takeUsed(0).isEmpty)
        driver.write(0x30, 0)
        #expect(driver.read(0x44) == 0)
        try driver.memory.fill(0, at: 0, length: 0x20000)
        driver.start()
        try driver.submit(0, [.init(address: TestDriver.dataArea, length: 8, writable: true)])
        driver.notify(0)
        #expect(try driver.takeUsed(0).map(\.length) == [8])
    }

    @Test func registersRejectWrongWidths() throws {
        let driver = try TestDriver(VirtioEntropy(source: countingBytes))
        var wide: UInt64 = 0
        withUnsafeMutableBytes(of: &wide) { driver.transport.read(offset: 0, into: $0) }
        #expect(wide == 0)
        withUnsafeBytes(of: UInt16(7)) { driver.transport.write(offset: 0x70, from: $0) }
        #expect(driver.status == 0)
        #expect(driver.problems.all.count == 2)
    }
}

/// What a hostile or buggy driver can do to the rings, and what it costs it.
@Suite struct VirtioHostileDriverTests {
    func started() throws -> TestDriver {
        var driver = try TestDriver(VirtioEntropy(source: countingBytes))
        driver.start()
        return driver
    }

    /// The device goes on serving well-formed requests after a malformed one.
    func expectStillServes(_ driver: inout TestDriver) throws {
        let head = try driver.submit(0, [.init(address: TestDriver.dataArea, length: 16, writable: true)])
        driver.notify(0)
        let used = try driver.takeUsed(0)
        #expect(used.last?.head == head)
        #expect(used.last?.length == 16)
    }

    @Test func aDescriptorLoopFailsThatRequestOnly() throws {
        var driver = try started()
        try driver.writeDescriptor(0, 0, address: TestDriver.dataArea, length: 8, flags: 1 | 2, next: 1)
        try driver.writeDescriptor(0, 1, address: TestDriver.dataArea, length: 8, flags: 1 | 2, next: 0)
        try driver.publish(0, head: 0)
        driver.freeDescriptor[0] = 2
        driver.notify(0)
        let used = try driver.takeUsed(0)
        #expect(used.map(\.head) == [0])
        #expect(used.map(\.length) == [0])
        #expect(driver.problems.all.contains { $0.contains("longer than 16") })
        try expectStillServes(&driver)
        #expect(driver.status & Virtio.Status.deviceNeedsReset == 0)
    }

    @Test(arguments: [
        (UInt64(TestDriver.memorySize) - 4, UInt32(8)),      // straddles the end of RAM
        (UInt64(0xFFFF_FFFF_FFFF_FFF0), UInt32(0x20)),        // wraps around 2^64
        (UInt64(0x1_0000_0000), UInt32(1)),                   // beyond RAM
        (UInt64(0), UInt32.max),                              // oversize length
    ])
    func buffersOutsideGuestMemoryFailThatRequestOnly(address: UInt64, length: UInt32) throws {
        var driver = try started()
        try driver.submit(0, [.init(address: address, length: length, writable: true)])
        driver.notify(0)
        #expect(try driver.takeUsed(0).map(\.length) == [0])
        #expect(driver.problems.all.contains { $0.contains("outside guest memory") })
        try expectStillServes(&driver)
    }

    @Test func aNextIndexBeyondTheTableFailsThatRequest() throws {
        var driver = try started()
        try driver.writeDescriptor(0, 0, address: TestDriver.dataArea, length: 8, flags: 1 | 2, next: 999)
        try driver.publish(0, head: 0)
        driver.freeDescriptor[0] = 1
        driver.notify(0)
        #expect(try driver.takeUsed(0).map(\.length) == [0])
        try expectStillServes(&driver)
    }

    @Test func indirectMisuseFailsThatRequest() throws {
        var driver = try started()
        let table: UInt64 = 0x30000
        // An indirect table whose entry is itself indirect.
        try driver.writeDescriptor(0, 0, address: table, length: 16, flags: 4, next: 0, table: table)
        try driver.writeDescriptor(0, 0, address: table, length: 16, flags: 4, next: 0)
        // A ragged indirect table (17 bytes).
        try driver.writeDescriptor(0, 1, address: table, length: 17, flags: 4, next: 0)
        // A readable buffer after a writable one.
        try driver.writeDescriptor(0, 2, address: TestDriver.dataArea, length: 4, flags: 1 | 2, next: 3)
        try driver.writeDescriptor(0, 3, address: TestDriver.dataArea, length: 4, flags: 0, next: 0)
        for head: UInt16 in [0, 1, 2] { try driver.publish(0, head: head) }
        driver.freeDescriptor[0] = 4
        driver.notify(0)
        #expect(try driver.takeUsed(0).map(\.length) == [0, 0, 0])
        let problems = driver.problems.all.joined(separator: "\n")
        #expect(problems.contains("indirect table inside an indirect table"))
        #expect(problems.contains("ragged"))
        #expect(problems.contains("readable buffer after a device-writable"))
        try expectStillServes(&driver)
    }

    @Test func indirectWithoutNegotiationFailsThatRequest() throws {
        var driver = try TestDriver(VirtioEntropy(source: countingBytes))
        driver.start(features: Virtio.Feature.version1)
        try driver.submit(0, [.init(address: TestDriver.dataArea, length: 4, writable: true)], indirectTable: 0x30000)
        driver.notify(0)
        #expect(try driver.takeUsed(0).map(\.length) == [0])
        #expect(driver.problems.all.contains { $0.contains("did not negotiate") })
    }

    @Test func aHeadBeyondTheQueueStopsTheDeviceUntilReset() throws {
        var driver = try started()
        try driver.publish(0, head: 500)
        driver.notify(0)
        #expect(driver.status & Virtio.Status.deviceNeedsReset != 0)
        #expect(driver.acknowledgeInterrupt() & Virtio.InterruptReason.configurationChange != 0)
        #expect(driver.problems.all.contains { $0.contains("beyond the queue size") && $0.contains("reset") })
        // Stopped: a good request is not served...
        try driver.submit(0, [.init(address: TestDriver.dataArea, length: 16, writable: true)])
        driver.notify(0)
        #expect(try driver.takeUsed(0).isEmpty)
        // ...until the driver resets and starts again.
        try driver.memory.fill(0, at: 0, length: 0x20000)
        driver.start()
        try expectStillServes(&driver)
    }

    @Test func anAvailableIndexThatJumpsStopsTheDevice() throws {
        let driver = try started()
        try driver.memory.write(UInt16(40), at: driver.layouts[0].available + 2)
        driver.notify(0)
        #expect(driver.status & Virtio.Status.deviceNeedsReset != 0)
        #expect(driver.problems.all.contains { $0.contains("jumped") })
    }

    @Test func ringsOutsideMemoryOrMisalignedAreRefusedAtDriverOK() throws {
        for (descriptors, expected) in [(UInt64(0xFFFF_0000), "outside guest memory"), (UInt64(0x1008), "misaligned")] {
            var driver = try TestDriver(VirtioEntropy(source: countingBytes))
            #expect(driver.negotiate())
            driver.setUpQueues { _ in .init(descriptors: descriptors, available: 0x4000, used: 0x5000, size: 16) }
            driver.driverOK()
            #expect(driver.status & Virtio.Status.deviceNeedsReset != 0)
            #expect(driver.problems.all.contains { $0.contains(expected) })
        }
    }

    @Test func queueSizesMustBePowersOfTwoWithinTheMaximum() throws {
        for size: UInt16 in [0, 3, 512] {
            var driver = try TestDriver(VirtioEntropy(source: countingBytes))
            #expect(driver.negotiate())
            driver.setUpQueues(size: size)
            driver.driverOK()
            #expect(driver.status & Virtio.Status.deviceNeedsReset != 0)
        }
    }

    @Test func notificationsForMissingQueuesAreReported() throws {
        let driver = try started()
        driver.notify(7)
        driver.write(0x50, 9)
        #expect(driver.problems.all.filter { $0.contains("notification for queue") }.count == 2)
    }

    @Test func reportsAreLimitedButCounted() throws {
        let driver = try started()
        for _ in 0..<100 { driver.notify(7) }
        #expect(driver.transport.problemCount == 100)
        #expect(driver.problems.all.count == VirtioMMIOTransport.problemsReported + 1)
    }

    /// Random bytes in the descriptor table and available ring, many times
    /// over: the device must neither crash nor write outside guest memory
    /// (which would crash), and every used entry it writes must name a valid head.
    @Test func randomRingsNeverCrashTheDevice() throws {
        var generator = SeededGenerator(seed: 0x5EED)
        for round in 0..<300 {
            var driver = try TestDriver(VirtioEntropy(source: countingBytes))
            driver.start(size: 8)
            let layout = driver.layouts[0]
            var table = [UInt8](repeating: 0, count: 16 * 8)
            for index in table.indices { table[index] = UInt8(truncatingIfNeeded: generator.next()) }
            // Keep some addresses plausible so that chains get past the first descriptor.
            for entry in 0..<8 where generator.next() % 2 == 0 {
                let address = TestDriver.dataArea + generator.next() % 0x1000
                withUnsafeBytes(of: address.littleEndian) { table.replaceSubrange(entry * 16..<entry * 16 + 8, with: $0) }
                let length = UInt32(generator.next() % 64)
                withUnsafeBytes(of: length.littleEndian) { table.replaceSubrange(entry * 16 + 8..<entry * 16 + 12, with: $0) }
            }
            try driver.memory.write(bytes: table, at: layout.descriptors)
            for slot in 0..<8 {
                try driver.memory.write(UInt16(truncatingIfNeeded: generator.next() % 12), at: layout.available + 4 + 2 * UInt64(slot))
            }
            try driver.memory.write(UInt16(truncatingIfNeeded: generator.next() % 10), at: layout.available + 2)
            driver.notify(0)
            let used = try driver.takeUsed(0)
            #expect(used.allSatisfy { $0.head < 8 }, "round \(round)")
        }
    }
}
