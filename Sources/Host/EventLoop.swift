import CSystem
import Glibc
import Synchronization

/// One thread waiting in epoll on every host file descriptor devices care
/// about (queue-notify eventfds, TAPs), so device work stays off the vCPU
/// threads. Handlers run on the loop thread, one at a time.
public final class EventLoop: Sendable {
    public typealias Handler = @Sendable () -> Void

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

    public init() throws(SystemCallError) {
        wake = try EventFD()
        pauseRequest = try EventFD()
        paused = try EventFD(blocking: true)
        unpaused = try EventFD(blocking: true)
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw SystemCallError("epoll_create1", errno) }
        try add(wake.fd, events: UInt32(EPOLLIN.rawValue))
        try add(pauseRequest.fd, events: UInt32(EPOLLIN.rawValue))
    }

    /// Holds the loop thread between handlers, so that no device work is
    /// under way until `resume()` (a snapshot's device state and memory stay
    /// consistent). Returns once the loop is held; the loop must be running.
    public func pause() {
        pauseRequest.signal()
        paused.wait()
    }

    public func resume() { unpaused.signal() }

    deinit { close(epoll) }

    /// Calls `handler` on the loop thread whenever `fd` is readable.
    /// `edgeTriggered`: only when new data arrives (the handler drains what it can).
    /// Throws `SystemCallError("epoll_ctl", EPERM)` for a file epoll cannot watch
    /// (a regular file, /dev/null): such a file is always readable.
    public func register(_ fd: Int32, edgeTriggered: Bool = false, _ handler: @escaping Handler) throws(SystemCallError) {
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
    public func watch(_ fd: Int32, _ enabled: Bool) {
        var event = epoll_event()
        event.events = enabled ? UInt32(EPOLLIN.rawValue) : 0
        event.data.fd = fd
        _ = epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &event)
    }

    /// Forgets `fd` and its handler.
    public func unregister(_ fd: Int32) {
        _ = epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nil)
        handlers.withLock { _ = $0.removeValue(forKey: fd) }
    }

    private func add(_ fd: Int32, events: UInt32) throws(SystemCallError) {
        var event = epoll_event()
        event.events = events
        event.data.fd = fd
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) == 0 else { throw SystemCallError("epoll_ctl", errno) }
    }

    /// Starts the loop thread; `prepare` runs on it first (the seccomp list).
    public func start(prepare: @escaping @Sendable () -> Void = {}) throws(SystemCallError) {
        let started = try NativeThread { [self] in
            prepare()
            run()
        }
        thread.withLock { $0 = started }
    }

    /// Stops the loop and waits for the thread; returns its CPU time in seconds.
    @discardableResult
    public func stop() -> Double {
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
