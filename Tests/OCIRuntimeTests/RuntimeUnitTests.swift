import Container
import Foundation
import SkiffKit
import Testing
import TestSupport
@testable import OCIRuntime

@Suite struct RuntimeCommandLineTests {
    @Test func conmonsAndTheShimsCommandLinesParse() throws {
        let conmon = try RuntimeCommandLine(parsing: [
            "--root", "/run/skiff", "--log", "/tmp/log.json", "--log-format=json", "--systemd-cgroup",
            "create", "--bundle", "/b", "--pid-file=/p", "--no-new-keyring", "ctr-1",
        ])
        #expect(conmon.root == "/run/skiff" && conmon.log == "/tmp/log.json" && conmon.logFormat == "json" && conmon.systemdCgroup)
        #expect(conmon.command == "create" && conmon.options == ["bundle": "/b", "pid-file": "/p"])
        #expect(conmon.flags == ["no-new-keyring"] && conmon.arguments == ["ctr-1"])
        let shim = try RuntimeCommandLine(parsing: ["-root", "/r", "kill", "-a", "ctr-1", "KILL"])
        #expect(shim.root == "/r" && shim.flags == ["all"] && shim.arguments == ["ctr-1", "KILL"])
        #expect(try RuntimeCommandLine(parsing: ["delete", "-f", "x"]).flags == ["force"])
        #expect(try RuntimeCommandLine(parsing: ["create", "-b", "/b", "x"]).options["bundle"] == "/b")
        #expect(try RuntimeCommandLine(parsing: ["--version"]).flags == ["version"])
    }

    @Test func unknownOrIncompleteOptionsAreErrorsNamingThem() {
        func problem(_ argv: [String]) -> String {
            do { _ = try RuntimeCommandLine(parsing: argv); return "accepted" } catch { return error.message }
        }
        #expect(problem(["--bogus", "state", "x"]) == "unknown global option '--bogus'")
        #expect(problem(["create", "--bundle"]) == "option --bundle needs a value")
        #expect(problem(["create", "--frobnicate", "x"]) == "create: unknown option '--frobnicate'")
        #expect(problem(["explode", "x"]) == "unknown command 'explode'")
        #expect(problem(["--log-format", "xml", "state", "x"]) == "--log-format must be text or json, not 'xml'")
    }

    @Test func signalsByNameAndNumber() {
        #expect(SignalName.parse("TERM") == SIGTERM && SignalName.parse("SIGKILL") == SIGKILL && SignalName.parse("9") == 9)
        #expect(SignalName.parse("sigusr1") == SIGUSR1 && SignalName.parse("WINCH") == SIGWINCH)
        #expect(SignalName.parse("0") == nil && SignalName.parse("65") == nil && SignalName.parse("NOPE") == nil)
    }
}

@Suite struct BundleConfigurationTests {
    static let config = """
        {"ociVersion": "1.0.2", "hostname": "box",
         "process": {"terminal": false, "user": {"uid": 1000, "gid": 100, "additionalGids": [100, 10]},
                     "args": ["/bin/sh", "-c", "echo hi"], "env": ["PATH=/bin", "HOME=/home/app"], "cwd": "/srv"},
         "root": {"path": "rootfs", "readonly": true},
         "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                    {"destination": "/etc/hosts", "type": "bind", "source": "/run/x/hosts"}],
         "annotations": {"a": "b"},
         "linux": {"namespaces": [{"type": "pid"}, {"type": "network", "path": "/run/netns/x"}]}}
        """

    @Test func theProcessBecomesTheRunSpec() throws {
        let config = try BundleConfiguration.decode(Array(Self.config.utf8))
        let spec = try config.containerSpec(defaultHostname: "fallback")
        #expect(spec.arguments == ["/bin/sh", "-c", "echo hi"] && spec.environment == ["PATH=/bin", "HOME=/home/app"])
        #expect(spec.workingDirectory == "/srv" && spec.hostname == "box" && !spec.terminal)
        #expect(spec.identity.uid == 1000 && spec.identity.gid == 100 && spec.identity.groups == [100, 10] && spec.identity.home == "/home/app")
        #expect(config.root?.path == "rootfs" && config.annotations == ["a": "b"])
        #expect(config.warnings.count == 2, "binds and a network namespace are said, once each: \(config.warnings)")
        #expect(config.warnings[0].contains("/etc/hosts") && !config.warnings[0].contains("/proc"))
    }

