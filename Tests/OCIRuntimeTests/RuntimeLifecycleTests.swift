import CSystem
import Foundation
import Images
import Testing
import TestSupport
@testable import OCIRuntime
@testable import Container
@testable import SkiffKit

/// The built `skiff-oci` beside the test bundle.
let runtimeExecutable = builtExecutable("skiff-oci")

/// Spawns `argv` with `input` on stdin and stdout/stderr into files, as
/// conmon does with its pipes; returns the PID.
func spawn(_ argv: [String], input: String, stdout: String, stderr: String) throws -> pid_t {
    var fds: [Int32] = [0, 0]
    try #require(pipe(&fds) == 0)
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, fds[0], 0)
    posix_spawn_file_actions_addclose(&actions, fds[1])
    posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    let cArguments = argv.map { strdup($0) } + [nil]
    defer { cArguments.forEach { free($0) } }
    var pid: pid_t = 0
    try #require(posix_spawn(&pid, argv[0], &actions, nil, cArguments, environ) == 0)
    close(fds[0])
    // A child that ended at once (a failing command) must fail the test, not kill it.
    signal(SIGPIPE, SIG_IGN)
    _ = input.withCString { write(fds[1], $0, strlen($0)) }
    close(fds[1])
    return pid
}

/// The wait status of child `pid`; after `seconds` it is killed (SIGKILL) and the hang recorded.
func waitStatus(_ pid: pid_t, seconds: Int = 300) -> Int32 {
    var status: Int32 = 0
    for _ in 0..<seconds * 10 {
        let done = waitpid(pid, &status, WNOHANG)
        if done == pid || (done < 0 && errno != EINTR) { return status }
        usleep(100_000)
    }
    Issue.record("process \(pid) did not end within \(seconds) s")
    kill(pid, SIGKILL)
    waitpid(pid, &status, 0)
    return status
}

/// runc's lifecycle, driven as conmon drives it, on the real guest: the
/// monitor's PID is the container's, its exit status is the process's, and
/// a signal ends it as it would end the process.
@Suite(.enabled(if: kvmUsable && getuid() == 0, "needs /dev/kvm and root"), .serialized, .timeLimit(.minutes(10)))
struct RuntimeLifecycleTests {
    let work = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-oci-\(UUID())").path

