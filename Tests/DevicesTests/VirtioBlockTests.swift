import Foundation
import Memory
import Synchronization
import Testing
@testable import Devices

/// A scratch disk image, removed when the test ends.
final class ScratchDisk {
    let path: String
    init(sectors: Int, pattern: (Int) -> UInt8 = { UInt8(truncatingIfNeeded: $0 / 512) }) throws {
        path = NSTemporaryDirectory() + "skiff-disk-\(UUID().uuidString).img"
        let bytes = (0..<sectors * 512).map(pattern)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    var contents: [UInt8] { (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))) ?? [] }
}

@Suite struct VirtioBlockTests {
    static let header: UInt64 = TestDriver.dataArea
    static let data: UInt64 = TestDriver.dataArea + 0x1000
    static let status: UInt64 = TestDriver.dataArea + 0x100

    /// Submits a request (header, data, status) the way Linux lays it out; returns (used length, status byte).
    func request(_ driver: inout TestDriver, type: UInt32, sector: UInt64, dataLength: UInt32,
                 deviceWritesData: Bool, indirect: Bool = false) throws -> (UInt32, UInt8) {
        try driver.memory.write(type, at: Self.header)
        try driver.memory.write(UInt32(0), at: Self.header + 4)
        try driver.memory.write(sector, at: Self.header + 8)
        try driver.memory.write(UInt8(0xEE), at: Self.status)
        var buffers: [TestDriver.Buffer] = [.init(address: Self.header, length: 16)]
        if dataLength > 0 { buffers.append(.init(address: Self.data, length: dataLength, writable: deviceWritesData)) }
        buffers.append(.init(address: Self.status, length: 1, writable: true))
        try driver.submit(0, buffers, indirectTable: indirect ? 0x30000 : nil)
        driver.notify(0)
        let used = try driver.takeUsed(0)
        return (used.last?.length ?? 0xDEAD, try driver.memory.read(at: Self.status))
    }

    func started(_ disk: ScratchDisk, readOnly: Bool = false) throws -> (TestDriver, VirtioBlock) {
        let device = VirtioBlock(disk: try DiskImage(path: disk.path, readOnly: readOnly))
        var driver = try TestDriver(device)
        driver.start()
        return (driver, device)
    }

    @Test func configurationSpaceGivesCapacityInSectors() throws {
        let disk = try ScratchDisk(sectors: 9)
        let (driver, _) = try started(disk)
        #expect(driver.read(0x100) == 9)
        #expect(driver.read(0x104) == 0)
        #expect(driver.read(0x10C) == 254) // seg_max
        #expect(driver.deviceFeatures & (1 << 9) != 0) // FLUSH
        #expect(driver.deviceFeatures & (1 << 5) == 0) // not RO
    }

    @Test func readsWritesAndFlushes() throws {
        let disk = try ScratchDisk(sectors: 8)
        var (driver, device) = try started(disk)
        #expect(try request(&driver, type: 0, sector: 2, dataLength: 1024, deviceWritesData: true) == (1025, 0))
        #expect(try driver.memory.readBytes(at: Self.data, count: 1024) == [UInt8](repeating: 2, count: 512) + [UInt8](repeating: 3, count: 512))

        try driver.memory.write(bytes: [UInt8](repeating: 0xAB, count: 512), at: Self.data)
        #expect(try request(&driver, type: 1, sector: 5, dataLength: 512, deviceWritesData: false, indirect: true) == (1, 0))
        #expect(try request(&driver, type: 4, sector: 0, dataLength: 0, deviceWritesData: false) == (1, 0))
        let contents = disk.contents
        #expect(contents[5 * 512..<6 * 512].allSatisfy { $0 == 0xAB })
        #expect(contents[4 * 512..<5 * 512].allSatisfy { $0 == 4 })
        #expect(device.statistics == .init(reads: 1, writes: 1, flushes: 1, failed: 0, bytesRead: 1024, bytesWritten: 512))
    }

    @Test func getIDAnswersTwentyBytes() throws {
        let disk = try ScratchDisk(sectors: 1)
        var (driver, device) = try started(disk)
        #expect(try request(&driver, type: 8, sector: 0, dataLength: 20, deviceWritesData: true) == (21, 0))
        let id = try driver.memory.readBytes(at: Self.data, count: 20)
        #expect(String(decoding: id.prefix { $0 != 0 }, as: UTF8.self) == String(device.disk.identifier.prefix(20)))
    }

