import Glibc
import Host
import Synchronization
import Testing
@testable import SkiffKit

/// The event loop and what runs on it: eventfds, a one-shot timer, and the
/// relays that take device output off the vCPU threads.
@Suite struct EventLoopTests {
    /// Waits up to 5 s for `condition`.
    func eventually(_ condition: () -> Bool) -> Bool {
        for _ in 0..<500 {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }

    @Test func anEventFDSignalRunsItsHandlerOnTheLoopThread() throws {
        let loop = try EventLoop()
        let event = try EventFD()
        let calls = Atomic<Int>(0)
        let callingThread = Atomic<UInt>(0)
        try loop.register(event.fd) {
            event.drain()
            callingThread.store(UInt(pthread_self()), ordering: .relaxed)
            _ = calls.add(1, ordering: .relaxed)
        }
        try loop.start()
        event.signal()
        #expect(eventually { calls.load(ordering: .relaxed) == 1 })
        event.signal()
        event.signal() // two signals before the handler runs are one wake-up
        #expect(eventually { calls.load(ordering: .relaxed) >= 2 })
        #expect(callingThread.load(ordering: .relaxed) != UInt(pthread_self()), "handlers run on the loop's thread")
        loop.stop()
    }

    @Test func anEventFDWaitEndsWhenSignalledOrAtItsTimeout() throws {
        let event = try EventFD()
        let before = MonotonicClock.now()
        #expect(!event.wait(timeoutMilliseconds: 50))
        #expect(MonotonicClock.now() - before >= 45_000_000)
        let thread = try NativeThread { usleep(20_000); event.signal(3) }
        #expect(event.wait(timeoutMilliseconds: 5_000))
        thread.join()
        #expect(!event.drain(), "the wait took the whole count")
    }

    @Test func aTimerFiresOnceAtItsTime() throws {
        let loop = try EventLoop()
        let started = MonotonicClock.now()
        let fired = Atomic<UInt64>(0)
        let timer = try TimerFD(seconds: 0.05)
        try loop.register(timer.fd) {
            timer.acknowledge()
            _ = fired.compareExchange(expected: 0, desired: MonotonicClock.now(), ordering: .relaxed)
        }
        try loop.start()
        #expect(eventually { fired.load(ordering: .relaxed) != 0 })
        let elapsed = fired.load(ordering: .relaxed) &- started
        #expect(elapsed >= 50_000_000, "not before its time: \(elapsed) ns")
        loop.stop()
    }

    @Test func relayedOutputArrivesInOrderFromTheLoopAndOnFlush() throws {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let flags = fcntl(fds[0], F_GETFL)
        _ = fcntl(fds[0], F_SETFL, flags | O_NONBLOCK)
        func drain() -> [UInt8] {
            var result: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
                guard count > 0 else { return result }
                result += buffer[0..<count]
            }
        }
        let loop = try EventLoop()
        let relay = try OutputRelay(fd: fds[1], loop: loop)
        try loop.start()
        for byte in Array("hello, guest\n".utf8) { relay.append(byte) }
        var received: [UInt8] = []
        #expect(eventually { received += drain(); return received == Array("hello, guest\n".utf8) })
        loop.stop()
        // After the loop stopped, what is left goes out on flush().
        for byte in Array("bye".utf8) { relay.append(byte) }
        relay.flush()
        #expect(drain() == Array("bye".utf8))
    }
}