    func runtime(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let out = work + "/cli.out", err = work + "/cli.err"
        let pid = try spawn([runtimeExecutable, "--root", work + "/state", "--log", work + "/log.json", "--log-format", "json"] + arguments,
                            input: "", stdout: out, stderr: err)
        let status = waitStatus(pid)
        return ((status >> 8) & 0xFF, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
                (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }

    func state(_ id: String) throws -> [String: Any] {
        let result = try runtime(["state", id])
        try #require(result.status == 0, "\(result.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
    }

    /// A bundle whose rootfs is the test image's tree (a copy with `extraFile`
    /// at /extra, when given: a root disk of another size).
    func makeBundle(_ name: String, args: [String], terminal: Bool = false, extraFile: Data? = nil) throws -> String {
        let image = try #require(testImage, "scripts/make-test-image.sh failed")
        let store = ImageStore(directory: work + "/images")
        var tree = try store.unpackedTree(for: try ImageSource.open(try ImageReference(parsing: image)))
        let bundle = work + "/" + name
        try FileManager.default.createDirectory(atPath: bundle, withIntermediateDirectories: true)
        if let extraFile {
            try FileManager.default.copyItem(atPath: tree, toPath: bundle + "/rootfs")
            tree = bundle + "/rootfs"
            try extraFile.write(to: URL(fileURLWithPath: tree + "/extra"))
        }
        let config: [String: Any] = [
            "ociVersion": "1.1.0", "hostname": "oci-box",
            "process": ["terminal": terminal, "user": ["uid": 0, "gid": 0], "args": args, "cwd": "/",
                        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]],
            "root": ["path": tree, "readonly": true],
            "mounts": [["destination": "/proc", "type": "proc", "source": "proc"]],
            "annotations": ["org.example": "yes"],
        ]
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: bundle + "/config.json"))
        return bundle
    }

    @Test func createStartStateWaitDeleteAndKillAsRunc() throws {
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        // conmon is the monitor's subreaper; so is this test.
        try #require(csystem_become_subreaper() == 0)

        let bundle = try makeBundle("one", args: ["/bin/sh", "-c", "echo out; echo err >&2; read line; echo \"got $line\"; hostname; exit 7"])
        let create = try spawn([runtimeExecutable, "--root", work + "/state", "--log", work + "/log.json", "--log-format", "json",
                                "create", "--bundle", bundle, "--pid-file", work + "/one.pid", "one"],
                               input: "hello\n", stdout: work + "/one.out", stderr: work + "/one.err")
        let created = waitStatus(create)
        #expect(created == 0, "\((try? String(contentsOfFile: work + "/one.err", encoding: .utf8)) ?? "")")
        let pid = try #require(pid_t(try String(contentsOfFile: work + "/one.pid", encoding: .utf8)))
        var one = try state("one")
        #expect(one["status"] as? String == "created" && one["pid"] as? Int == Int(pid) && one["id"] as? String == "one")
        #expect(one["bundle"] as? String == bundle && (one["annotations"] as? [String: String]) == ["org.example": "yes"])
        #expect(try runtime(["create", "--bundle", bundle, "one"]).status == 1, "an ID is taken once")

        #expect(try runtime(["start", "one"]).status == 0)
        one = try state("one")
        #expect(["running", "stopped"].contains(one["status"] as? String ?? ""))
        #expect(one["status"] as? String == "stopped" || one["pid"] as? Int == Int(pid), "start keeps the monitor's PID: \(one)")
        #expect(try runtime(["start", "one"]).status == 1, "started once")
        let status = waitStatus(pid)
        #expect(status >> 8 & 0xFF == 7 && status & 0x7F == 0, "the monitor exits with the process's status (\(status))")
        let out = try String(contentsOfFile: work + "/one.out", encoding: .utf8)
        #expect(out == "out\ngot hello\noci-box\n", "stdout relayed, stdin forwarded: \(out)")
        #expect(try String(contentsOfFile: work + "/one.err", encoding: .utf8).contains("err\n"))
        #expect(try state("one")["status"] as? String == "stopped")
        #expect(try runtime(["delete", "one"]).status == 0)
        let gone = try runtime(["state", "one"])
        #expect(gone.status == 1 && gone.stderr.contains("does not exist"))
        let log = try String(contentsOfFile: work + "/log.json", encoding: .utf8)
        let last = try #require(log.split(separator: "\n").last)
        let entry = try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: String]
        #expect(entry?["level"] == "error" && entry?["msg"]?.contains("does not exist") == true, "conmon reads the last error: \(log)")
        #expect(try runtime(["delete", "--force", "one"]).status == 0, "deleting what is gone, forced, is no error")

        // A created container killed with TERM: the monitor dies by SIGTERM, as the process would have.
        let two = try spawn([runtimeExecutable, "--root", work + "/state", "create", "--bundle", try makeBundle("two", args: ["/bin/true"]),
                             "--pid-file", work + "/two.pid", "two"], input: "", stdout: work + "/two.out", stderr: work + "/two.err")
        #expect(waitStatus(two) == 0)
        let twoPID = try #require(pid_t(try String(contentsOfFile: work + "/two.pid", encoding: .utf8)))
        #expect(try runtime(["ps", "--format", "json", "two"]).stdout == "[\(twoPID)]\n")
        #expect(try runtime(["kill", "two", "SIGTERM"]).status == 0)
        let killed = waitStatus(twoPID)
        #expect(killed & 0x7F == SIGTERM, "killed by SIGTERM (\(killed))")
        #expect(try state("two")["status"] as? String == "stopped")
        #expect(try runtime(["kill", "two", "KILL"]).status == 1, "nothing left to kill")
        #expect(try runtime(["exec", "two", "/bin/true"]).stderr.contains("cannot exec in a container that is stopped"))
        #expect(try runtime(["delete", "two"]).status == 0)

        // A started container with a terminal (the master comes to our console
        // socket, sized 33x77): what we type reaches the process, and kill
        // delivers the signal to the process inside the guest, which handles it.
        // Its root disk is larger than the first's: the ready guest (saved by
        // the first create, or earlier) is restored with this disk behind vda.
        let script = "wc -c </extra; stty size; trap 'echo resized $(stty size)' WINCH; read line; echo \"typed $line\"; trap 'echo got TERM; exit 9' TERM; echo waiting; while :; do sleep 1; done"
        let console = try ConsoleSocket(path: work + "/console.sock")
        let three = try spawn([runtimeExecutable, "--root", work + "/state", "--log", work + "/log.json", "create", "--bundle",
                               try makeBundle("three", args: ["/bin/sh", "-c", script], terminal: true, extraFile: Data(count: 3_000_000)),
                               "--console-socket", console.path, "--pid-file", work + "/three.pid", "three"],
                              input: "", stdout: work + "/three.out", stderr: work + "/three.err")
        let master = try #require(console.receiveTerminal(), "no terminal on the console socket")
        defer { close(master) }
        var size = winsize(ws_row: 33, ws_col: 77, ws_xpixel: 0, ws_ypixel: 0)
        #expect(ioctl(master, UInt(TIOCSWINSZ), &size) == 0)
        #expect(waitStatus(three) == 0, "\((try? String(contentsOfFile: work + "/three.err", encoding: .utf8)) ?? "")")
        let threePID = try #require(pid_t(try String(contentsOfFile: work + "/three.pid", encoding: .utf8)))
        #expect(try runtime(["start", "three"]).status == 0)
        var screen = read(master, until: "33 77", seconds: 120)
        #expect(screen.contains("33 77"), "the terminal's size reached the guest: \(screen)")
        #expect(screen.contains("3000000"), "the container's own disk, whole: \(screen)")
        let monitorLog = try String(contentsOfFile: work + "/log.json", encoding: .utf8)
        #expect(monitorLog.contains("container three: restored the ready guest"), "create restored, not booted: \(monitorLog)")
        _ = "hello\n".withCString { write(master, $0, 6) }
        screen += read(master, until: "waiting", seconds: 120)
        #expect(screen.contains("typed hello") && screen.contains("waiting"), "\(screen)")
        // conmon resizes the master: the process inside sees the new size (SIGWINCH).
        var larger = winsize(ws_row: 40, ws_col: 100, ws_xpixel: 0, ws_ypixel: 0)
        #expect(ioctl(master, UInt(TIOCSWINSZ), &larger) == 0)
        screen += read(master, until: "resized 40 100", seconds: 120)
        #expect(screen.contains("resized 40 100"), "a resize after start reached the guest: \(screen)")
        try execIntoARunningContainer("three")
        #expect(try runtime(["kill", "three", "TERM"]).status == 0)
        screen += read(master, until: "got TERM", seconds: 120)
        let handled = waitStatus(threePID)
        #expect(handled >> 8 & 0xFF == 9 && handled & 0x7F == 0, "the process's TERM handler ran and chose its status (\(handled))")
        #expect(screen.contains("got TERM"), "\(screen)")
        #expect(try runtime(["delete", "three"]).status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: work + "/state").isEmpty, "delete removes everything")
    }

    /// `exec` through the guest agent (vsock), as podman's conmon and the
    /// shim call it: streams relayed, statuses kept, signals delivered, a
    /// terminal of its own; the container's own process runs on meanwhile.
    func execIntoARunningContainer(_ id: String) throws {
        let state = ["--root", work + "/state"]
        // Standard streams apart, input to its end, the status as the process chose.
        let plain = try spawn([runtimeExecutable] + state + ["exec", id, "/bin/sh", "-c", "echo from exec; cat; echo to-err >&2; exit 5"],
                              input: "piped in\n", stdout: work + "/exec.out", stderr: work + "/exec.err")
        let plainStatus = waitStatus(plain)
        #expect(plainStatus >> 8 & 0xFF == 5 && plainStatus & 0x7F == 0, "exec's status is the process's (\(plainStatus))")
        #expect(try String(contentsOfFile: work + "/exec.out", encoding: .utf8) == "from exec\npiped in\n")
        #expect(try String(contentsOfFile: work + "/exec.err", encoding: .utf8) == "to-err\n")
        // Much in and much out at once (2 MiB through cat, far beyond every buffer on the way): nothing stalls, nothing is lost.
        let bulk = String(repeating: "0123456789abcdef\n", count: 128 << 10)
        let cat = try spawn([runtimeExecutable] + state + ["exec", id, "/bin/cat"], input: bulk, stdout: work + "/cat.out", stderr: work + "/cat.err")
        #expect(waitStatus(cat, seconds: 120) == 0)
        #expect(try String(contentsOfFile: work + "/cat.out", encoding: .utf8) == bulk, "2 MiB back as it went in")

        // --process FILE --detach --pid-file, as conmon calls it: the PID stands
        // for the process (a child of ours, the subreaper), and a signal sent
        // to it reaches the process in the guest, whose handler picks the status.
        let process: [String: Any] = ["user": ["uid": 1000, "gid": 1000], "cwd": "/tmp", "env": ["PATH=/bin:/usr/bin", "WHO=exec"],
                                      "args": ["/bin/sh", "-c", "trap 'echo trapped $WHO $(id -u) $(pwd); exit 3' TERM; echo ready; while :; do sleep 1; done"]]
        try JSONSerialization.data(withJSONObject: process).write(to: URL(fileURLWithPath: work + "/process.json"))
        let detach = try spawn([runtimeExecutable] + state + ["exec", "--process", work + "/process.json", "--detach",
                                                              "--pid-file", work + "/exec.pid", id],
                               input: "", stdout: work + "/detached.out", stderr: work + "/detached.err")
        #expect(waitStatus(detach) == 0, "\((try? String(contentsOfFile: work + "/detached.err", encoding: .utf8)) ?? "")")
        let execPID = try #require(pid_t(try String(contentsOfFile: work + "/exec.pid", encoding: .utf8)))
        for _ in 0..<600 where (try? String(contentsOfFile: work + "/detached.out", encoding: .utf8)) != "ready\n" { usleep(100_000) }
        #expect(kill(execPID, SIGTERM) == 0)
        let detachedStatus = waitStatus(execPID)
        #expect(detachedStatus >> 8 & 0xFF == 3 && detachedStatus & 0x7F == 0, "\(detachedStatus)")
        #expect(try String(contentsOfFile: work + "/detached.out", encoding: .utf8) == "ready\ntrapped exec 1000 /tmp\n")

        // A terminal of its own, sent to the console socket, sized by it.
        let console = try ConsoleSocket(path: work + "/exec-console.sock")
        let tty = try spawn([runtimeExecutable] + state + ["exec", "--tty", "--console-socket", console.path, id,
                                                           "/bin/sh", "-c", "tty; sleep 1; stty size; exit 4"],
                            input: "", stdout: work + "/tty.out", stderr: work + "/tty.err")
        let master = try #require(console.receiveTerminal(), "no terminal for exec")
        defer { close(master) }
        var size = winsize(ws_row: 21, ws_col: 61, ws_xpixel: 0, ws_ypixel: 0)
        #expect(ioctl(master, UInt(TIOCSWINSZ), &size) == 0)
        let screen = read(master, until: "21 61", seconds: 60)
        let ttyStatus = waitStatus(tty)
        #expect(screen.contains("/dev/pts/") && screen.contains("21 61"), "a pseudo-terminal of the guest's, resized: \(screen)")
        #expect(ttyStatus >> 8 & 0xFF == 4, "\(ttyStatus)")

        // What cannot run says so as docker does; a missing command is a usage error.
        let missing = try spawn([runtimeExecutable] + state + ["exec", id, "/no/such"], input: "", stdout: work + "/m.out", stderr: work + "/m.err")
        #expect(waitStatus(missing) >> 8 & 0xFF == 127)
        #expect(try runtime(["exec", id]).stderr.contains("a command is required"))
    }

    @Test func badBundlesAndArgumentsFailBeforeAnythingBoots() throws {
        try FileManager.default.createDirectory(atPath: work + "/bad", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        try Data("{\"ociVersion\": \"1\", \"process\": {\"user\": {\"uid\": 0, \"gid\": 0}, \"cwd\": \"/\", \"args\": []}}".utf8)
            .write(to: URL(fileURLWithPath: work + "/bad/config.json"))
        let bad = try runtime(["create", "--bundle", work + "/bad", "x"])
        #expect(bad.status == 1 && bad.stderr.contains("process.args is empty"))
        #expect(try runtime(["create", "--bundle", work + "/missing", "x"]).stderr.contains("config.json"))
        #expect(try runtime(["state", "../etc"]).stderr.contains("invalid container ID"))
        #expect(try runtime(["kill", "x", "NOPE"]).stderr.contains("unknown signal"))
        #expect(!FileManager.default.fileExists(atPath: work + "/state/x"), "a failed create leaves nothing")
        let features = try runtime(["features"])
        #expect(features.status == 0)
        #expect((try JSONSerialization.jsonObject(with: Data(features.stdout.utf8)) as? [String: Any])?["ociVersionMax"] as? String == "1.1.0")
        #expect(try runtime(["--version"]).stdout.hasPrefix("skiff-oci version"))
    }

    /// podman drives it as it drives runc (conmon: create, start, wait, exec,
    /// kill, delete): `podman --runtime skiff-oci run -d` of the test image in
    /// a private store, then `exec` (its output and status), `logs`, `stop`.
    @Test(.enabled(if: podman != nil, "needs podman (scripts/build-guest.sh installs it as root)"))
    func podmanRunsExecsAndStopsAContainerInASkiffMicroVM() throws {
        let podman = try #require(podman)
        // podman names an oci: image after its path, which must be a valid
        // reference: lower case, no component starting with "." (as in ~/.cache).
        let work = "/tmp/skiff-podman-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { _ = try? TestSupport.runProgram(["/bin/rm", "-rf", work]) }
        let image = try #require(testImage)
        let layout = String(image[..<image.lastIndex(of: ":")!])
        #expect(try TestSupport.runProgram(["/bin/cp", "-r", layout, work + "/image"]).status == 0)
        let base = [podman, "--root", work + "/storage", "--runroot", work + "/run", "--storage-driver", "vfs",
                    "--cgroup-manager", "cgroupfs", "--runtime", runtimeExecutable]
        let pulled = try TestSupport.runProgram(base + ["pull", "-q", "oci:" + work + "/image:test"])
        try #require(pulled.status == 0, "\(pulled.stderr)")
        let imageID = try #require(pulled.stdout.split(whereSeparator: \.isNewline).last.map(String.init))
        // The issue's first check: output through conmon, the process's status as podman's.
        let once = try TestSupport.runProgram(base + ["run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", imageID, "-c", "echo hi; exit 3"])
        #expect(once.status == 3 && once.stdout == "hi\n", "\(once.stdout) \(once.stderr)")
        // Into files, not pipes: conmon, which stays, keeps podman's descriptors (a pipe would never end).
        // A volume (a bind mount of a directory): copied in at create.
        try FileManager.default.createDirectory(atPath: work + "/volume/sub", withIntermediateDirectories: true)
        try Data("from the host\n".utf8).write(to: URL(fileURLWithPath: work + "/volume/sub/note"))
        let runPID = try spawn(base + ["run", "-d", "--name", "vm", "--network", "none", "--memory", "256m", "-v", work + "/volume:/data:ro",
                                       "--entrypoint", "/bin/sh", imageID,
                                       "-c", "echo hi from the VM; uname -r; echo $(cat /etc/hostname); while :; do sleep 1; done"],
                               input: "", stdout: work + "/run.out", stderr: work + "/run.err")
        let runStatus = waitStatus(runPID)
        try #require(runStatus == 0, "\((try? String(contentsOfFile: work + "/run.err", encoding: .utf8)) ?? "")")
        defer { _ = try? TestSupport.runProgram(base + ["rm", "-f", "vm"]) }
        let containerID = try String(contentsOfFile: work + "/run.out", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)

        let exec = try TestSupport.runProgram(base + ["exec", "vm", "/bin/sh", "-c", "echo from exec; id -u; cat /data/sub/note; exit 6"])
        #expect(exec.status == 6, "exec's status through conmon and podman: \(exec.stderr)")
        #expect(exec.stdout == "from exec\n1000\nfrom the host\n")
        // --memory 256m: the monitor's cgroup holds it to that, and the guest has what is left beside the VMM.
        let memory = try TestSupport.runProgram(base + ["exec", "vm", "/bin/sh", "-c", "grep MemTotal /proc/meminfo"])
        let kilobytes = Int(memory.stdout.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
        #expect((150_000...(192 << 10)).contains(kilobytes), "a 192 MiB guest: \(memory.stdout)")
        let limitFile = ControlGroup.isUnified ? "/sys/fs/cgroup/libpod_parent/libpod-\(containerID)/memory.max"
            : "/sys/fs/cgroup/memory/libpod_parent/libpod-\(containerID)/memory.limit_in_bytes"
        #expect((try? String(contentsOfFile: limitFile, encoding: .utf8)) == "\(256 << 20)\n", "cgroupsPath and its memory limit applied")
        let logs = try TestSupport.runProgram(base + ["logs", "vm"])
        let lines = logs.stdout.split(whereSeparator: \.isNewline).map(String.init)
        #expect(lines.first == "hi from the VM" && lines.count == 3, "\(logs.stdout)")
        #expect(lines.count > 1 && lines[1].hasPrefix("6.1."), "the guest's kernel, not the host's: \(logs.stdout)")
        // podman's /etc/hostname (a bind mount of a file) was copied in: the container's ID.
        #expect(lines.count > 2 && containerID.hasPrefix(lines[2]), "\(logs.stdout)")
        let stop = try TestSupport.runProgram(base + ["stop", "-t", "20", "vm"])
        #expect(stop.status == 0, "\(stop.stderr)")
        let inspect = try TestSupport.runProgram(base + ["inspect", "vm", "--format", "{{.State.ExitCode}} {{.State.Status}}"])
        #expect(inspect.stdout == "143 exited\n", "stop's TERM ended the shell inside: \(inspect.stdout)")
    }
}

/// podman, where installed.
let podman: String? = ["/usr/bin/podman", "/usr/local/bin/podman"].first { FileManager.default.isExecutableFile(atPath: $0) }

/// A listening Unix socket that receives a pseudo-terminal master, as conmon's console socket does.
final class ConsoleSocket {
    let path: String
    let fd: Int32

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { space in
            for (index, byte) in path.utf8.enumerated() where index < space.count - 1 { space[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        try #require(bound == 0 && listen(fd, 1) == 0, "console socket at \(path)")
    }

    deinit { close(fd) }

    /// Accepts the runtime's connection and takes the descriptor it sends.
    func receiveTerminal() -> Int32? {
        let client = accept(fd, nil, nil)
        guard client >= 0 else { return nil }
        defer { close(client) }
        let received = csystem_receive_fd(client)
        return received >= 0 ? received : nil
    }
}

/// What `fd` yields until the text holds `needle` or `seconds` pass.
func read(_ fd: Int32, until needle: String, seconds: Int) -> String {
    var bytes: [UInt8] = []
    let deadline = Date().addingTimeInterval(Double(seconds))
    while Date() < deadline, !String(decoding: bytes, as: UTF8.self).contains(needle) {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, 200) > 0 else { continue }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = Glibc.read(fd, &buffer, buffer.count)
        if count <= 0 { break }
        bytes += buffer[0..<count]
    }
    return String(decoding: bytes, as: UTF8.self)
}
