import Foundation
import Glibc
import Host
import Memory
import Testing
@testable import Devices

/// A Unix stream socket client or server end, for playing the host programs.
struct HostSocket {
    let fd: Int32

    static func connect(_ path: String) throws -> HostSocket {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let (initial, length) = try #require(unixSocketAddress(path))
        var address = initial
        let result = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) } }
        try #require(result == 0, "connect \(path): \(String(cString: strerror(errno)))")
        return HostSocket(fd: fd)
    }

    func send(_ text: String) { _ = text.withCString { write(fd, $0, strlen($0)) } }

    /// What arrives within `milliseconds` (nil: the peer closed with nothing more).
    func receive(milliseconds: Int32 = 500) -> String? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, milliseconds) > 0 else { return "" }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = read(fd, &buffer, buffer.count)
        return count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self) : nil
    }

    func close() { Glibc.close(fd) }
}

/// The virtio-vsock device and its Unix-socket backend, with the test playing
/// Linux's driver (guest CID 3) on one side and host programs on the other.
@Suite(.serialized) struct VirtioVsockTests {
    static let guestCID: UInt64 = 3
    static let rxBuffers: UInt64 = TestDriver.dataArea
    static let txBuffer: UInt64 = TestDriver.dataArea + 0x40000
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vsock-\(UUID().uuidString.prefix(8))").path
    var path: String { directory + "/v.sock" }

    /// Device started, 8 receive buffers of 44 + 4096 bytes (header and data
    /// in separate descriptors, as Linux lays them out), 4 event buffers.
    func started() throws -> (TestDriver, VirtioVsock) {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let listener = try VsockUnixBackend.listen(at: path)
        let device = VirtioVsock(guestCID: Self.guestCID, backend: try VsockUnixBackend(listener: listener, path: path, guestCID: Self.guestCID))
        var driver = try TestDriver(device)
        driver.start()
        for index in 0..<8 { try addReceiveBuffer(&driver, index) }
        for index in 0..<4 {
            try driver.submit(2, [.init(address: 0x3F000 + UInt64(index) * 8, length: 8, writable: true)])
        }
        return (driver, device)
    }

    /// Chains of two descriptors: the head's index says which buffer pair it is.
    func addReceiveBuffer(_ driver: inout TestDriver, _: Int = 0) throws {
        let base = Self.rxBuffers + UInt64(driver.freeDescriptor[0] / 2 % 8) * 0x2000
        try driver.submit(0, [.init(address: base, length: 44, writable: true), .init(address: base + 44, length: 4096, writable: true)])
    }

    /// Packets the device put in receive buffers since the last call (buffers replenished).
    func received(_ driver: inout TestDriver) throws -> [(VsockHeader, String)] {
        var packets: [(VsockHeader, String)] = []
        for used in try driver.takeUsed(0) {
            let base = Self.rxBuffers + UInt64(used.head / 2 % 8) * 0x2000
            let bytes = try driver.memory.readBytes(at: base, count: 44)
            let header = try #require(VsockHeader(bytes))
            #expect(Int(used.length) == 44 + Int(header.length))
            let payload = try driver.memory.readBytes(at: base + 44, count: Int(header.length))
            packets.append((header, String(decoding: payload, as: UTF8.self)))
        }
        for index in 0..<packets.count { try addReceiveBuffer(&driver, index) }
        if !packets.isEmpty { driver.notify(0) }
        return packets
    }

    func send(_ driver: inout TestDriver, _ header: VsockHeader, _ payload: String = "", split: Bool = true) throws {
        var header = header
        header.length = UInt32(payload.utf8.count)
        let bytes = header.bytes + Array(payload.utf8)
        try driver.memory.write(bytes: bytes, at: Self.txBuffer)
        if split && !payload.isEmpty {
            try driver.submit(1, [.init(address: Self.txBuffer, length: 44), .init(address: Self.txBuffer + 44, length: UInt32(payload.utf8.count))])
        } else {
            try driver.submit(1, [.init(address: Self.txBuffer, length: UInt32(bytes.count))])
        }
        driver.notify(1)
        _ = try driver.takeUsed(1)
    }