    @Test func boundFilesAndTreesAreCopiedAndTheRestIsSaidOnce() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("binds-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory + "/dir/sub/deeper", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: directory + "/many", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(FileManager.default.createFile(atPath: directory + "/hosts", contents: Data("10.0.0.1 box\n".utf8), attributes: [.posixPermissions: 0o640]))
        #expect(FileManager.default.createFile(atPath: directory + "/big", contents: Data(count: BundleConfiguration.maximumBoundFile + 1)))
        #expect(FileManager.default.createFile(atPath: directory + "/dir/a", contents: Data("A".utf8), attributes: [.posixPermissions: 0o600]))
        #expect(FileManager.default.createFile(atPath: directory + "/dir/sub/b", contents: Data([0, 1, 2])))
        #expect(chmod(directory + "/dir/sub", 0o750) == 0)
        // A link out of the tree is not followed, nor copied.
        try FileManager.default.createSymbolicLink(atPath: directory + "/dir/escape", withDestinationPath: "/etc/passwd")
        #expect(mkfifo(directory + "/dir/fifo", 0o600) == 0)
        for index in 0..<BoundTree.Budget.maximumEntries {
            #expect(FileManager.default.createFile(atPath: directory + "/many/\(index)", contents: Data()))
        }
        let json = """
            {"ociVersion": "1.0.2", "mounts": [
              {"destination": "/etc/hosts", "type": "bind", "source": "\(directory)/hosts", "options": ["rbind", "ro"]},
              {"destination": "/etc/resolv.conf", "source": "\(directory)/hosts", "options": ["bind"]},
              {"destination": "/data", "type": "bind", "source": "\(directory)/dir"},
              {"destination": "/many", "type": "bind", "source": "\(directory)/many"},
              {"destination": "/big", "type": "bind", "source": "\(directory)/big"},
              {"destination": "/gone", "type": "bind", "source": "\(directory)/missing"},
              {"destination": "/dev/shm", "type": "bind", "source": "\(directory)/dir"},
              {"destination": "/tmp", "type": "tmpfs", "source": "\(directory)/hosts"}]}
            """
        let config = try BundleConfiguration.decode(Array(json.utf8))
        let files = config.boundFiles()
        #expect(files.map(\.path) == ["/etc/hosts", "/etc/resolv.conf", "/data", "/data/a", "/data/sub", "/data/sub/b", "/data/sub/deeper"])
        #expect(files.first?.bytes == Array("10.0.0.1 box\n".utf8) && files.first?.mode == 0o640)
        #expect(files[2].bytes == nil && files[3] == GuestFile(path: "/data/a", mode: 0o600, bytes: Array("A".utf8)))
        #expect(files[4] == GuestFile(path: "/data/sub", mode: 0o750, bytes: nil) && files[5].bytes == [0, 1, 2])
        #expect(config.warnings.count == 1 && config.warnings[0].hasSuffix("are left out: /many, /big, /gone"),
                "a tree over the budget is left out whole, and said: \(config.warnings)")
    }

    @Test func aTreeThatDoesNotFitLeavesTheBudgetAsItWas() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tree-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for index in 0..<3 { #expect(FileManager.default.createFile(atPath: directory + "/\(index)", contents: Data(count: 100_000))) }
        var budget = BoundTree.Budget()
        #expect(BoundTree.copy(directory, to: "/d", budget: &budget)?.count == 4)
        #expect(budget.entries == 4 && budget.bytes == 300_000)
        budget.bytes = BoundTree.Budget.maximumBytes - 200_000
        let before = budget
        #expect(BoundTree.copy(directory, to: "/d", budget: &budget) == nil)
        #expect(budget.bytes == before.bytes && budget.entries == before.entries)
        #expect(BoundTree.copy(directory + "/0", to: "/d", budget: &budget) == nil, "not a directory")
    }

    @Test func hostileOrIncompleteConfigsAreRefusedWithTheirReason() {
        func reason(_ text: String) -> String {
            do { _ = try BundleConfiguration.decode(Array(text.utf8)).containerSpec(defaultHostname: "h"); return "accepted" } catch {
                return "\(error)"
            }
        }
        let process = #""user": {"uid": 0, "gid": 0}, "cwd": "/""#
        #expect(reason("not json").contains("not valid JSON"))
        #expect(reason(#"{"process": {}}"#).contains("$.ociVersion: missing"))
        #expect(reason(#"{"ociVersion": "1"}"#).contains("no process"))
        #expect(reason(#"{"ociVersion": "1", "process": {\#(process), "args": []}}"#).contains("process.args is empty"))
        #expect(reason(#"{"ociVersion": "1", "process": {"user": {"uid": 0, "gid": 0}, "cwd": "rel", "args": ["x"]}}"#).contains("not absolute"))
        #expect(reason(#"{"ociVersion": "1", "process": {\#(process), "args": ["x"], "env": ["NOEQUALS"]}}"#).contains("has no '='"))
        #expect(reason(#"{"ociVersion": "1", "process": {\#(process), "args": ["x\u0000y"]}}"#).contains("U+0000"))
        #expect(reason(#"{"ociVersion": "1", "process": {"user": {"uid": -1, "gid": 0}, "cwd": "/", "args": ["x"]}}"#).contains("$.process.user.uid: -1 does not fit in UInt32"))
        #expect(reason(#"{"ociVersion": "1", "process": {"user": {"uid": "root", "gid": 0}, "cwd": "/", "args": ["x"]}}"#).contains("$.process.user.uid: expected an integer, found a string"))
        #expect(reason(#"{"ociVersion": "1", "hostname": "\#(String(repeating: "h", count: 65))", "process": {\#(process), "args": ["x"]}}"#).contains("64 bytes"))
        #expect(throws: RuntimeError.self) { try BundleConfiguration.decode([UInt8](repeating: 0x20, count: BundleConfiguration.maximumSize + 1)) }
    }
}

