import Foundation
import Testing
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

    @Test func hostileOrIncompleteConfigsAreRefusedWithTheirReason() {
        func reason(_ text: String) -> String {
            do { _ = try BundleConfiguration.decode(Array(text.utf8)).containerSpec(defaultHostname: "h"); return "accepted" } catch {
                return "\(error)"
            }
        }
        let process = #""user": {"uid": 0, "gid": 0}, "cwd": "/""#
        #expect(reason("not json").contains("not valid JSON"))
        #expect(reason(#"{"process": {}}"#).contains("missing 'ociVersion'"))
        #expect(reason(#"{"ociVersion": "1"}"#).contains("no process"))
        #expect(reason(#"{"ociVersion": "1", "process": {\#(process), "args": []}}"#).contains("process.args is empty"))
        #expect(reason(#"{"ociVersion": "1", "process": {"user": {"uid": 0, "gid": 0}, "cwd": "rel", "args": ["x"]}}"#).contains("not absolute"))
        #expect(reason(#"{"ociVersion": "1", "process": {\#(process), "args": ["x"], "env": ["NOEQUALS"]}}"#).contains("has no '='"))
        #expect(reason(#"{"ociVersion": "1", "process": {\#(process), "args": ["x\u0000y"]}}"#).contains("NUL"))
        #expect(reason(#"{"ociVersion": "1", "process": {"user": {"uid": -1, "gid": 0}, "cwd": "/", "args": ["x"]}}"#).hasPrefix("invalid bundle: config.json"), "a negative uid (Foundation calls it invalid JSON)")
        #expect(reason(#"{"ociVersion": "1", "process": {"user": {"uid": "root", "gid": 0}, "cwd": "/", "args": ["x"]}}"#).contains("wrong type at 'process.user.uid'"))
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