    @Test func readOnlyDisksOfferROAndRefuseWrites() throws {
        let disk = try ScratchDisk(sectors: 4)
        let before = disk.contents
        var (driver, device) = try started(disk, readOnly: true)
        #expect(driver.deviceFeatures & (1 << 5) != 0)
        try driver.memory.write(bytes: [UInt8](repeating: 0xAB, count: 512), at: Self.data)
        #expect(try request(&driver, type: 1, sector: 0, dataLength: 512, deviceWritesData: false) == (1, 1)) // IOERR
        #expect(try request(&driver, type: 0, sector: 1, dataLength: 512, deviceWritesData: true) == (513, 0))
        #expect(disk.contents == before)
        #expect(device.statistics.failed == 1)
    }

    @Test(arguments: [
        (UInt32(0), UInt64(8), UInt32(512)),            // starts at the end
        (UInt32(0), UInt64(7), UInt32(1024)),           // runs past the end
        (UInt32(0), UInt64.max / 256, UInt32(512)),     // offset overflows
        (UInt32(1), UInt64(0), UInt32(100)),            // not whole sectors
    ])
    func requestsOutsideTheDiskFailWithIOError(type: UInt32, sector: UInt64, length: UInt32) throws {
        let disk = try ScratchDisk(sectors: 8)
        let before = disk.contents
        var (driver, _) = try started(disk)
        let result = try request(&driver, type: type, sector: sector, dataLength: length, deviceWritesData: type == 0)
        #expect(result.1 == 1)
        #expect(disk.contents == before)
    }

    @Test func unknownRequestTypesAreUnsupported() throws {
        let disk = try ScratchDisk(sectors: 1)
        var (driver, _) = try started(disk)
        #expect(try request(&driver, type: 11, sector: 0, dataLength: 0, deviceWritesData: false) == (1, 2))
    }

    @Test func aRequestWithoutAStatusByteIsReturnedEmpty() throws {
        let disk = try ScratchDisk(sectors: 1)
        var (driver, device) = try started(disk)
        try driver.memory.write(UInt32(0), at: Self.header)
        try driver.submit(0, [.init(address: Self.header, length: 16)])
        driver.notify(0)
        #expect(try driver.takeUsed(0).map(\.length) == [0])
        #expect(device.statistics.failed == 1)
    }

    @Test func imagesAreLockedAndCheckedWhenOpened() throws {
        let disk = try ScratchDisk(sectors: 1)
        let writer = try DiskImage(path: disk.path, readOnly: false)
        #expect(throws: DiskImage.OpenError.inUse(path: disk.path)) { try DiskImage(path: disk.path, readOnly: true) }
        _ = writer
        #expect(throws: DiskImage.OpenError.cannotOpen(path: "/nonexistent.img", errno: ENOENT)) {
            try DiskImage(path: "/nonexistent.img", readOnly: true)
        }
        #expect(throws: DiskImage.OpenError.notARegularFileOrDevice(path: "/tmp")) { try DiskImage(path: "/tmp", readOnly: true) }
        let tiny = try ScratchDisk(sectors: 0)
        #expect(throws: DiskImage.OpenError.tooSmall(path: tiny.path, size: 0)) { try DiskImage(path: tiny.path, readOnly: true) }
    }
}

/// Frames in and out, without a TAP.
final class QueueEndpoint: PacketEndpoint {
    let incoming = Mutex<[[UInt8]]>([])
    let outgoing = Mutex<[[UInt8]]>([])
    func receive(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        incoming.withLock { frames in
            guard !frames.isEmpty else { return nil }
            let frame = frames.removeFirst()
            buffer.copyBytes(from: frame.prefix(buffer.count))
            return min(frame.count, buffer.count)
        }
    }
    func send(_ frame: UnsafeRawBufferPointer) -> Bool {
        outgoing.withLock { $0.append(Array(frame)) }
        return true
    }
}

@Suite struct VirtioNetworkTests {
    func started() throws -> (TestDriver, VirtioNetwork, QueueEndpoint) {
        let endpoint = QueueEndpoint()
        let device = VirtioNetwork(endpoint: endpoint, mac: MACAddress("52:54:00:12:34:56")!)
        var driver = try TestDriver(device)
        driver.start()
        return (driver, device, endpoint)
    }

    @Test func macAddressIsInConfigurationSpace() throws {
        let (driver, _, _) = try started()
        var mac = [UInt8](repeating: 0, count: 6)
        mac.withUnsafeMutableBytes { driver.transport.read(offset: 0x100, into: $0) }
        #expect(mac == [0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
        #expect(driver.deviceFeatures & (1 << 5) != 0)
    }

