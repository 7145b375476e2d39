import CSystem
import Devices
import Glibc
import Host
import Synchronization
import Testing
@testable import SkiffKit

/// Standard input into a guest UART through the event loop: a test thread
/// plays the guest reading the receive register, as Linux's 8250 driver does.
@Suite struct InputRelayTests {
    /// Reads what the UART holds until `done` says the bytes are complete (5 s at most).
    func guestReads(_ serial: Serial16550, until done: ([UInt8]) -> Bool) -> [UInt8] {
        var received: [UInt8] = []
        var byte: UInt8 = 0
        let deadline = MonotonicClock.now() + 5_000_000_000
        while !done(received) && MonotonicClock.now() < deadline {
            if serial.pendingInput == 0 { usleep(200); continue }
            withUnsafeMutableBytes(of: &byte) { serial.read(offset: 0, into: $0) }
            received.append(byte)
        }
        return received
    }

    func decode(_ framed: [UInt8]) -> (bytes: [UInt8], ended: Bool) {
        var bytes: [UInt8] = []
        var index = 0
        while index < framed.count {
            if framed[index] == StandardInputFraming.escape, index + 1 < framed.count {
                if framed[index + 1] == 0 { return (bytes, true) }
                bytes.append(framed[index + 1])
                index += 2
            } else {
                bytes.append(framed[index])
                index += 1
            }
        }
        return (bytes, false)
    }

    /// 20 000 bytes of every value, more than the UART's 4 KiB buffer holds:
    /// the relay waits for the guest to drain it (no polling), keeps the
    /// order, and ends with the end-of-input frame.
    func relaysFramed(from fd: Int32, expecting input: [UInt8]) throws {
        let loop = try EventLoop()
        let serial = Serial16550(interrupt: DisconnectedInterruptLine()) { _ in }
        let relay = try InputRelay(from: fd, to: serial, style: .framed, loop: loop, detach: {})
        try loop.start()
        try relay.start()
        let expected = StandardInputFraming.encode(input) + StandardInputFraming.endOfInput
        let received = guestReads(serial) { $0.count >= expected.count }
        loop.stop()
        let (bytes, ended) = decode(received)
        #expect(ended, "end of input arrives after \(bytes.count) bytes")
        #expect(bytes.count == input.count)
        #expect(bytes == input, "the bytes and their order")
    }

    static let input: [UInt8] = (0..<20_000).map { UInt8(truncatingIfNeeded: $0 * 7 + $0 / 256) }

    @Test func aPipeIsRelayedInOrderThroughTheFullBuffer() throws {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let written = Self.input.withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }
        try #require(written == Self.input.count)
        close(fds[1])
        try relaysFramed(from: fds[0], expecting: Self.input)
    }

    /// A regular file (epoll refuses it) is read as the guest takes it.
    @Test func aRegularFileIsRelayedThoughEpollCannotWatchIt() throws {
        var template = Array("/tmp/skiff-input-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        try #require(fd >= 0)
        defer { close(fd); unlink(String(cString: template)) }
        let written = Self.input.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        try #require(written == Self.input.count)
        lseek(fd, 0, SEEK_SET)
        try relaysFramed(from: fd, expecting: Self.input)
    }

    /// On a terminal, Ctrl-a Ctrl-a sends one Ctrl-a and Ctrl-a x detaches;
    /// nothing after the escape reaches the guest.
    @Test func theCtrlAEscapeOnATerminal() throws {
        var master: Int32 = -1, slave: Int32 = -1
        try #require(csystem_open_pty(&master, &slave) == 0)
        defer { close(master); close(slave) }
        var raw = termios()
        tcgetattr(slave, &raw)
        cfmakeraw(&raw)
        tcsetattr(slave, TCSANOW, &raw)
        let loop = try EventLoop()
        let serial = Serial16550(interrupt: DisconnectedInterruptLine()) { _ in }
        let detached = Atomic<Bool>(false)
        let relay = try InputRelay(from: slave, to: serial, style: .interactive, loop: loop) {
            detached.store(true, ordering: .relaxed)
        }
        try loop.start()
        try relay.start()
        let typed: [UInt8] = Array("ab".utf8) + [0x01, 0x01] + Array("c".utf8) + [0x01] + Array("xafter".utf8)
        _ = typed.withUnsafeBytes { write(master, $0.baseAddress, $0.count) }
        let received = guestReads(serial) { $0.count >= 4 }
        for _ in 0..<500 where !detached.load(ordering: .relaxed) { usleep(10_000) }
        usleep(50_000)
        loop.stop()
        #expect(received == Array("ab".utf8) + [0x01] + Array("c".utf8))
        #expect(serial.pendingInput == 0, "nothing after Ctrl-a x is sent")
        let didDetach = detached.load(ordering: .relaxed)
        #expect(didDetach)
    }
}
