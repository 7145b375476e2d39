import Host
import Synchronization

/// A question another thread may answer ahead of need. `offer()` (on a
/// helper thread with time to spare) and `answer()` (where the value is
/// needed) both run the work if nobody has started it yet; whoever comes
/// second gets the first one's result, waiting only if it is still being
/// worked out. So the thread that needs it never waits for a helper that
/// has not begun: at worst it does the work itself, as it would without one.
///
/// The machine asks the signal thread, which has a moment free while the
/// main thread creates the VM, for the hypervisor's supported CPUID table
/// (the kernel executes CPUID for every leaf to build it, 0.12 ms here
/// where each one traps to the hypervisor below), and then for the main
/// thread's seccomp program, whose install is on the path to the guest's
/// first instruction.
final class EarlyAnswer<Value: Sendable, Failure: Error>: Sendable {
    private enum State {
        case unasked
        case working
        case answered(Result<Value, Failure>)
    }

    private let work: @Sendable () throws(Failure) -> Value
    private let state = Mutex<State>(.unasked)
    private let done: EventFD

    init(_ work: @escaping @Sendable () throws(Failure) -> Value) throws(MachineError) {
        self.work = work
        done = try EventFD.make(blocking: true, semaphore: false)
    }

    /// Works it out unless someone has begun to.
    func offer() {
        guard claim() else { return }
        finish()
    }

    /// The answer: worked out here if nobody has begun, else the other
    /// thread's (waiting for it to finish if need be).
    func answer() throws(Failure) -> Value {
        if claim() { return try finish().get() }
        while true {
            if case let .answered(result) = state.withLock({ $0 }) { return try result.get() }
            _ = done.wait()
        }
    }

    private func claim() -> Bool {
        state.withLock { state in
            guard case .unasked = state else { return false }
            state = .working
            return true
        }
    }

    @discardableResult
    private func finish() -> Result<Value, Failure> {
        let result: Result<Value, Failure>
        do throws(Failure) { result = .success(try work()) } catch { result = .failure(error) }
        state.withLock { $0 = .answered(result) }
        done.signal()
        return result
    }
}
