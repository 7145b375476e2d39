import Foundation
@testable import Images
import Testing
import TestSupport
@testable import Bench
@testable import Container
@testable import SkiffKit

@Suite struct BenchReportTests {
    func run(start: UInt64, phases: [UInt64?]) -> RunPhases {
        var json: [String: Any] = ["processStart": start, "imageOpened": start + 1, "diskReady": start + 2, "diskBuilt": false,
                                   "vmCreated": start + 3_000_000, "setupDone": start + 4_000_000, "stopped": start + 90_000_000,
                                   "processCPUSeconds": 0.5, "exitStatus": 0, "restored": false]
        for (key, value) in zip(["firstInstruction", "initStarted", "containerReady", "workloadStarted", "firstOutput", "workloadExited"], phases) {
            if let value { json[key] = start + value }
        }
        return try! JSONDecoder().decode(RunPhases.self, from: JSONSerialization.data(withJSONObject: json))
    }

    func report() -> BenchReport {
        let runs = [run(start: 1_000, phases: [5_000_000, 50_000_000, 60_000_000, 61_000_000, 70_000_000, 80_000_000]),
                    run(start: 5_000, phases: [6_000_000, 40_000_000, 45_000_000, 46_000_000, nil, 47_000_000])]
        let exits: [UInt64] = [1_000 + 85_000_000, 5_000 + 48_000_000]
        var restored = run(start: 9_000, phases: [nil, nil, 9_000_000, 9_500_000, 9_800_000, 9_900_000])
        restored.restored = true
        restored.firstExit = 9_000 + 4_500_000
        restored.handoverTaken = 9_000 + 6_000_000
        let restoredRuns = [restored]
        let restoredExits: [UInt64] = [9_000 + 10_000_000]
        let containers = [ContainerRuntime.Phases(processStart: 0, created: 20_000_000, started: 25_000_000, firstOutput: 26_000_000, exited: 27_000_000, exitStatus: 0)]
        return BenchReport(
            date: "2026-11-21T00:00:00Z", host: .init(kind: "nested PVM (kvm_pvm)", representative: false, cpus: 2, kernel: "6.1", cpuModel: "x"),
            warnings: ["not representative"], image: "img", imageID: "sha256:" + String(repeating: "a", count: 64), command: ["/bin/true"],
            runs: 2, runtime: "runc", runtimeRefusals: ["crun: refused"], vmRuns: runs, containerRuns: containers, vmExits: exits,
            vmPhases: BenchReport.vmPhaseSamples(runs, exits: exits).map { BenchReport.summarize($0, $1) },
            containerPhases: BenchReport.containerPhaseSamples(containers).map { BenchReport.summarize($0, $1) },
            snapshotRuns: restoredRuns, snapshotExits: restoredExits,
            snapshotPhases: BenchReport.snapshotPhaseSamples(restoredRuns, exits: restoredExits).map { BenchReport.summarize($0, $1) },
            cpu: .init(workload: "awk", nativeMs: 1000, containerMs: 1010, vmMs: 1100),
            memory: .init(instances: 2, vmMemoryMiB: 128, vmPSSMiB: [50, 54], vmRSSMiB: [60, 64], containerPSSMiB: [0.5, 0.7], containerRSSMiB: [1, 1], budgetMiB: 1024,
                           snapshotPSSMiB: [8, 8], snapshotRSSMiB: [40, 40]),
            disk: .init(layerBytes: 1_000_000, treeBytes: 3_000_000, rootDiskBytes: 2_000_000, kernelBytes: 18_000_000, initrdBytes: 2_000_000),
            peer: .init(name: "qemu", outcome: "not installed", firstOutputMs: nil, skiffFirstInstructionMs: 5), classic: [])
    }

    @Test func percentilesAreNearestRank() {
        #expect(BenchReport.percentile([5, 1, 3], 50) == 3)
        #expect(BenchReport.percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 10) == 2)
        #expect(BenchReport.percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 90) == 10)
        #expect(BenchReport.percentile([], 50).isNaN)
    }

