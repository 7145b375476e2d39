import CSystem
import Glibc

/// A one-shot CLOCK_MONOTONIC timer as a file descriptor, for an event loop:
/// a timeout without a thread polling the clock.
public final class TimerFD: Sendable {
    public let fd: Int32

    /// Fires once, `seconds` from now.
    public init(seconds: Double) throws(SystemCallError) {
        fd = timerfd_create(CLOCK_MONOTONIC, Int32(TFD_CLOEXEC | TFD_NONBLOCK))
        guard fd >= 0 else { throw SystemCallError("timerfd_create", errno) }
        var spec = itimerspec()
        let whole = seconds.rounded(.down)
        spec.it_value.tv_sec = Int(whole)
        spec.it_value.tv_nsec = max(1, Int((seconds - whole) * 1e9)) // all zero would disarm it
        guard timerfd_settime(fd, 0, &spec, nil) == 0 else {
            let error = errno
            close(fd)
            throw SystemCallError("timerfd_settime", error)
        }
    }

    deinit { close(fd) }

    /// Reads the expiration count, so that a level-triggered loop stops reporting it.
    public func acknowledge() {
        var expirations: UInt64 = 0
        _ = read(fd, &expirations, 8)
    }
}