    func fromGuest(_ operation: VsockHeader.Operation, guestPort: UInt32, hostPort: UInt32, flags: UInt32 = 0,
                   bufferAllocation: UInt32 = 65536, forwardCount: UInt32 = 0) -> VsockHeader {
        VsockHeader(sourceCID: Self.guestCID, destinationCID: 2, sourcePort: guestPort, destinationPort: hostPort,
                    operation: operation, flags: flags, bufferAllocation: bufferAllocation, forwardCount: forwardCount)
    }

    /// A host program connects and the guest (port 1024) accepts it; returns the client and the host port.
    func hostConnection(_ driver: inout TestDriver, guestBuffer: UInt32 = 65536) throws -> (HostSocket, UInt32) {
        let client = try HostSocket.connect(path)
        client.send("CONNECT 1024\n")
        driver.transport.backendReady()
        let packets = try received(&driver)
        try #require(packets.count == 1)
        let request = packets[0].0
        #expect(request.knownOperation == .request && request.destinationPort == 1024 && request.destinationCID == Self.guestCID)
        #expect(request.sourceCID == 2 && request.sourcePort >= 1 << 30 && request.bufferAllocation == VsockUnixBackend.bufferAllocation)
        try send(&driver, fromGuest(.response, guestPort: 1024, hostPort: request.sourcePort, bufferAllocation: guestBuffer))
        #expect(client.receive() == "OK \(request.sourcePort)\n")
        return (client, request.sourcePort)
    }

