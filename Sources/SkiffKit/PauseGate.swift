import Glibc
import Host
import Hypervisor
import Synchronization

/// Brings every vCPU to a stop where its state is complete, and holds it there
/// (a snapshot, or any other pause). A vCPU parks from its own run loop: it
/// re-enters KVM_RUN once with `immediate_exit`, which completes the port or
/// MMIO access it last exited for without running the guest, then saves its
/// state from its own thread (KVM wants vCPU ioctls there) and waits.
final class PauseGate: Sendable {
    private struct Tally {
        var parked = 0
        /// vCPU threads that ended (the machine stopped); they will never park.
        var ended = 0
        var states: [Int: Result<[UInt8], HypervisorError>] = [:]
    }

    private let requested = Atomic<Bool>(false)
    private let tally = Mutex(Tally())
    private let release: EventFD
    /// Signalled each time a vCPU parks or its thread ends, so that
    /// `waitForAll` sleeps until the tally changes instead of polling it.
    private let changed: EventFD

    init() throws(MachineError) {
        release = try EventFD.make(blocking: true, semaphore: true)
        changed = try EventFD.make(blocking: true)
    }

    /// Checked by each vCPU loop on every exit (no lock).
    var isRequested: Bool { requested.load(ordering: .acquiring) }

    /// Asks the vCPUs to park; the caller then kicks them.
    func request() {
        tally.withLock { $0.parked = 0; $0.states = [:] }
        requested.store(true, ordering: .releasing)
    }

    /// On the vCPU's thread: complete the pending exit, save, wait for `resume`.
    func park(_ vcpu: any VirtualCPU) {
        vcpu.kick()
        let state: Result<[UInt8], HypervisorError>
        do {
            _ = try vcpu.runOnce() // returns .interrupted at once, the last access completed
            state = .success(try vcpu.captureState())
        } catch {
            state = .failure(error)
        }
        tally.withLock { $0.parked += 1; $0.states[vcpu.id] = state }
        changed.signal()
        release.wait()
    }

    /// A vCPU thread ends: nobody should wait for it to park.
    func ended() {
        tally.withLock { $0.ended += 1 }
        changed.signal()
    }

    /// Waits until each of `count` vCPUs has parked or ended; returns the
    /// parked ones' states by vCPU id, and whether every vCPU parked.
    func waitForAll(_ count: Int) -> (states: [Int: Result<[UInt8], HypervisorError>], complete: Bool) {
        while true {
            let (done, states, all) = tally.withLock { ($0.parked + $0.ended >= count, $0.states, $0.ended == 0) }
            if done { return (states, all) }
            changed.wait() // a change since the check above leaves the counter set
        }
    }

    /// Lets the parked vCPUs run on.
    func resume() {
        let parked = tally.withLock { $0.parked }
        requested.store(false, ordering: .releasing)
        if parked > 0 { release.signal(UInt64(parked)) }
    }
}
