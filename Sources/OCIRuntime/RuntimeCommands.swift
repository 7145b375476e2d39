import Container
import CSystem
import Glibc
import Host
import JSON
import Images
import SkiffKit

/// `skiff-oci`: an OCI runtime with runc's command line whose containers are
/// microVMs. `create` builds the root disk from the bundle's rootfs and
/// starts the monitor (this executable again, `monitor ID`): it boots the
/// guest to `ready` and holds it there; the monitor's PID is the container's
/// and it exits as the container's process does. `start` releases the guest
/// with the run spec; `kill` signals the monitor; `delete` removes it all.
public enum RuntimeCommands {
    public static let version = SkiffVersion.number
    public static let specVersion = "1.1.0"
    /// Where state lives without `--root` (runc uses /run/runc).
    public static let defaultRoot = "/run/skiff-oci"

    /// Runs `line`; returns the exit status.
    public static func run(_ line: RuntimeCommandLine, executable: String) -> Int32 {
        let log = RuntimeLog(path: line.log, format: line.logFormat)
        let store = ContainerStore(root: line.root ?? defaultRoot)
        if line.flags.contains("version") {
            print("skiff-oci version \(version)\nspec: \(specVersion)")
            return 0
        }
        guard let command = line.command, !line.flags.contains("help") else {
            print(usage)
            return line.command == nil && !line.flags.contains("help") ? 1 : 0
        }
        do {
            switch command {
            case "create": try create(line, store: store, executable: executable, log: log)
            case "start": try start(line, store: store)
            case "state": try state(line, store: store)
            case "kill": try signal(line, store: store)
            case "delete": try delete(line, store: store)
            case "features": print(features)
            case "ps": try processes(line, store: store)
            case "list": try list(store: store)
            case "monitor":
                ContainerMonitor.run(id: try id(line), store: store, log: log, consoleSocket: line.options["console-socket"],
                                     cgroup: line.options["cgroup"], memoryMiB: line.options["memory"].flatMap { Int($0) } ?? 128)
            case "run": throw RuntimeError.usage("run: use create and start (a VM's PID must outlive this command)")
            case "exec": return try execute(line, store: store)
            default: throw RuntimeError.usage("unknown command '\(command)'")
            }
            return 0
        } catch {
            log.error("\(error)")
            return 1
        }
    }

    static let usage = """
        usage: skiff-oci [--root DIR] [--log FILE] [--log-format text|json] [--systemd-cgroup] [--debug] COMMAND
        commands: create --bundle DIR [--pid-file FILE] ID | start ID | state ID | kill [--all] ID [SIGNAL]
                  delete [--force] ID | features | ps [--format json] ID | list
                  exec [--process FILE | [--tty] [--cwd DIR] [--env K=V] [--user UID[:GID]] ID COMMAND...]
                       [--detach] [--pid-file FILE] [--console-socket SOCK] ID
        """

    static let features = """
        {
          "ociVersionMin": "1.0.0",
          "ociVersionMax": "\(specVersion)",
          "hooks": [],
          "mountOptions": [],
          "linux": {
            "namespaces": ["mount", "pid", "ipc", "uts", "network"],
            "capabilities": [],
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false}
          },
          "annotations": {"org.skiff.vm": "true", "org.skiff.isolation": "microVM (KVM)"}
        }
        """

    static func id(_ line: RuntimeCommandLine) throws(RuntimeError) -> String {
        guard let id = line.arguments.first else { throw .usage("\(line.command ?? ""): a container ID is required") }
        try ContainerStore.checkID(id)
        return id
    }

    // MARK: create