@Suite struct ContainerStateTests {
    @Test func stateIsWrittenWholeAndAGoneMonitorReadsStopped() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-oci-state-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = ContainerStore(root: root)
        _ = try store.create("c1")
        #expect(throws: RuntimeError.self) { _ = try store.create("c1") }
        for bad in ["", ".hidden", "a/b", "a b", String(repeating: "x", count: 1025)] {
            #expect(throws: RuntimeError.self, "\(bad)") { try ContainerStore.checkID(bad) }
        }
        var record = ContainerRecord(id: "c1", status: "created", pid: getpid(), bundle: "/b", rootfs: "/b/rootfs",
                                     created: "2026-11-30T00:00:00Z", annotations: ["k": "v"])
        record.monitorStartTime = ContainerRecord.processStartTime(getpid())
        try store.save(record)
        #expect(try store.load("c1") == record)
        #expect(try store.load("c1").current().status == "created", "this process is alive")
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.directory("c1")) == ["state.json"], "no temporary left")
        record.monitorStartTime = (record.monitorStartTime ?? 0) + 1
        try store.save(record)
        #expect(try store.load("c1").current().status == "stopped", "the PID belongs to another process now")
        record.pid = 0x3FFF_FFF0
        record.monitorStartTime = nil
        try store.save(record)
        #expect(try store.load("c1").current().status == "stopped")
        let json = RuntimeCommands.stateJSON(try store.load("c1").current())
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect(object?["status"] as? String == "stopped" && object?["pid"] as? Int == 0 && object?["id"] as? String == "c1")
        #expect(object?["bundle"] as? String == "/b" && object?["rootfs"] as? String == "/b/rootfs" && object?["ociVersion"] as? String == "1.1.0")
        #expect((object?["annotations"] as? [String: String]) == ["k": "v"] && object?["monitorStartTime"] == nil)
        #expect(throws: RuntimeError.self) { _ = try store.load("missing") }
        FileManager.default.createFile(atPath: store.directory("c1") + "/state.json", contents: Data("{".utf8))
        #expect(throws: RuntimeError.self) { _ = try store.load("c1") }
        store.remove("c1")
        #expect(!FileManager.default.fileExists(atPath: store.directory("c1")))
    }

    @Test func logLinesAreWhatConmonReads() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-oci-log-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        RuntimeLog(path: path, format: "json").error("bad \"thing\"\nhere\u{1}")
        let line = try String(contentsOfFile: path, encoding: .utf8)
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String]
        #expect(object?["level"] == "error" && object?["msg"] == "bad \"thing\"\nhere\u{1}" && object?["time"] != nil)
    }
}

