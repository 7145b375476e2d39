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

    /// A bundle whose rootfs is the test image's tree.
    func makeBundle(_ name: String, args: [String], terminal: Bool = false) throws -> String {
        let image = try #require(testImage, "scripts/make-test-image.sh failed")
        let store = ImageStore(directory: work + "/images")
        let tree = try store.unpackedTree(for: try ImageSource.open(try ImageReference(parsing: image)))
        let bundle = work + "/" + name
        try FileManager.default.createDirectory(atPath: bundle, withIntermediateDirectories: true)
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
        #expect(try runtime(["delete", "two"]).status == 0)

        // A started container with a terminal (the master comes to our console
        // socket, sized 33x77): what we type reaches the process, and kill
        // delivers the signal to the process inside the guest, which handles it.
        let script = "stty size; trap 'echo resized $(stty size)' WINCH; read line; echo \"typed $line\"; trap 'echo got TERM; exit 9' TERM; echo waiting; while :; do sleep 1; done"
        let console = try ConsoleSocket(path: work + "/console.sock")
        let three = try spawn([runtimeExecutable, "--root", work + "/state", "create", "--bundle",
                               try makeBundle("three", args: ["/bin/sh", "-c", script], terminal: true),
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
        _ = "hello\n".withCString { write(master, $0, 6) }
        screen += read(master, until: "waiting", seconds: 120)
        #expect(screen.contains("typed hello") && screen.contains("waiting"), "\(screen)")
        // conmon resizes the master: the process inside sees the new size (SIGWINCH).
        var larger = winsize(ws_row: 40, ws_col: 100, ws_xpixel: 0, ws_ypixel: 0)
        #expect(ioctl(master, UInt(TIOCSWINSZ), &larger) == 0)
        screen += read(master, until: "resized 40 100", seconds: 120)
        #expect(screen.contains("resized 40 100"), "a resize after start reached the guest: \(screen)")
        #expect(try runtime(["kill", "three", "TERM"]).status == 0)
        screen += read(master, until: "got TERM", seconds: 120)
        let handled = waitStatus(threePID)
        #expect(handled >> 8 & 0xFF == 9 && handled & 0x7F == 0, "the process's TERM handler ran and chose its status (\(handled))")
        #expect(screen.contains("got TERM"), "\(screen)")
        #expect(try runtime(["delete", "three"]).status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: work + "/state").isEmpty, "delete removes everything")
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

    /// podman drives it as it drives runc (conmon: create, start, wait, delete):
    /// `podman --runtime skiff-oci run` of the test image in a private store.
    @Test(.enabled(if: podman != nil, "needs podman (scripts/build-guest.sh installs it as root)"))
    func podmanRunsAContainerInASkiffMicroVM() throws {
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
        let run = try TestSupport.runProgram(base + ["run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", imageID,
                                                     "-c", "echo hi from the VM; uname -r; id -u; exit 3"])
        #expect(run.status == 3, "the container's status through conmon and podman: \(run.stderr)")
        let lines = run.stdout.split(whereSeparator: \.isNewline).map(String.init)
        #expect(lines.first == "hi from the VM" && lines.count == 3 && lines[2] == "1000", "\(run.stdout)")
        #expect(lines.count > 1 && lines[1].hasPrefix("6.1."), "the guest's kernel, not the host's: \(run.stdout)")
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
