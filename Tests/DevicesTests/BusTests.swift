import Foundation
import Synchronization
import Testing
@testable import Devices

final class ScratchDevice: BusDevice {
    let writes = Mutex<[(UInt64, [UInt8])]>([])
    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        for index in data.indices { data[index] = UInt8(truncatingIfNeeded: offset) }
    }
    func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        writes.withLock { $0.append((offset, Array(data))) }
    }
}

@Suite struct IOBusTests {
    @Test func dispatchesByRangeWithOffsets() throws {
        let a = ScratchDevice(), b = ScratchDevice()
        var builder = IOBus.Builder()
        try builder.attach(b, at: 0x100, length: 0x10)
        try builder.attach(a, at: 0x10, length: 8)
        let bus = IOBus(name: "test", builder)
        var byte: UInt8 = 0
        withUnsafeMutableBytes(of: &byte) { #expect(bus.read(0x13, into: $0)) }
        #expect(byte == 3)
        withUnsafeBytes(of: UInt16(0xBEEF)) { #expect(bus.write(0x10F, from: $0)) }
        #expect(b.writes.withLock { $0.map(\.0) } == [0xF])
        #expect(b.writes.withLock { $0.first?.1 } == [0xEF, 0xBE])
    }

    @Test func unclaimedReadsAreAllOnesAndCounted() throws {
        let seen = Mutex<[UInt64]>([])
        let bus = IOBus(name: "test", IOBus.Builder()) { address, _, _ in seen.withLock { $0.append(address) } }
        var value: UInt32 = 0
        withUnsafeMutableBytes(of: &value) { #expect(!bus.read(0x80, into: $0)) }
        #expect(value == 0xFFFF_FFFF)
        withUnsafeBytes(of: UInt8(1)) { #expect(!bus.write(0x81, from: $0)) }
        #expect(bus.unclaimedAccesses == 2)
        #expect(seen.withLock { $0 } == [0x80, 0x81])
    }

    @Test func overlappingRangesAreRefused() throws {
        var builder = IOBus.Builder()
        try builder.attach(ScratchDevice(), at: 0x3F8, length: 8)
        #expect(throws: IOBus.AttachError.self) { try builder.attach(ScratchDevice(), at: 0x3FF, length: 1) }
        #expect(throws: IOBus.AttachError.self) { try builder.attach(ScratchDevice(), at: 0x3F0, length: 9) }
        #expect(throws: IOBus.AttachError.self) { try builder.attach(ScratchDevice(), at: UInt64.max, length: 2) }
        try builder.attach(ScratchDevice(), at: 0x400, length: 1)
    }
}

@Suite struct I8042Tests {
    @Test func resetCommandOnTheCommandPortResets() {
        let resets = Mutex(0)
        let controller = I8042 { resets.withLock { $0 += 1 } }
        #expect(controller.readByte(4) == 0) // input buffer empty: Linux proceeds
        controller.writeByte(0, 0xFE)          // data port: not a command
        controller.writeByte(4, 0xAA)          // another command
        #expect(resets.withLock { $0 } == 0)
        controller.writeByte(4, 0xFE)
        #expect(resets.withLock { $0 } == 1)
        #expect(controller.resetRequests == 1)
    }
}

@Suite struct BootMarkerTests {
    @Test func stampsPhasesWithTheClockAndCarriesValues() {
        let ticks = Mutex<UInt64>(100)
        let marker = BootMarkerDevice(clock: { ticks.withLock { $0 += 1; return $0 } })
        marker.writeByte(0, BootMarkerDevice.Phase.initStarted.rawValue)
        marker.writeByte(1, 42)
        marker.writeByte(0, BootMarkerDevice.Phase.workloadExited.rawValue)
        marker.writeByte(0, 0x7E)
        let events = marker.events
        #expect(events.map(\.phase) == [.initStarted, .workloadExited, nil])
        #expect(events.map(\.value) == [0, 42, 0])
        #expect(events.map(\.time) == [101, 102, 103])
        #expect(marker.firstTime(of: .workloadExited)?.value == 42)
    }

    @Test func aGuestWritingMarkersForEverOnlyFillsABoundedLog() {
        let marker = BootMarkerDevice(clock: { 1 })
        for _ in 0..<(BootMarkerDevice.eventLimit * 3) { marker.writeByte(0, 0x7E) }
        #expect(marker.events.count == BootMarkerDevice.eventLimit)
    }

    @Test func phaseCodesMatchTheGuestInitHeader() throws {
        // guest/init/boot_marker.h is the other side of this protocol.
        let header = try String(contentsOfFile: #filePath.replacingOccurrences(of: "Tests/DevicesTests/BusTests.swift", with: "guest/init/boot_marker.h"), encoding: .utf8)
        #expect(header.contains("#define SKIFF_MARKER_PORT 0x\(String(BootMarkerDevice.port, radix: 16))"))
        for (name, phase) in [("INIT_STARTED", BootMarkerDevice.Phase.initStarted), ("WORKLOAD_STARTED", .workloadStarted),
                              ("WORKLOAD_EXITED", .workloadExited), ("SHUTDOWN", .shutdownRequested),
                              ("CONTAINER_READY", .containerReady)] {
            #expect(header.contains("SKIFF_MARKER_\(name) = 0x0\(phase.rawValue)"), "\(name)")
        }
    }
}
