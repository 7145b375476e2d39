import Glibc

/// Why the VM stopped.
public enum StopReason: Sendable, Equatable, CustomStringConvertible {
    /// The guest reset the machine (i8042 or KVM system event).
    case reset
    case powerOff
    /// A vCPU shut down (a triple fault, which resets a PC) before the guest
    /// wrote any boot marker: a broken kernel, or a tiny guest resetting on purpose.
    case tripleFault
    /// Skiff's init had started but the machine reset without its clean-shutdown
    /// marker (init died), or the guest reported a crash.
    case guestCrashed
    /// The guest kernel printed "Kernel panic - not syncing".
    case kernelPanic
    case detached
    /// SIGINT, SIGTERM, SIGHUP or SIGQUIT reached skiff (ShutdownSignals).
    case signal(Int32)
    case timeout(seconds: Double)
    case emulationFailure(String)
    case vmmError(String)
    /// `--snapshot-at ... --snapshot-to DIR` without carrying on: saved, stopped.
    case snapshotSaved(String)

    public var description: String {
        switch self {
        case .reset: return "the guest reset the machine"
        case .powerOff: return "the guest powered off"
        case .tripleFault: return "the guest triple-faulted before it wrote any boot marker (a broken kernel?); treated as a reset"
        case .guestCrashed: return "the guest reset without a clean shutdown (init died or the guest crashed)"
        case .kernelPanic: return "the guest kernel panicked (\"Kernel panic - not syncing\" on its console)"
        case .detached: return "detached from the console (Ctrl-a x)"
        case let .signal(number): return "stopped by \(signalName(number))"
        case let .timeout(seconds): return "stopped after the \(seconds) s timeout"
        case let .emulationFailure(detail): return "the guest ran an instruction KVM cannot emulate: \(detail)"
        case let .vmmError(detail): return "VMM error: \(detail)"
        case let .snapshotSaved(directory): return "snapshot saved to \(directory); the machine stopped there"
        }
    }

    /// The process exit status this stop calls for.
    public var exitStatus: Int32 {
        switch self {
        case .reset, .powerOff, .tripleFault, .detached, .snapshotSaved: return 0
        case .timeout: return 124
        case let .signal(number): return 128 + number
        case .guestCrashed, .kernelPanic, .emulationFailure, .vmmError: return 1
        }
    }
}

/// How the guest ended its run, as the VMM saw it (before any judgement).
public enum GuestStop: Sendable, Equatable {
    /// A reset through the platform's reset controller (x86: the i8042's
    /// reset line, Linux `reboot=k`).
    case reset
    /// A vCPU shut down: a triple fault, which resets a PC.
    case tripleFault
    /// KVM_EXIT_SYSTEM_EVENT with KVM's type: 1 shutdown, 2 reset, 5 crash.
    case systemEvent(UInt32)
    /// HLT with nothing to wake the vCPU (a guest without an interrupt controller).
    case halted
}

/// What the guest said about itself before it stopped.
public struct GuestTestimony: Sendable, Equatable {
    /// Skiff's init wrote its first boot marker.
    public var initStarted = false
    /// Skiff's init announced a clean shutdown.
    public var shutdownRequested = false
    /// The kernel printed "Kernel panic - not syncing" on its console.
    public var kernelPanicked = false
    /// Any boot marker at all beyond the VMM's own first-instruction stamp.
    public var anyGuestMarker = false

    public init(initStarted: Bool = false, shutdownRequested: Bool = false, kernelPanicked: Bool = false,
                anyGuestMarker: Bool = false) {
        self.initStarted = initStarted; self.shutdownRequested = shutdownRequested
        self.kernelPanicked = kernelPanicked; self.anyGuestMarker = anyGuestMarker
    }
}

/// The one place that decides what a guest's stop means: every way a guest
/// can end (reset controller, triple fault, system event, HLT) gets the same checks, so
/// a crash is a crash however the machine went down.
public enum StopPolicy {
    public static func reason(for stop: GuestStop, given testimony: GuestTestimony) -> StopReason {
        if testimony.kernelPanicked { return .kernelPanic }
        if case .systemEvent(crashEvent) = stop { return .guestCrashed }
        // Skiff's init always says goodbye: a reset after it started without
        // that is init dying or the kernel going down.
        if testimony.initStarted && !testimony.shutdownRequested { return .guestCrashed }
        switch stop {
        case .reset: return .reset
        case .halted: return .powerOff
        case .systemEvent(shutdownEvent): return .powerOff
        case .systemEvent: return .reset
        case .tripleFault:
            // After a clean shutdown a triple fault is just how this kernel
            // chose to reset; before any guest marker it is a broken kernel or
            // a tiny guest resetting on purpose: exit 0, with a warning.
            return testimony.anyGuestMarker ? .reset : .tripleFault
        }
    }

    static let shutdownEvent: UInt32 = 1 // KVM_SYSTEM_EVENT_SHUTDOWN
    static let crashEvent: UInt32 = 5    // KVM_SYSTEM_EVENT_CRASH
}

/// SIGINT, SIGTERM, ... for messages.
func signalName(_ number: Int32) -> String {
    switch number {
    case SIGINT: return "SIGINT"
    case SIGTERM: return "SIGTERM"
    case SIGHUP: return "SIGHUP"
    case SIGQUIT: return "SIGQUIT"
    case SIGKILL: return "SIGKILL"
    default: return "signal \(number)"
    }
}