    static func create(_ line: RuntimeCommandLine, store: ContainerStore, executable: String, log: RuntimeLog) throws(RuntimeError) {
        let id = try id(line)
        guard line.arguments.count == 1 else { throw .usage("create: one container ID, not \(line.arguments.count) arguments") }
        var bundle = line.options["bundle"] ?? "."
        bundle = absolute(bundle)
        let bytes = try readSmallFile(bundle + "/config.json", limit: BundleConfiguration.maximumSize)
        let config = try BundleConfiguration.decode(bytes)
        var spec = try config.containerSpec(defaultHostname: String(id.prefix(12)))
        var consoleSocket = line.options["console-socket"].map(absolute)
        if spec.terminal && consoleSocket == nil {
            throw .usage("process.terminal is set: --console-socket is required (the pseudo-terminal's master goes there)")
        }
        if !spec.terminal { consoleSocket = nil }
        guard let root = config.root else { throw .invalidBundle("config.json has no root") }
        let rootfs = root.path.hasPrefix("/") ? root.path : bundle + "/" + root.path
        var info = stat()
        guard stat(rootfs, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { throw .invalidBundle("root.path \(rootfs) is not a directory") }
        let binds = config.boundFilesAndWarnings()
        for warning in binds.warnings { log.warning(warning) }
        if spec.environment.isEmpty { spec.environment = ["PATH=\(ContainerSpec.defaultPath)"] }
        let memoryMiB = try config.guestMemoryMiB()
        let cgroupPath = try BundleConfiguration.cgroupPath(config.linux?.cgroupsPath, systemd: line.systemdCgroup)

        let directory = try store.create(id)
        var cgroup: ControlGroup?
        do throws(RuntimeError) {
            if let cgroupPath {
                do { cgroup = try ControlGroup(path: cgroupPath, limits: config.cgroupLimits) } catch {
                    throw RuntimeError.container("cgroup \(cgroupPath): \(error)")
                }
            }
            do { _ = try RootDiskBuilder.makeDisk(fromTree: rootfs, at: directory + "/rootfs.ext4") } catch {
                throw RuntimeError.container("building the root disk from \(rootfs): \(error)")
            }
            // The guest waits until its disk shows this size (whole sectors, as virtio-blk offers it).
            var disk = stat()
            guard stat(directory + "/rootfs.ext4", &disk) == 0 else { throw RuntimeError.system("stat \(directory)/rootfs.ext4: \(String(cString: strerror(errno)))") }
            try ContainerStore.replace(directory + "/spec", with: GuestRunSpec.encode(spec, rootDevice: "/dev/vda", rootSize: UInt64(disk.st_size) & ~511,
                                                                                       files: binds.files))
            var record = ContainerRecord(id: id, status: "creating", pid: 0, bundle: bundle, rootfs: rootfs,
                                         created: rfc3339Now(nanoseconds: true), annotations: config.annotations)
            record.cgroupPath = cgroupPath
            try store.save(record)
            var monitorOptions = ["--memory", "\(memoryMiB)"]
            if let cgroupPath { monitorOptions += ["--cgroup", cgroupPath] }
            if let consoleSocket { monitorOptions += ["--console-socket", consoleSocket] }
            let (pid, message) = try spawnMonitor(executable: executable, root: store.root, id: id, log: line, options: monitorOptions)
            guard message == "ready" else {
                kill(pid, SIGKILL)
                throw RuntimeError.container(message.isEmpty ? "the monitor ended before the guest was ready" : message)
            }
            record.pid = pid
            record.monitorStartTime = ContainerRecord.processStartTime(pid)
            record.status = "created"
            try store.save(record)
            if let pidFile = line.options["pid-file"] {
                try ContainerStore.replace(absolute(pidFile), with: Array("\(pid)".utf8))
            }
        } catch {
            store.remove(id)
            cgroup?.remove()
            throw error
        }
    }

    /// Starts `executable monitor ID` with this process's standard streams
    /// (the container's) and a pipe on fd 3 on which it says "ready" once the
    /// guest waits for `start`, or why not. Returns its PID and that line.
    static func spawnMonitor(executable: String, root: String, id: String, log: RuntimeCommandLine,
                             options: [String]) throws(RuntimeError) -> (pid_t, String) {
        let ready: (read: Int32, write: Int32)
        do { ready = try makePipe() } catch { throw .system("\(error)") }
        defer { close(ready.read) }
        var arguments = [executable, "--root", root]
        if let path = log.log { arguments += ["--log", path, "--log-format", log.logFormat] }
        arguments += ["monitor", id] + options
        let pid: pid_t
        do { pid = try spawnProcess(arguments, descriptors: [(3, .descriptor(ready.write))]) } catch {
            close(ready.write)
            throw .system("starting the monitor \(executable): \(String(cString: strerror(error.errno)))")
        }
        close(ready.write)
        return (pid, ControlSocket.readLine(ready.read))
    }

    // MARK: exec

    /// `exec`: one more process in the running container's guest, through the
    /// guest agent (vsock). This process, or with `--detach` a child that
    /// outlives it (conmon, a subreaper, adopts it), stands for the exec'd
    /// process: its PID goes to `--pid-file`, and it ends as the process did.
    static func execute(_ line: RuntimeCommandLine, store: ContainerStore) throws(RuntimeError) -> Int32 {
        let id = try id(line)
        let record = try store.load(id).current()
        guard record.status == "running" else { throw .container("cannot exec in a container that is \(record.status)") }
        var spec = try execSpec(line)
        var consoleSocket = line.options["console-socket"].map(absolute)
        if spec.terminal && consoleSocket == nil {
            throw .usage("exec: a terminal needs --console-socket (the pseudo-terminal's master goes there)")
        }
        if !spec.terminal { consoleSocket = nil }
        spec.hostname = ""
        let directory = store.directory(id)
        let pidFile = line.options["pid-file"].map(absolute)

        /// Everything the exec'd process's stand-in does; returns its status.
        func session(started: (Result<UInt32, RuntimeError>) -> Void) -> Int32 {
            do {
                if let consoleSocket { try ContainerMonitor.attachTerminal(consoleSocket) }
                let connection = try ExecSession.connect(directory: directory)
                defer { close(connection) }
                var records = GuestRunSpec.encode(spec, rootDevice: "/dev/vda")
                if spec.terminal { records += ContainerMonitor.terminalSize(true) }
                return ExecSession.run(connection: connection, spec: records, terminal: spec.terminal, started: started)
            } catch {
                started(.failure(error))
                return 255
            }
        }

        guard line.flags.contains("detach") else {
            var failure: RuntimeError?
            let status = session { result in
                switch result {
                case .success:
                    if let pidFile { try? ContainerStore.replace(pidFile, with: Array("\(getpid())".utf8)) }
                case let .failure(error): failure = error
                }
            }
            if let failure { throw failure }
            endAsTheProcessDid(status)
        }

        // --detach: a child runs the session; this process waits only until the process started.
        let started: (read: Int32, write: Int32)
        do { started = try makePipe() } catch { throw .system("\(error)") }
        let child = fork()
        guard child >= 0 else { throw .system("fork: \(String(cString: strerror(errno)))") }
        if child == 0 {
            close(started.read)
            let status = session { result in
                let message: String
                switch result {
                case .success: message = "started"
                case let .failure(error): message = "error: \(error)"
                }
                _ = Array((message + "\n").utf8).withUnsafeBytes { writeAll(started.write, $0) }
                close(started.write)
            }
            endAsTheProcessDid(status)
        }
        close(started.write)
        let answer = ControlSocket.readLine(started.read)
        close(started.read)
        guard answer == "started" else {
            _ = waitForChild(child)
            throw .container(answer.hasPrefix("error: ") ? String(answer.dropFirst(7)) : "the exec session ended before the process started")
        }
        if let pidFile { try ContainerStore.replace(pidFile, with: Array("\(child)".utf8)) }
        return 0
    }

    /// The process to exec: `--process FILE` (podman's and the shim's way),
    /// or the command line's arguments with --cwd, --env, --user and --tty.
    static func execSpec(_ line: RuntimeCommandLine) throws(RuntimeError) -> ContainerSpec {
        if let path = line.options["process"] {
            guard line.arguments.count == 1 else { throw .usage("exec --process: no command after the container ID") }
            let process = try BundleConfiguration.decodeProcess(try readSmallFile(path, limit: BundleConfiguration.maximumSize))
            return try process.containerSpec(hostname: "", what: "process")
        }
        let arguments = Array(line.arguments.dropFirst())
        guard !arguments.isEmpty else { throw .usage("exec: a command is required (or --process FILE)") }
        var uid: UInt32 = 0, gid: UInt32 = 0
        if let user = line.options["user"] {
            let parts = user.split(separator: ":", omittingEmptySubsequences: false)
            guard (1...2).contains(parts.count), let first = UInt32(parts[0]), parts.count == 1 || UInt32(parts[1]) != nil else {
                throw .usage("exec --user must be UID[:GID], not '\(user)'")
            }
            uid = first
            gid = parts.count == 2 ? UInt32(parts[1])! : 0
        }
        var environment = ["PATH=\(ContainerSpec.defaultPath)"]
        if let variable = line.options["env"] {
            guard variable.contains("=") else { throw .usage("exec --env must be KEY=VALUE, not '\(variable)'") }
            environment.append(variable)
        }
        let cwd = line.options["cwd"] ?? "/"
        guard cwd.hasPrefix("/") else { throw .usage("exec --cwd must be absolute, not '\(cwd)'") }
        return ContainerSpec(arguments: arguments, environment: environment, workingDirectory: cwd,
                             identity: .init(uid: uid, gid: gid, groups: [gid], home: "/"), hostname: "",
                             terminal: line.flags.contains("tty"), interactive: true)
    }

    // MARK: start, state, kill, delete, ps, list

    static func start(_ line: RuntimeCommandLine, store: ContainerStore) throws(RuntimeError) {
        let id = try id(line)
        let record = try store.load(id).current()
        guard record.status == "created" else { throw .container("cannot start a container that is \(record.status)") }
        let reply = try ControlSocket.request("start", in: store.directory(id))
        guard reply == "ok" else { throw .container(reply.isEmpty ? "the container's monitor ended" : reply) }
    }

    static func state(_ line: RuntimeCommandLine, store: ContainerStore) throws(RuntimeError) {
        let record = try store.load(try id(line)).current()
        print(stateJSON(record))
    }

    /// The runtime-spec state, as runc prints it (the monitor's start time is ours alone).
    static func stateJSON(_ record: ContainerRecord) -> String {
        var fields: [String: JSONValue] = [
            "ociVersion": .string(record.ociVersion), "id": .string(record.id),
            "pid": .number(String(record.status == "stopped" ? 0 : record.pid)), "status": .string(record.status),
            "bundle": .string(record.bundle), "rootfs": .string(record.rootfs),
            "created": .string(record.created), "owner": .string(record.owner),
        ]
        if let annotations = record.annotations, !annotations.isEmpty {
            fields["annotations"] = .object(annotations.mapValues { .string($0) })
        }
        // JSONWriter's pretty form ends with a newline; print adds its own.
        return String(decoding: JSONWriter.write(.object(fields), pretty: true).dropLast(), as: UTF8.self)
    }

    static func signal(_ line: RuntimeCommandLine, store: ContainerStore) throws(RuntimeError) {
        let id = try id(line)
        let name = line.arguments.count > 1 ? line.arguments[1] : "TERM"
        guard let number = SignalName.parse(name) else { throw .usage("kill: unknown signal '\(name)'") }
        let record = try store.load(id).current()
        guard record.status == "created" || record.status == "running" else { throw .container("container \(id) is not running") }
        if record.status == "running" && number != SIGKILL {
            // Into the guest, to the process, which may handle it as it would under runc.
            let reply = try ControlSocket.request("\(line.flags.contains("all") ? "signal-all" : "signal") \(number)", in: store.directory(id))
            guard reply == "ok" else { throw .container(reply.isEmpty ? "container \(id) is not running" : reply) }
            return
        }
        // Not started yet, or KILL: the VM ends, and the monitor dies by the signal.
        guard kill(record.pid, number) == 0 else { throw .system("kill \(record.pid): \(String(cString: strerror(errno)))") }
    }

    static func delete(_ line: RuntimeCommandLine, store: ContainerStore) throws(RuntimeError) {
        let id = try id(line)
        let force = line.flags.contains("force")
        let record: ContainerRecord
        do { record = try store.load(id).current() } catch {
            if force, (try? ContainerStore.checkID(id)) != nil { return } // nothing to delete
            throw error
        }
        if record.status == "running" && !force {
            throw .container("cannot delete container \(id) that is running; stop it first or use --force")
        }
        if record.status != "stopped" { killMonitor(record) }
        if let path = record.cgroupPath { (try? ControlGroup(path: path, limits: .init()))?.remove() }
        store.remove(id)
    }

    /// Kills the container's monitor (and with it the VM) if it still runs,
    /// and waits up to 10 s for it to be gone. Through a pidfd: it is checked
    /// to be the monitor after it was opened, so the signal cannot reach a
    /// process that reused the PID, and the wait ends when the monitor does.
    /// Kernels before 5.3 have no pidfd: a signal by PID and a 10 ms poll.
    static func killMonitor(_ record: ContainerRecord) {
        let pidfd = csystem_pidfd_open(record.pid)
        guard pidfd >= 0 else {
            guard ContainerRecord.isAlive(pid: record.pid, startTime: record.monitorStartTime) else { return }
            kill(record.pid, SIGKILL)
            for _ in 0..<1000 where ContainerRecord.isAlive(pid: record.pid, startTime: record.monitorStartTime) { usleep(10_000) }
            return
        }
        defer { close(pidfd) }
        guard ContainerRecord.isAlive(pid: record.pid, startTime: record.monitorStartTime),
              csystem_pidfd_send_signal(pidfd, SIGKILL) == 0 else { return }
        var exit = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
        _ = retryingInterrupts { poll(&exit, 1, 10_000) }
    }

    static func processes(_ line: RuntimeCommandLine, store: ContainerStore) throws(RuntimeError) {
        let record = try store.load(try id(line)).current()
        let pids = record.status == "stopped" ? [] : [record.pid]
        if line.options["format"] == "json" {
            print("[" + pids.map(String.init).joined(separator: ",") + "]")
        } else {
            print("PID\n" + pids.map(String.init).joined(separator: "\n"))
        }
    }

    static func list(store: ContainerStore) throws(RuntimeError) {
        print("ID\tPID\tSTATUS\tBUNDLE")
        for name in (listDirectory(atPath: store.root) ?? []).sorted() {
            guard let record = try? store.load(name).current() else { continue }
            print("\(record.id)\t\(record.pid)\t\(record.status)\t\(record.bundle)")
        }
    }

    /// `path` made absolute against the working directory (the caller's, as runc reads its arguments).
    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : currentDirectory() + "/" + path
    }

