import Container
import SkiffKit
import Foundation

/// What `skiff bench` measured: every run's raw timestamps, the summaries, and
/// the classic container-versus-VM table. Encoded as the `--json` output.
public struct BenchReport: Codable, Sendable {
    public struct Host: Codable, Sendable {
        public var kind: String
        /// False on a nested PVM host, where guest-kernel time is interpreted.
        public var representative: Bool
        public var cpus: Int
        public var kernel: String
        public var cpuModel: String
    }

    /// A phase's distribution over the runs, in ms since the process started.
    public struct PhaseSummary: Codable, Sendable, Equatable {
        public var phase: String
        public var median: Double
        public var p10: Double
        public var p90: Double
        public var samples: Int
    }

    public struct ClassicRow: Codable, Sendable {
        public var measure: String
        public var vm: String
        public var container: String
        public var note: String
    }

    public struct Peer: Codable, Sendable {
        public var name: String
        public var outcome: String
        /// QEMU process start → first byte on its serial console (ms), if any came.
        public var firstOutputMs: Double?
        /// Skiff's process start → first guest instruction (ms, median), for comparison.
        public var skiffFirstInstructionMs: Double?
    }

    public var date: String
    public var host: Host
    public var warnings: [String]
    public var image: String
    public var imageID: String
    public var command: [String]
    public var runs: Int
    public var runtime: String
    public var runtimeRefusals: [String]
    public var vmRuns: [RunPhases]
    public var containerRuns: [ContainerRuntime.Phases]
    /// VM runs' process exit as the bench saw it (CLOCK_MONOTONIC ns), one per run.
    public var vmExits: [UInt64]
    public var vmPhases: [PhaseSummary]
    public var containerPhases: [PhaseSummary]
    /// `skiff run` restoring the image's ready snapshot, alternated with the others.
    public var snapshotRuns: [RunPhases]
    public var snapshotExits: [UInt64]
    public var snapshotPhases: [PhaseSummary]
    public var cpu: CPUResult
    public var memory: MemoryResult
    public var disk: DiskResult
    public var peer: Peer
    public var classic: [ClassicRow]

    public struct CPUResult: Codable, Sendable {
        public var workload: String
        public var nativeMs: Double
        public var containerMs: Double
        public var vmMs: Double
    }

    public struct MemoryResult: Codable, Sendable {
        public var instances: Int
        public var vmMemoryMiB: Int
        /// Proportional set size of each idle instance (MiB): the skiff process for
        /// a VM (guest RAM it touched included), the container's processes.
        public var vmPSSMiB: [Double]
        public var vmRSSMiB: [Double]
        public var containerPSSMiB: [Double]
        public var containerRSSMiB: [Double]
        public var budgetMiB: Int
        /// The same idle VMs restored from one snapshot (its memory file shared, copy-on-write).
        public var snapshotPSSMiB: [Double]
        public var snapshotRSSMiB: [Double]
    }

    public struct DiskResult: Codable, Sendable {
        public var layerBytes: Int64
        public var treeBytes: Int64
        public var rootDiskBytes: Int64
        public var kernelBytes: Int64
        public var initrdBytes: Int64
    }

    /// Nearest-rank percentiles over `values` (p in 0...100).
    public static func percentile(_ values: [Double], _ p: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        let rank = Int((p / 100 * Double(sorted.count - 1)).rounded())
        return sorted[min(max(rank, 0), sorted.count - 1)]
    }

    static func summarize(_ phase: String, _ values: [Double]) -> PhaseSummary {
        PhaseSummary(phase: phase, median: percentile(values, 50), p10: percentile(values, 10), p90: percentile(values, 90),
                     samples: values.count)
    }

    /// The VM phases, each as ms since the process started; nil where a run did not reach it.
    static func vmPhaseSamples(_ runs: [RunPhases], exits: [UInt64]) -> [(String, [Double])] {
        phaseSamples(runs, exits: exits, [
            ("VM created", { $0.vmCreated }), ("first guest instruction", { $0.firstInstruction }),
            ("kernel → init", { $0.initStarted }), ("container set up", { $0.containerReady }),
            ("workload exec'd", { $0.workloadStarted }), ("first output", { $0.firstOutput }),
        ])
    }

    /// Runs restored from the snapshot: restore started (the VM created),
    /// guest resumed (state set, vCPUs about to run), first VM exit, hand-over
    /// taken (the guest's first marker), then as for a booted VM.
    static func snapshotPhaseSamples(_ runs: [RunPhases], exits: [UInt64]) -> [(String, [Double])] {
        phaseSamples(runs, exits: exits, [
            ("restore started", { $0.vmCreated }), ("guest resumed", { $0.setupDone }), ("first VM exit", { $0.firstExit }),
            ("hand-over taken", { $0.handoverTaken }), ("container set up", { $0.containerReady }),
            ("workload exec'd", { $0.workloadStarted }), ("first output", { $0.firstOutput }),
        ])
    }

    /// `phases` of each run, then its exit as the bench saw it.
    private static func phaseSamples(_ runs: [RunPhases], exits: [UInt64],
                                     _ phases: [(String, (RunPhases) -> UInt64?)]) -> [(String, [Double])] {
        var result = phases.map { name, pick in
            (name, runs.compactMap { run in pick(run).map { Double($0 &- run.processStart) / 1e6 } })
        }
        result.append(("exit", zip(runs, exits).map { Double($1 &- $0.processStart) / 1e6 }))
        return result
    }

    static func containerPhaseSamples(_ runs: [ContainerRuntime.Phases]) -> [(String, [Double])] {
        let phases: [(String, (ContainerRuntime.Phases) -> UInt64?)] = [
            ("created", { $0.created }), ("started", { $0.started }), ("first output", { $0.firstOutput }), ("exit", { $0.exited }),
        ]
        return phases.map { name, pick in
            (name, runs.compactMap { run in pick(run).map { Double($0 &- run.processStart) / 1e6 } })
        }
    }
}