    @Test func phasesComeFromEachRunsTimestampsAndMissingOnesAreNotInvented() {
        let samples = Dictionary(uniqueKeysWithValues: BenchReport.vmPhaseSamples(report().vmRuns, exits: report().vmExits))
        #expect(samples["kernel → init"] == [50, 40])
        #expect(samples["first output"] == [70], "the second run never wrote output: one sample, not two")
        #expect(samples["exit"] == [85, 48])
        #expect(samples["VM created"] == [3, 3])
        let fromSnapshot = Dictionary(uniqueKeysWithValues: BenchReport.snapshotPhaseSamples(report().snapshotRuns, exits: report().snapshotExits))
        #expect(fromSnapshot["guest resumed"] == [4] && fromSnapshot["first VM exit"] == [4.5] && fromSnapshot["exit"] == [10])
        #expect(fromSnapshot["container set up"] == [9], "a restored run's phases come from its own timestamps")
        let container = Dictionary(uniqueKeysWithValues: BenchReport.containerPhaseSamples(report().containerRuns))
        #expect(container["created"] == [20] && container["exit"] == [27])
    }

    @Test func theTableTheJSONAndTheChartCarryEveryPart() throws {
        var report = report()
        report.classic = BenchRendering.classicRows(report)
        #expect(report.classic.map(\.measure).count == 7)
        #expect(report.classic[0].note.contains("3.15× the container"), "\(report.classic[0].note)") // 85 ms (the upper median) ÷ 27 ms
        #expect(report.classic[1].vm == "10.0 ms" && report.classic[1].note.contains("0.118× the cold VM"), "\(report.classic[1].note)")
        #expect(report.classic[3].vm == "110 %" && report.classic[3].container == "101 %")
        #expect(report.classic[5].vm == "8.0 MiB" && report.classic[5].measure.count <= 46, "fits the column")
        #expect(report.classic[6].vm == "19 / 128" && report.classic[6].container == "1706", "1024 MiB ÷ mean PSS")
        let table = BenchRendering.table(report)
        for needle in ["WARNING: not representative", "microVM (skiff run --no-snapshot: a cold boot)", "microVM from the ready snapshot",
                       "guest resumed", "container (runc create + start)", "kernel → init",
                       "startup (median, process start → exit)", "disk footprint", "instances in 1024 MiB", "peer: qemu: not installed",
                       "nested PVM"] {
            #expect(table.contains(needle), "\(needle)")
        }
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(report)) as? [String: Any]
        for key in ["host", "warnings", "vmRuns", "containerRuns", "vmExits", "vmPhases", "containerPhases", "snapshotRuns",
                    "snapshotPhases", "cpu", "memory", "disk", "peer", "classic"] {
            #expect(json?[key] != nil, "\(key)")
        }
        let svg = BenchRendering.svg(report)
        #expect(svg.hasPrefix("<svg") && svg.contains("</svg>"))
        #expect(svg.components(separatedBy: "<rect").count - 1 >= 1 + 7 + 4 + 4, "a background, a segment per VM and container phase")
        #expect(svg.contains("kernel → init") && svg.contains("not representative"))
    }
}

