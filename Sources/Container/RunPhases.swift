/// One `skiff run`'s phases as host CLOCK_MONOTONIC nanoseconds (nil: not
/// reached). `skiff run --report PATH` writes it as JSON so that `skiff bench`,
/// which starts each run as a fresh process, can see inside it.
public struct RunPhases: Codable, Sendable, Equatable {
    public var processStart: UInt64
    public var imageOpened: UInt64
    public var diskReady: UInt64
    public var diskBuilt: Bool
    public var vmCreated: UInt64
    public var setupDone: UInt64
    public var firstInstruction: UInt64?
    public var initStarted: UInt64?
    public var containerReady: UInt64?
    /// The guest read its hand-over (run spec, clock, seed).
    public var handoverTaken: UInt64?
    public var workloadStarted: UInt64?
    public var firstOutput: UInt64?
    public var workloadExited: UInt64?
    public var stopped: UInt64
    public var exitStatus: Int?
    /// Restored from the image's ready snapshot rather than booted.
    public var restored: Bool
    /// A vCPU first entered the guest (KVM_RUN): after a restore, its first instruction follows.
    public var firstEntry: UInt64?
    /// The guest ran on: the first VM exit (after a restore, the guest's first work).
    public var firstExit: UInt64?
    /// The VMM process's CPU time (user + system, vCPU threads included).
    public var processCPUSeconds: Double

    public init(_ report: ContainerRunner.Report) {
        let timeline = report.machine.timeline
        processStart = timeline.start
        imageOpened = report.imageOpened
        diskReady = report.diskReady
        diskBuilt = report.rootDisk.built
        vmCreated = timeline.vmCreated
        setupDone = timeline.setupDone
        firstInstruction = timeline.first(.firstInstruction)?.time
        initStarted = timeline.first(.initStarted)?.time
        containerReady = timeline.first(.containerReady)?.time
        handoverTaken = timeline.first(.handoverTaken)?.time
        workloadStarted = timeline.first(.workloadStarted)?.time
        firstOutput = timeline.firstOutput
        workloadExited = timeline.first(.workloadExited)?.time
        stopped = timeline.stopped
        exitStatus = report.exitStatus
        restored = report.start == .restored
        firstEntry = timeline.firstEntry
        firstExit = timeline.firstExit
        processCPUSeconds = report.machine.processCPUSeconds
    }
}
