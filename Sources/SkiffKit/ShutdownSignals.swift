import CSystem
import Glibc
import Host
import Synchronization

/// SIGINT, SIGTERM, SIGHUP and SIGQUIT end `skiff` the same way wherever it
/// is: they are blocked in every thread (``install()`` runs before any thread
/// exists, and threads inherit the mask) and one thread waits for them with
/// sigwait. On a signal it runs what the current phase registered — the
/// machine stops its vCPUs and returns normally, a disk build kills mkfs and
/// removes its scratch — and if no running machine takes over, restores the
/// terminal and exits 128+N itself. A second signal exits at once.
public enum ShutdownSignals {
    public static let handled: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT]

    /// What a phase does on a signal; returns true if it will make the process
    /// exit itself (a running machine), false if it only cleaned up.
    public typealias Handler = @Sendable (Int32) -> Bool

    private struct State {
        var handlers: [Int: Handler] = [:]
        var next = 0
        var received: Int32?
        /// The waiting thread, once started.
        var thread: pthread_t?
        /// What `confine` asked the waiting thread to run (its seccomp list).
        var confinement: (@Sendable () -> Void)?
        /// SIGWINCH: the terminal's size changed (not a shutdown).
        var windowChanged: [Int: @Sendable () -> Void] = [:]
    }
    /// Wakes the waiting thread to run `confinement`; blocked everywhere like the others.
    static var confineSignal: Int32 { csystem_wake_signal() }
    /// Signalled by the waiting thread once it ran a `confinement`.
    private static let confined = try? EventFD()
    private static let state = Mutex(State())

    /// The first signal received, if any.
    public static var received: Int32? { state.withLock { $0.received } }

    /// Blocks the signals in the calling thread (and so in every thread it
    /// starts) and starts the thread that waits for them. Call once, first thing.
    public static func install() {
        var set = signalSet()
        sigaddset(&set, confineSignal)
        sigaddset(&set, SIGWINCH)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        startWaiting()
    }

    /// The thread that sigwaits for the blocked signals.
    /// Its handle is recorded before this returns, so that a `startConfining`
    /// right after a fork (the jail) reaches the new thread: the signal it
    /// sends waits, blocked, until the thread sigwaits for it.
    private static func startWaiting() {
        guard let thread = try? NativeThread(waitForSignals) else { return }
        state.withLock { $0.thread = thread.handle }
        thread.detach()
    }

    /// In a child made by fork (the jail): the waiting thread did not come
    /// along, nor should the parent's handlers. The signals are still blocked
    /// (fork keeps the mask); a new thread waits for them.
    static func restartAfterFork() {
        state.withLock { $0 = State() }
        startWaiting()
    }

    /// Starts `install` on the waiting thread (it is asleep in sigwait, so it
    /// is woken by a signal of its own) and returns at once; the result's
    /// `wait()` returns once it ran, so that the caller can confine itself in
    /// the meantime. Without the thread (`install()` never called) nothing
    /// happens. The machine does this on its start path, where the polling
    /// loop it replaces cost at least one 200 µs sleep.
    public static func startConfining(_ install: @escaping @Sendable () -> Void) -> Confining {
        guard let thread = state.withLock({ state -> pthread_t? in
            state.confinement = install
            return state.thread
        }) else { return Confining(started: false) }
        confined?.drain()
        pthread_kill(thread, confineSignal)
        return Confining(started: true)
    }

    /// A confinement `startConfining` asked the waiting thread for.
    public struct Confining: Sendable {
        let started: Bool

        /// Returns once the waiting thread ran it, or after a second (a thread
        /// that does not answer must not hang the machine's start).
        public func wait() {
            guard started, let confined = ShutdownSignals.confined else { return }
            _ = confined.wait(timeoutMilliseconds: 1000)
        }
    }

    /// Calls `handler` on every SIGWINCH (the terminal was resized) until
    /// the returned token's `cancel()`.
    public static func onWindowChange(_ handler: @escaping @Sendable () -> Void) -> Registration {
        let id = state.withLock { state -> Int in
            state.next += 1
            state.windowChanged[state.next] = handler
            return state.next
        }
        return Registration(id: id)
    }

    /// Registers `handler` until the returned token's `cancel()`.
    public static func register(_ handler: @escaping Handler) -> Registration {
        let id = state.withLock { state -> Int in
            state.next += 1
            state.handlers[state.next] = handler
            return state.next
        }
        return Registration(id: id)
    }

    public struct Registration: Sendable {
        let id: Int
        public func cancel() {
            ShutdownSignals.state.withLock {
                $0.handlers.removeValue(forKey: id)
                $0.windowChanged.removeValue(forKey: id)
            }
        }
    }

    /// The signals as a sigset_t.
    static func signalSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in handled { sigaddset(&set, signal) }
        return set
    }

    private static func waitForSignals() {
        var set = signalSet()
        sigaddset(&set, confineSignal)
        sigaddset(&set, SIGWINCH)
        while true {
            var signal: Int32 = 0
            guard sigwait(&set, &signal) == 0 else { continue }
            if signal == SIGWINCH {
                for handler in state.withLock({ Array($0.windowChanged.values) }) { handler() }
                continue
            }
            if signal == confineSignal {
                state.withLock { $0.confinement.take() }?()
                confined?.signal()
                continue
            }
            let (first, handlers) = state.withLock { state -> (Bool, [Handler]) in
                let first = state.received == nil
                if first { state.received = signal }
                return (first, state.handlers.sorted { $0.key > $1.key }.map(\.value))
            }
            guard first else { exitNow(signal) }
            var takenOver = false
            for handler in handlers where handler(signal) { takenOver = true }
            if !takenOver { exitNow(signal) }
        }
    }

    /// Ends the process by `signal` itself, as a process killed by it would
    /// end (a waiting parent reads WIFSIGNALED): the OCI runtime's monitor
    /// stands for a container whose process died so. Exits 128+N if the
    /// signal does not end it.
    public static func die(by signal: Int32) -> Never {
        TerminalMode.restore()
        Glibc.signal(signal, SIG_DFL)
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, signal)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        raise(signal)
        _exit(128 + signal)
    }

    private static func exitNow(_ signal: Int32) -> Never {
        TerminalMode.restore()
        _exit(128 + signal)
    }
}