    /// Ends this process as the process it stands for ended: its exit status,
    /// or killed by the same signal when the guest reported 128+N.
    static func endAsTheProcessDid(_ status: Int32) -> Never {
        if (129...(128 + 64)).contains(status) { ShutdownSignals.die(by: status - 128) }
        exit(status)
    }

    static func currentDirectory() -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let found = buffer.withUnsafeMutableBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { getcwd($0.baseAddress, $0.count) != nil }
        }
        guard found, let end = buffer.firstIndex(of: 0) else { return "/" }
        return String(decoding: buffer[..<end], as: UTF8.self)
    }

    static func readSmallFile(_ path: String, limit: Int) throws(RuntimeError) -> [UInt8] {
        do { return try readRegularFile(path, limit: limit) } catch {
            switch error {
            case let .unreadable(errno): throw .invalidBundle("\(path): \(String(cString: strerror(errno)))")
            case let .notRegularFile(kind): throw .invalidBundle("\(path) is not a regular file (\(kind))")
            case let .tooLarge(size): throw .invalidBundle("\(path) has \(size) bytes; at most \(limit)")
            }
        }
    }
}

extension RuntimeCommands {
    /// This executable's path, for starting the monitor.
    public static func ownExecutable() -> String {
        executablePath() ?? CommandLine.arguments[0]
    }
}