    @Test func configurationSpaceHoldsTheGuestCID() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (driver, _) = try started()
        #expect(driver.read(0x008) == 19) // device ID: socket
        #expect(driver.read(0x100) == 3 && driver.read(0x104) == 0)
        #expect(driver.transport.queueCount == 3)
    }

    @Test func hostConnectsStreamsBothWaysAndTheGuestCloses() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var (driver, device) = try started()
        let (client, hostPort) = try hostConnection(&driver)
        defer { client.close() }

        client.send("ping")
        driver.transport.backendReady()
        let data = try received(&driver)
        #expect(data.count == 1 && data.first?.0.knownOperation == .readWrite && data.first?.1 == "ping")

        try send(&driver, fromGuest(.readWrite, guestPort: 1024, hostPort: hostPort), "pong")
        #expect(client.receive() == "pong")
        try send(&driver, fromGuest(.readWrite, guestPort: 1024, hostPort: hostPort), "unsplit", split: false)
        #expect(client.receive() == "unsplit")

        // Linux's close(): SHUTDOWN both ways, then it waits for our RST.
        try send(&driver, fromGuest(.shutdown, guestPort: 1024, hostPort: hostPort, flags: 3))
        #expect(client.receive() == nil, "the host program reads EOF")
        let reset = try received(&driver)
        #expect(reset.map { $0.0.knownOperation } == [.reset])
        #expect(device.connectionCount == 0)
        #expect(device.counters.opened == 1 && device.counters.bytesToGuest == 4 && device.counters.bytesToHost == 11)
    }

    @Test func theHostsEndIsAShutdownForTheGuest() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var (driver, device) = try started()
        let (client, hostPort) = try hostConnection(&driver)
        client.send("last words")
        client.close()
        driver.transport.backendReady()
        let packets = try received(&driver)
        #expect(packets.map { $0.0.knownOperation } == [.readWrite, .shutdown])
        #expect(packets.first?.1 == "last words" && packets.last?.0.flags == VsockHeader.Shutdown.send)
        try send(&driver, fromGuest(.shutdown, guestPort: 1024, hostPort: hostPort, flags: 3))
        #expect(try received(&driver).map { $0.0.knownOperation } == [.reset])
        #expect(device.connectionCount == 0)
    }

    @Test func aHostProgramThatLeftIsAResetNotASignal() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var (driver, device) = try started()
        let (client, hostPort) = try hostConnection(&driver)
        client.close()
        // A write to the closed socket is EPIPE for the stream (a SIGPIPE would end this process).
        try send(&driver, fromGuest(.readWrite, guestPort: 1024, hostPort: hostPort), "anyone there?")
        #expect(device.connectionCount == 0)
        #expect(try received(&driver).map { $0.0.knownOperation } == [.reset])
    }

    @Test func dataWaitsForTheGuestsCredit() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var (driver, _) = try started()
        let (client, hostPort) = try hostConnection(&driver, guestBuffer: 10)
        defer { client.close() }
        client.send(String(repeating: "x", count: 25))
        driver.transport.backendReady()
        #expect(try received(&driver).map(\.1) == [String(repeating: "x", count: 10)])
        // The guest's reader took 10 bytes: its credit update lets 10 more through.
        try send(&driver, fromGuest(.creditUpdate, guestPort: 1024, hostPort: hostPort, bufferAllocation: 10, forwardCount: 10))
        #expect(try received(&driver).map(\.1) == [String(repeating: "x", count: 10)])
        try send(&driver, fromGuest(.creditUpdate, guestPort: 1024, hostPort: hostPort, bufferAllocation: 10, forwardCount: 20))
        #expect(try received(&driver).map(\.1) == [String(repeating: "x", count: 5)])
        // A credit request is answered with our own buffer and count.
        try send(&driver, fromGuest(.creditRequest, guestPort: 1024, hostPort: hostPort, bufferAllocation: 10, forwardCount: 25))
        let update = try received(&driver)
        #expect(update.map { $0.0.knownOperation } == [.creditUpdate] && update.first?.0.bufferAllocation == VsockUnixBackend.bufferAllocation)
    }

    @Test func guestConnectsToTheHostsPortSocket() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var (driver, device) = try started()
        let server = try VsockUnixBackend.listen(at: path + "_5000")
        defer { close(server) }
        try send(&driver, fromGuest(.request, guestPort: 40000, hostPort: 5000))
        let answer = try received(&driver)
        #expect(answer.map { $0.0.knownOperation } == [.response])
        #expect(answer.first?.0.destinationPort == 40000 && answer.first?.0.sourcePort == 5000)
        var accepted: Int32 = -1
        for _ in 0..<100 where accepted < 0 {
            accepted = accept(server, nil, nil)
            if accepted < 0 { usleep(10_000) }
        }
        try #require(accepted >= 0)
        let peer = HostSocket(fd: accepted)
        defer { peer.close() }
        try send(&driver, fromGuest(.readWrite, guestPort: 40000, hostPort: 5000), "hello host")
        #expect(peer.receive() == "hello host")
        peer.send("hello guest")
        driver.transport.backendReady()
        #expect(try received(&driver).map(\.1) == ["hello guest"])
        #expect(device.counters.opened == 1)

        // Nobody at port 5001: refused.
        try send(&driver, fromGuest(.request, guestPort: 40001, hostPort: 5001))
        #expect(try received(&driver).map { $0.0.knownOperation } == [.reset])
    }

    @Test func aMisbehavingGuestBreaksOnlyItsOwnStreams() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var (driver, device) = try started()
        let (client, hostPort) = try hostConnection(&driver)
        defer { client.close() }

        // Data for a connection that does not exist, and a stray response: RST each.
        try send(&driver, fromGuest(.readWrite, guestPort: 7, hostPort: 99), "nobody")
        try send(&driver, fromGuest(.response, guestPort: 8, hostPort: 98))
        // An unknown operation on the live stream: that stream is reset.
        try send(&driver, fromGuest(.readWrite, guestPort: 1024, hostPort: hostPort).with { $0.operation = 42 })
        #expect(try received(&driver).map { $0.0.knownOperation } == [.reset, .reset, .reset])
        #expect(device.connectionCount == 0, "the unknown operation named a live stream: it was reset")
        #expect(client.receive() == nil)

        // From another CID: dropped, not answered. Shorter than a header, or a
        // length beyond what the chain holds: counted and returned.
        try send(&driver, fromGuest(.request, guestPort: 1, hostPort: 1).with { $0.sourceCID = 77 })
        try driver.memory.write(bytes: [UInt8](repeating: 1, count: 20), at: Self.txBuffer)
        try driver.submit(1, [.init(address: Self.txBuffer, length: 20)])
        var lying = fromGuest(.readWrite, guestPort: 1, hostPort: 1)
        lying.length = 5000
        try driver.memory.write(bytes: lying.bytes + [1, 2, 3], at: Self.txBuffer + 0x100)
        try driver.submit(1, [.init(address: Self.txBuffer + 0x100, length: 47)])
        driver.notify(1)
        #expect(try driver.takeUsed(1).count == 2)
        #expect(device.malformedPackets == 2)
        #expect(try received(&driver).isEmpty)
        #expect(driver.problems.all.isEmpty, "the transport saw valid chains")
    }

    @Test func sendingBeyondTheCreditResetsTheStream() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var (driver, device) = try started()
        let (client, hostPort) = try hostConnection(&driver)
        defer { client.close() }
        // Nobody reads the host socket: 256 KiB fit (our buffer) plus what the
        // kernel's socket buffer takes; the guest then ignores the credit.
        let chunk = String(repeating: "z", count: 60000)
        var reset = false
        for _ in 0..<200 where !reset {
            try send(&driver, fromGuest(.readWrite, guestPort: 1024, hostPort: hostPort), chunk, split: false)
            reset = device.connectionCount == 0
        }
        #expect(reset)
        #expect(try received(&driver).contains { $0.0.knownOperation == .reset })
    }

    @Test func badConnectLinesAreHungUpOn() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var (driver, device) = try started()
        let wrong = try HostSocket.connect(path)
        defer { wrong.close() }
        wrong.send("HELLO 1024\n")
        let long = try HostSocket.connect(path)
        defer { long.close() }
        long.send(String(repeating: "C", count: 40))
        driver.transport.backendReady()
        #expect(wrong.receive() == nil && long.receive() == nil)
        #expect(try received(&driver).isEmpty && device.connectionCount == 0)
        // A client that leaves before the guest answers: the guest hears RST.
        let early = try HostSocket.connect(path)
        early.send("CONNECT 1024\n")
        driver.transport.backendReady()
        #expect(try received(&driver).map { $0.0.knownOperation } == [.request])
        early.close()
        driver.transport.backendReady()
        #expect(try received(&driver).map { $0.0.knownOperation } == [.reset])
    }

    @Test func aRestoreTellsTheGuestItsConnectionsAreGone() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var (driver, device) = try started()
        let (client, _) = try hostConnection(&driver)
        defer { client.close() }
        device.restored()
        driver.transport.backendReady()
        let events = try driver.takeUsed(2)
        #expect(events.count == 1 && events.first?.length == 4)
        #expect(try driver.memory.readBytes(at: 0x3F000, count: 4) == [0, 0, 0, 0]) // TRANSPORT_RESET
        #expect(device.connectionCount == 0 && client.receive() == nil)
        driver.transport.backendReady()
        #expect(try driver.takeUsed(2).isEmpty, "said once")
    }

    @Test func listeningRefusesAnythingButAStaleSocket() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/plain"
        #expect(FileManager.default.createFile(atPath: file, contents: Data("keep".utf8)))
        #expect(throws: VsockUnixBackend.SetupError.self) { try VsockUnixBackend.listen(at: file) }
        #expect(FileManager.default.contents(atPath: file) == Data("keep".utf8), "nothing lost")
        #expect(throws: VsockUnixBackend.SetupError.self) { try VsockUnixBackend.listen(at: directory + "/" + String(repeating: "p", count: 120)) }
        let first = try VsockUnixBackend.listen(at: path)
        close(first)
        let second = try VsockUnixBackend.listen(at: path) // the stale socket is replaced
        close(second)
    }

    @Test func headersRoundTripByteForByte() throws {
        let header = VsockHeader(sourceCID: 0x0102_0304_0506_0708, destinationCID: 2, sourcePort: 0xA0B0_C0D0, destinationPort: 9,
                                 operation: .creditUpdate, length: 0x1122_3344, flags: 3, bufferAllocation: 0x5566_7788, forwardCount: 1)
        let bytes = header.bytes
        #expect(bytes.count == 44)
        #expect(Array(bytes[0..<8]) == [8, 7, 6, 5, 4, 3, 2, 1])
        #expect(Array(bytes[28..<32]) == [1, 0, 6, 0]) // type stream, op CREDIT_UPDATE
        #expect(VsockHeader(bytes) == header)
        #expect(VsockHeader(bytes.dropLast()) == nil)
    }
}

extension VsockHeader {
    func with(_ change: (inout VsockHeader) -> Void) -> VsockHeader {
        var copy = self
        change(&copy)
        return copy
    }
}
