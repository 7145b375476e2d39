import CSystem
import Glibc

/// An eventfd: a counter the kernel (KVM's ioeventfd, irqfd) and threads
/// signal each other through, and that an event loop can wait on.
public final class EventFD: Sendable {
    public let fd: Int32

    /// `blocking`: `wait()` sleeps until signalled. `semaphore`: each
    /// `wait()` takes one from the counter instead of all of it.
    public init(blocking: Bool = false, semaphore: Bool = false) throws(SystemCallError) {
        fd = eventfd(0, Int32(EFD_CLOEXEC) | (blocking ? 0 : Int32(EFD_NONBLOCK)) | (semaphore ? Int32(EFD_SEMAPHORE) : 0))
        guard fd >= 0 else { throw SystemCallError("eventfd", errno) }
    }

    deinit { close(fd) }

    public func signal(_ count: UInt64 = 1) {
        var value = count
        _ = retryingInterrupts { write(fd, &value, 8) }
    }

    /// Blocks (on a blocking eventfd) until signalled; returns what it took.
    @discardableResult
    public func wait() -> UInt64 {
        var value: UInt64 = 0
        return retryingInterrupts { read(fd, &value, 8) } == 8 ? value : 0
    }

    /// Waits (on a non-blocking eventfd) until signalled or `timeoutMilliseconds`
    /// passed, then resets the counter; returns whether it had been signalled.
    public func wait(timeoutMilliseconds: Int32) -> Bool {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard retryingInterrupts({ poll(&entry, 1, timeoutMilliseconds) }) == 1 else { return false }
        return drain()
    }

    /// Resets the counter; returns whether it had been signalled.
    @discardableResult
    public func drain() -> Bool {
        var value: UInt64 = 0
        return read(fd, &value, 8) == 8
    }
}