@Suite struct RuntimeCgroupTests {
    @Test func cgroupsPathsAsRuncReadsThem() throws {
        #expect(try BundleConfiguration.cgroupPath(nil, systemd: false) == nil)
        #expect(try BundleConfiguration.cgroupPath("/libpod_parent/libpod-abc", systemd: false) == "/libpod_parent/libpod-abc")
        #expect(try BundleConfiguration.cgroupPath("machine.slice:libpod:abc", systemd: true) == "machine.slice/libpod-abc.scope")
        #expect(try BundleConfiguration.cgroupPath("user-1000-app.slice:crio:x", systemd: true)
            == "user.slice/user-1000.slice/user-1000-app.slice/crio-x.scope")
        #expect(try BundleConfiguration.cgroupPath(":cri-containerd:x", systemd: true) == "system.slice/cri-containerd-x.scope")
        #expect(throws: RuntimeError.self) { try BundleConfiguration.cgroupPath("machine.slice:libpod:abc", systemd: false) }
        #expect(throws: RuntimeError.self) { try BundleConfiguration.cgroupPath("/plain/path", systemd: true) }
        #expect(throws: RuntimeError.self) { try BundleConfiguration.cgroupPath("nota:libpod:x", systemd: true) }
    }

    @Test func resourcesBecomeLimitsAndSizeTheGuest() throws {
        func config(_ resources: String) throws -> BundleConfiguration {
            try BundleConfiguration.decode(Array(#"{"ociVersion": "1.1.0", "linux": {"resources": \#(resources)}}"#.utf8))
        }
        let limited = try config(#"{"memory": {"limit": 536870912}, "cpu": {"quota": 50000, "period": 200000}, "pids": {"limit": 100}}"#)
        #expect(limited.cgroupLimits == ControlGroup.Limits(memoryBytes: 512 << 20, cpuQuota: 50000, cpuPeriod: 200000, pids: 100))
        #expect(try limited.guestMemoryMiB() == 512 - 64)
        let unlimited = try config(#"{"memory": {"limit": -1}, "cpu": {"quota": -1}}"#)
        #expect(unlimited.cgroupLimits == ControlGroup.Limits())
        #expect(try unlimited.guestMemoryMiB() == 128)
        #expect(throws: RuntimeError.self) { try config(#"{"memory": {"limit": 67108864}}"#).guestMemoryMiB() }
    }

    /// A real cgroup (as root): made with its parents, limits written, a process placed, removed.
    @Test(.enabled(if: getuid() == 0, "needs root")) func aCgroupHoldsItsLimitsAndProcess() throws {
        let path = "skiff-test-\(getpid())/inner"
        let group = try ControlGroup(path: path, limits: .init(memoryBytes: 300 << 20, cpuQuota: 50_000, pids: 64))
        defer {
            group.remove()
            rmdir(ControlGroup.isUnified ? "/sys/fs/cgroup/skiff-test-\(getpid())" : "")
            for hierarchy in ["memory", "cpu", "pids"] { rmdir("/sys/fs/cgroup/\(hierarchy)/skiff-test-\(getpid())") }
        }
        func read(_ file: String) -> String {
            (try? String(contentsOfFile: "/sys/fs/cgroup/" + file, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
        }
        if ControlGroup.isUnified {
            #expect(read(path + "/memory.max") == "\(300 << 20)" && read(path + "/cpu.max") == "50000 100000" && read(path + "/pids.max") == "64")
        } else {
            #expect(read("memory/" + path + "/memory.limit_in_bytes") == "\(300 << 20)")
            #expect(read("cpu/" + path + "/cpu.cfs_quota_us") == "50000")
            #expect(read("pids/" + path + "/pids.max") == "64")
        }
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
        sleeper.arguments = ["30"]
        try sleeper.run()
        defer { kill(sleeper.processIdentifier, SIGKILL); sleeper.waitUntilExit() }
        let pid = sleeper.processIdentifier
        #expect(group.add(pid) == nil)
        let membership = (try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)) ?? ""
        #expect(membership.contains(path), "\(membership)")
        #expect(throws: MachineError.self) { try ControlGroup(path: "../escape", limits: .init()) }
    }
}

@Suite struct AgentFrameTests {
    @Test func framesAreKindLengthPayloadAndSplitAsTheyArrive() throws {
        #expect(AgentFrame.encode(.signal, [15]) == [0x53, 0, 0, 0, 1, 15])
        #expect(AgentFrame.window(rows: 300, columns: 80) == [0x57, 0, 0, 0, 4, 1, 44, 0, 80])
        var reader = AgentFrame.Reader()
        let stream = AgentFrame.encode(.started, AgentFrame.number(42)) + AgentFrame.encode(.standardOutput, Array("hi".utf8))
            + AgentFrame.encode(.exit, AgentFrame.number(137))
        var frames: [(AgentFrame.Kind, [UInt8])] = []
        for byte in stream { // one byte at a time, as a slow connection may deliver it
            reader.append([byte])
            while let frame = try reader.next() { frames.append(frame) }
        }
        #expect(frames.map(\.0) == [.started, .standardOutput, .exit])
        #expect(AgentFrame.value(frames[0].1) == 42 && frames[1].1 == Array("hi".utf8) && AgentFrame.value(frames[2].1) == 137)
        #expect(AgentFrame.value([1, 2, 3]) == nil)
    }

    @Test func aGuestsOversizedOrUnknownFrameIsRefused() {
        var long = AgentFrame.Reader()
        long.append([0x4F, 0, 1, 0, 1]) // 65 537 bytes
        #expect(throws: AgentFrame.Reader.Problem.tooLong(65537)) { try long.next() }
        var unknown = AgentFrame.Reader()
        unknown.append([0x7A, 0, 0, 0, 0])
        #expect(throws: AgentFrame.Reader.Problem.unknownKind(0x7A)) { try unknown.next() }
    }
}

@Suite struct MonitorKillTests {
    func sleeper() throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sleep")
        process.arguments = ["60"]
        try process.run()
        return process
    }

    func record(_ pid: Int32, startTime: UInt64?) -> ContainerRecord {
        var record = ContainerRecord(id: "c", status: "running", pid: pid, bundle: "/b", rootfs: "/b/rootfs", created: "", annotations: nil)
        record.monitorStartTime = startTime
        return record
    }

    /// `delete --force` kills the monitor and returns once it is gone, not
    /// after a polling interval; a process that only has the monitor's PID
    /// (its start time differs) is left alone.
    @Test func theMonitorIsKilledAndWaitedForButAnImpostorIsNot() throws {
        let impostor = try sleeper()
        defer { kill(impostor.processIdentifier, SIGKILL); impostor.waitUntilExit() }
        let started = ContainerRecord.processStartTime(impostor.processIdentifier)
        try #require(started != nil)
        RuntimeCommands.killMonitor(record(impostor.processIdentifier, startTime: started! + 1))
        #expect(impostor.isRunning, "a process that reused the monitor's PID is not signalled")

        let monitor = try sleeper()
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            RuntimeCommands.killMonitor(record(monitor.processIdentifier, startTime: ContainerRecord.processStartTime(monitor.processIdentifier)))
        }
        monitor.waitUntilExit()
        #expect(monitor.terminationReason == .uncaughtSignal && monitor.terminationStatus == SIGKILL)
        #expect(elapsed < .seconds(5), "killMonitor returned after \(elapsed)")
    }
}
