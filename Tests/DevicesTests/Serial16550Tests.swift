import Synchronization
import Testing
@testable import Devices

/// Records every level the device drives its interrupt line to.
final class RecordingLine: InterruptLine {
    let levels = Mutex<[Bool]>([])
    func set(high: Bool) { levels.withLock { $0.append(high) } }
    var history: [Bool] { levels.withLock { $0 } }
}

final class ByteCollector: Sendable {
    let bytes = Mutex<[UInt8]>([])
    func append(_ byte: UInt8) { bytes.withLock { $0.append(byte) } }
    var all: [UInt8] { bytes.withLock { $0 } }
}

extension BusDevice {
    func readByte(_ offset: UInt64) -> UInt8 {
        var value: UInt8 = 0
        withUnsafeMutableBytes(of: &value) { read(offset: offset, into: $0) }
        return value
    }
    func writeByte(_ offset: UInt64, _ value: UInt8) {
        withUnsafeBytes(of: value) { write(offset: offset, from: $0) }
    }
}

@Suite struct Serial16550Tests {
    let line = RecordingLine()
    let output = ByteCollector()
    var uart: Serial16550 { Serial16550(interrupt: line) { [output] in output.append($0) } }

    @Test func transmitsBytesAndAlwaysReportsTheTransmitterEmpty() {
        let uart = self.uart
        #expect(uart.readByte(5) & 0x60 == 0x60)
        for byte in "hi\n".utf8 { uart.writeByte(0, byte) }
        #expect(output.all == Array("hi\n".utf8))
        #expect(line.history.isEmpty) // no interrupts enabled, no edges
    }

    @Test func transmitEmptyInterruptIsRaisedAndAcknowledgedByReadingIIR() {
        let uart = self.uart
        #expect(uart.readByte(2) & 0x0F == 0x01)      // nothing pending
        uart.writeByte(1, 0x02)                        // IER: transmitter empty
        #expect(line.history == [true])                // enabling it raises one at once
        #expect(uart.readByte(2) & 0x0F == 0x02)      // IIR says THRE ...
        #expect(line.history == [true, false])         // ... and reading it acknowledges
        #expect(uart.readByte(2) & 0x0F == 0x01)
        uart.writeByte(0, 0x41)                        // sending raises it again
        #expect(line.history == [true, false, true])
    }

    @Test func receivedDataRaisesItsInterruptUntilDrained() {
        let uart = self.uart
        uart.writeByte(1, 0x01)                        // IER: received data
        #expect(line.history.isEmpty)
        #expect(uart.receive([0x61, 0x62]) == 2)
        #expect(line.history == [true])
        #expect(uart.readByte(5) & 0x01 == 0x01)       // LSR data ready
        #expect(uart.readByte(2) & 0x0F == 0x04)       // IIR: received data has priority
        #expect(uart.readByte(0) == 0x61)
        #expect(uart.readByte(0) == 0x62)
        #expect(line.history == [true, false])
        #expect(uart.readByte(5) & 0x01 == 0)
    }

    @Test func divisorLatchShadowsDataAndInterruptEnable() {
        let uart = self.uart
        uart.writeByte(3, 0x80)                        // DLAB on
        uart.writeByte(0, 0x01)
        uart.writeByte(1, 0x00)
        #expect(uart.readByte(0) == 0x01)
        #expect(output.all.isEmpty)                    // a divisor write is not a byte sent
        uart.writeByte(3, 0x03)
        #expect(uart.readByte(1) == 0x00)
    }

    @Test func loopbackModeAsLinuxProbesIt() {
        let uart = self.uart
        uart.writeByte(4, 0x1A)                        // loop, OUT2, RTS
        #expect(uart.readByte(6) & 0xF0 == 0x90)       // DCD and CTS
        uart.writeByte(0, 0x55)
        #expect(output.all.isEmpty)
        #expect(uart.readByte(0) == 0x55)
        uart.writeByte(4, 0x0B)
        #expect(uart.readByte(6) & 0xB0 == 0xB0)
    }

    @Test func fifoControlReportsAndClears() {
        let uart = self.uart
        uart.receive([1, 2, 3])
        uart.writeByte(2, 0x07)                        // enable and clear FIFOs
        #expect(uart.readByte(2) & 0xC0 == 0xC0)
        #expect(uart.pendingInput == 0)
    }

    @Test func receiveRefusesWhatDoesNotFit() {
        let uart = self.uart
        let big = [UInt8](repeating: 0x20, count: Serial16550.receiveCapacity + 10)
        #expect(uart.receive(big) == Serial16550.receiveCapacity)
        #expect(uart.receive([1]) == 0)
    }
}
