import CSystem
import Glibc
import Synchronization
import Host

/// One thread waiting in epoll on every host file descriptor devices care
/// about (queue-notify eventfds, TAPs), so device work stays off the vCPU
/// threads. Handlers run on the loop thread, one at a time.
final class EventLoop: Sendable {
    typealias Handler = @Sendable () -> Void

    private let epoll: Int32
    private let wake: EventFD
    /// `pause()`: asks the loop to stop between handlers, hears it did, lets it go on.
    private let pauseRequest: EventFD
    private let paused: EventFD
    private let unpaused: EventFD
    private let handlers = Mutex<[Int32: Handler]>([:])
    private let thread = Mutex<NativeThread?>(nil)
    /// CPU time the loop thread used, in nanoseconds, once it stopped.
    private let cpuTime = Atomic<UInt64>(0)

    init() throws(MachineError) {
        wake = try EventFD()
        pauseRequest = try EventFD()
        paused = try EventFD(blocking: true)
        unpaused = try EventFD(blocking: true)
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw .system("epoll_create1", errno) }
        try add(wake.fd, events: UInt32(EPOLLIN.rawValue))
        try add(pauseRequest.fd, events: UInt32(EPOLLIN.rawValue))
    }

    /// Holds the loop thread between handlers, so that no device work is
    /// under way until `resume()` (a snapshot's device state and memory stay
    /// consistent). Returns once the loop is held; the loop must be running.
    func pause() {
        pauseRequest.signal()
        paused.wait()
    }

    func resume() { unpaused.signal() }

    deinit { close(epoll) }

    /// Calls `handler` on the loop thread whenever `fd` is readable.
    /// `edgeTriggered`: only when new data arrives (the handler drains what it can).
    /// Throws `.system("epoll_ctl", EPERM)` for a file epoll cannot watch
    /// (a regular file, /dev/null): such a file is always readable.
    func register(_ fd: Int32, edgeTriggered: Bool = false, _ handler: @escaping Handler) throws(MachineError) {
        handlers.withLock { $0[fd] = handler }
        var events = UInt32(EPOLLIN.rawValue)
        if edgeTriggered { events |= UInt32(EPOLLET.rawValue) }
        do { try add(fd, events: events) } catch {
            handlers.withLock { _ = $0.removeValue(forKey: fd) }
            throw error
        }
    }

    /// Stops or resumes watching a registered `fd` (level-triggered), e.g.
    /// while its reader cannot take more.
    func watch(_ fd: Int32, _ enabled: Bool) {
        var event = epoll_event()
        event.events = enabled ? UInt32(EPOLLIN.rawValue) : 0
        event.data.fd = fd
        _ = epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &event)
    }

    /// Forgets `fd` and its handler.
    func unregister(_ fd: Int32) {
        _ = epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nil)
        handlers.withLock { _ = $0.removeValue(forKey: fd) }
    }

    private func add(_ fd: Int32, events: UInt32) throws(MachineError) {
        var event = epoll_event()
        event.events = events
        event.data.fd = fd
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) == 0 else { throw .system("epoll_ctl", errno) }
    }

    /// Starts the loop thread; `prepare` runs on it first (the seccomp list).
    func start(prepare: @escaping @Sendable () -> Void = {}) throws(MachineError) {
        let started = try NativeThread { [self] in
            prepare()
            run()
        }
        thread.withLock { $0 = started }
    }

    /// Stops the loop and waits for the thread; returns its CPU time in seconds.
    @discardableResult
    func stop() -> Double {
        wake.signal()
        thread.withLock { $0.take() }?.join()
        return Double(cpuTime.load(ordering: .relaxed)) / 1e9
    }

    private func run() {
        var events = [epoll_event](repeating: epoll_event(), count: 32)
        loop: while true {
            let count = events.withUnsafeMutableBufferPointer { space in retryingInterrupts { epoll_wait(epoll, space.baseAddress, 32, -1) } }
            if count < 0 { break }
            for event in events.prefix(Int(count)) {
                let fd = event.data.fd
                if fd == wake.fd { break loop }
                if fd == pauseRequest.fd {
                    pauseRequest.drain()
                    paused.signal()
                    unpaused.wait()
                    continue
                }
                handlers.withLock { $0[fd] }?()
            }
        }
        var usage = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &usage)
        cpuTime.store(UInt64(usage.tv_sec) * 1_000_000_000 + UInt64(usage.tv_nsec), ordering: .relaxed)
    }
}

/// An eventfd: a counter the kernel (KVM's ioeventfd, irqfd) and threads signal through.
final class EventFD: Sendable {
    let fd: Int32

    /// `blocking`: `wait()` sleeps until signalled. `semaphore`: each
    /// `wait()` takes one from the counter instead of all of it.
    init(blocking: Bool = false, semaphore: Bool = false) throws(MachineError) {
        fd = eventfd(0, Int32(EFD_CLOEXEC) | (blocking ? 0 : Int32(EFD_NONBLOCK)) | (semaphore ? Int32(EFD_SEMAPHORE) : 0))
        guard fd >= 0 else { throw .system("eventfd", errno) }
    }

    deinit { close(fd) }

    func signal(_ count: UInt64 = 1) {
        var value = count
        _ = retryingInterrupts { write(fd, &value, 8) }
    }

    /// Blocks (on a blocking eventfd) until signalled; returns what it took.
    @discardableResult
    func wait() -> UInt64 {
        var value: UInt64 = 0
        return retryingInterrupts { read(fd, &value, 8) } == 8 ? value : 0
    }

    /// Waits (on a non-blocking eventfd) until signalled or `timeoutMilliseconds`
    /// passed, then resets the counter; returns whether it had been signalled.
    func wait(timeoutMilliseconds: Int32) -> Bool {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard retryingInterrupts({ poll(&entry, 1, timeoutMilliseconds) }) == 1 else { return false }
        return drain()
    }

    /// Resets the counter; returns whether it had been signalled.
    @discardableResult
    func drain() -> Bool {
        var value: UInt64 = 0
        return read(fd, &value, 8) == 8
    }
}

/// A one-shot CLOCK_MONOTONIC timer as a file descriptor, for the event loop:
/// the machine's `--timeout` without a thread polling the clock.
final class TimerFD: Sendable {
    let fd: Int32

    /// Fires once, `seconds` from now.
    init(seconds: Double) throws(MachineError) {
        fd = timerfd_create(CLOCK_MONOTONIC, Int32(TFD_CLOEXEC | TFD_NONBLOCK))
        guard fd >= 0 else { throw .system("timerfd_create", errno) }
        var spec = itimerspec()
        let whole = seconds.rounded(.down)
        spec.it_value.tv_sec = Int(whole)
        spec.it_value.tv_nsec = max(1, Int((seconds - whole) * 1e9)) // all zero would disarm it
        guard timerfd_settime(fd, 0, &spec, nil) == 0 else {
            let error = errno
            close(fd)
            throw .system("timerfd_settime", error)
        }
    }

    deinit { close(fd) }

    /// Reads the expiration count, so that a level-triggered loop stops reporting it.
    func acknowledge() {
        var expirations: UInt64 = 0
        _ = read(fd, &expirations, 8)
    }
}