    @Test func transmitsFramesWithoutTheHeader() throws {
        var (driver, device, endpoint) = try started()
        let frame = (0..<60).map { UInt8($0) }
        try driver.memory.write(bytes: [UInt8](repeating: 0, count: 12) + frame, at: TestDriver.dataArea)
        // Header and frame split across descriptors in an odd place.
        try driver.submit(1, [.init(address: TestDriver.dataArea, length: 20),
                              .init(address: TestDriver.dataArea + 20, length: 52)])
        driver.notify(1)
        #expect(try driver.takeUsed(1).count == 1)
        #expect(endpoint.outgoing.withLock { $0 } == [frame])
        #expect(device.statistics.framesSent == 1)
    }

    @Test func deliversFramesIntoReceiveBuffersAndWaitsForMore() throws {
        var (driver, device, endpoint) = try started()
        let frames = [[UInt8](repeating: 1, count: 64), [UInt8](repeating: 2, count: 100)]
        endpoint.incoming.withLock { $0 = frames }
        try driver.submit(0, [.init(address: TestDriver.dataArea, length: 1526, writable: true)])
        driver.transport.backendReady()
        let used = try driver.takeUsed(0)
        #expect(used.map(\.length) == [12 + 64])
        let header = try driver.memory.readBytes(at: TestDriver.dataArea, count: 12)
        #expect(header == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]) // num_buffers = 1
        #expect(try driver.memory.readBytes(at: TestDriver.dataArea + 12, count: 64) == frames[0])
        // The second frame waits for a buffer; adding one (and notifying) delivers it.
        #expect(endpoint.incoming.withLock { $0.count } == 1)
        try driver.submit(0, [.init(address: TestDriver.dataArea + 0x1000, length: 1526, writable: true)])
        driver.notify(0)
        #expect(try driver.takeUsed(0).map(\.length) == [112])
        #expect(device.statistics.framesReceived == 2)
        #expect(driver.interrupts.count == 2)
    }

    @Test func framesTooBigForTheBuffersAreDropped() throws {
        var (driver, device, endpoint) = try started()
        endpoint.incoming.withLock { $0 = [[UInt8](repeating: 9, count: 200), [UInt8](repeating: 7, count: 20)] }
        try driver.submit(0, [.init(address: TestDriver.dataArea, length: 100, writable: true)])
        driver.transport.backendReady()
        #expect(try driver.takeUsed(0).map(\.length) == [32])
        #expect(device.statistics.dropped == 1)
    }

    @Test func runtTransmissionsAreDropped() throws {
        var (driver, device, endpoint) = try started()
        try driver.submit(1, [.init(address: TestDriver.dataArea, length: 12)]) // header only
        driver.notify(1)
        #expect(try driver.takeUsed(1).count == 1)
        #expect(endpoint.outgoing.withLock { $0.isEmpty })
        #expect(device.statistics.dropped == 1)
    }

    @Test func macAddressesParseAndDerive() {
        #expect(MACAddress("52:54:00:ab:CD:ef")?.description == "52:54:00:ab:cd:ef")
        #expect(MACAddress("01:00:5e:00:00:01") == nil) // multicast
        #expect(MACAddress("52:54:00:ab:cd") == nil)
        #expect(MACAddress("52:54:00:ab:cd:zz") == nil)
        let derived = MACAddress(derivedFrom: "tap0")
        #expect(derived == MACAddress(derivedFrom: "tap0"))
        #expect(derived != MACAddress(derivedFrom: "tap1"))
        #expect(derived.bytes[0] & 0x3 == 0x2) // locally administered unicast
    }
}

@Suite struct VirtioEntropyTests {
    @Test func fillsEachRequestFromTheHostCappedInSize() throws {
        var driver = try TestDriver(VirtioEntropy())
        driver.start()
        try driver.submit(0, [.init(address: TestDriver.dataArea, length: 64, writable: true)])
        try driver.submit(0, [.init(address: 0x80000, length: 0x20000, writable: true)])
        driver.notify(0)
        #expect(try driver.takeUsed(0).map(\.length) == [64, UInt32(VirtioEntropy.maximumRequest)])
        #expect(try driver.memory.readBytes(at: TestDriver.dataArea, count: 64).contains { $0 != 0 })
        // Beyond the cap, nothing was written.
        #expect(try driver.memory.readBytes(at: 0x80000 + UInt64(VirtioEntropy.maximumRequest), count: 16).allSatisfy { $0 == 0 })
    }
}