@Suite struct OCIBundleTests {
    @Test func theBundleRunsWhatSkiffRunWouldRun() throws {
        let spec = ContainerSpec(arguments: ["/bin/sh", "-c", "echo hi"], environment: ["PATH=/bin", "FOO=1"], workingDirectory: "/srv",
                                 identity: .init(uid: 1000, gid: 1000, groups: [1000, 50], home: "/home/app"),
                                 hostname: "box", terminal: false, interactive: false)
        let config = OCIBundle.configuration(spec, rootPath: "/images/tree")
        let process = try #require(config["process"] as? [String: Any])
        #expect(process["args"] as? [String] == spec.arguments)
        #expect(process["env"] as? [String] == spec.environment)
        #expect(process["cwd"] as? String == "/srv")
        let user = try #require(process["user"] as? [String: Any])
        #expect(user["uid"] as? UInt32 == 1000 && user["gid"] as? UInt32 == 1000 && user["additionalGids"] as? [UInt32] == [1000, 50])
        #expect((config["root"] as? [String: Any])?["path"] as? String == "/images/tree")
        #expect((config["root"] as? [String: Any])?["readonly"] as? Bool == true)
        #expect(config["hostname"] as? String == "box")
        let namespaces = ((config["linux"] as? [String: Any])?["namespaces"] as? [[String: String]])?.compactMap { $0["type"] }
        #expect(Set(namespaces ?? []) == ["pid", "network", "ipc", "uts", "mount"])
        #expect(JSONSerialization.isValidJSONObject(config))
    }
}

/// The whole bench, small: one run of each, one idle instance of each.
@Suite(.enabled(if: kvmUsable && getuid() == 0, "needs /dev/kvm and root (the OCI runtime)"),
       .enabled(if: ["/usr/bin/runc", "/usr/sbin/runc", "/usr/bin/crun"].contains { FileManager.default.isExecutableFile(atPath: $0) }, "needs runc or crun"),
       .serialized, .timeLimit(.minutes(20)))
struct EndToEndBenchTests {
    @Test func benchPrintsTheTableAndWritesJSONAndSVGFromMeasuredPhases() throws {
        let image = try #require(testImage)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-bench-test-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try runProgram([skiffExecutable, "bench", "--image", image, "--runs", "1", "--instances", "1",
                                     "--cpu-iterations", "300000", "--json", directory + "/bench.json", "--svg", directory + "/bench.svg"],
                                    environment: ["SKIFF_IMAGE_DIR": directory + "/images"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("microVM from the ready snapshot") && result.stdout.contains("startup (median"), "\(result.stdout)")
        if HostKind.detect() == .pvm { #expect(result.stdout.contains("WARNING: nested PVM host")) }

        let data = try Data(contentsOf: URL(fileURLWithPath: directory + "/bench.json"))
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let report = try decoder.decode(BenchReport.self, from: data)
        #expect(report.vmRuns.count == 1 && report.containerRuns.count == 1 && report.snapshotRuns.count == 1)
        #expect(report.snapshotRuns.allSatisfy(\.restored) && !report.vmRuns.contains(where: \.restored))
        #expect(report.memory.snapshotPSSMiB.count == 1)
        let vm = try #require(report.vmRuns.first), container = try #require(report.containerRuns.first)
        // Measured, in order: each phase after the one before it.
        let vmTimes: [UInt64?] = [vm.processStart, vm.vmCreated, vm.firstInstruction, vm.initStarted, vm.containerReady, vm.workloadStarted,
                       vm.firstOutput, report.vmExits.first]
        #expect(vmTimes.allSatisfy { $0 != nil }, "\(vmTimes)")
        #expect(vmTimes.compactMap { $0 } == vmTimes.compactMap { $0 }.sorted())
        #expect(vm.exitStatus == Int(container.exitStatus) && container.exitStatus == 0)
        #expect(container.processStart < container.created && container.created <= container.started && container.started <= container.exited)
        #expect(container.firstOutput != nil)
        #expect(report.cpu.nativeMs > 0 && report.cpu.containerMs > 0 && report.cpu.vmMs > 0, "\(report.cpu)")
        #expect(report.memory.vmPSSMiB.count == 1 && report.memory.vmPSSMiB[0] > 1, "\(report.memory)")
        #expect(report.memory.containerPSSMiB.count == 1 && report.memory.containerPSSMiB[0] > 0)
        #expect(report.disk.rootDiskBytes > 0 && report.disk.kernelBytes > 0)
        #expect(!report.peer.outcome.isEmpty)
        let svg = try String(contentsOfFile: directory + "/bench.svg", encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.contains("first guest instruction"))
    }
}
