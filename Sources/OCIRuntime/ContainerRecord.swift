import Glibc
import Host
import JSON

/// One container's state under `--root/ID`: state.json as the runtime-spec
/// defines it (plus what runc adds: rootfs, created, owner), the monitor's
/// process start time (so that a reused PID is not mistaken for it), the run
/// spec the monitor hands over on `start`, and the monitor's control socket.
/// state.json is replaced atomically (written beside, synced, renamed), so a
/// crash never leaves it half-written.
public struct ContainerRecord: Codable, Sendable, Equatable {
    public var ociVersion = "1.1.0"
    public var id: String
    /// creating, created, running, stopped
    public var status: String
    public var pid: Int32
    public var bundle: String
    public var rootfs: String
    public var created: String
    public var owner = ""
    public var annotations: [String: String]?
    /// The monitor's start time in clock ticks since boot (/proc/PID/stat field 22).
    public var monitorStartTime: UInt64?
    /// The monitor's cgroup (relative to the hierarchies' root), removed by `delete`.
    public var cgroupPath: String?

    public init(id: String, status: String, pid: Int32, bundle: String, rootfs: String, created: String,
                annotations: [String: String]?) {
        self.id = id; self.status = status; self.pid = pid; self.bundle = bundle; self.rootfs = rootfs
        self.created = created; self.annotations = annotations
    }

    /// What `state` prints: the stored status, or `stopped` when the monitor
    /// is gone (or its PID now belongs to another process).
    public func current() -> ContainerRecord {
        var record = self
        if status != "creating", status != "stopped", !Self.isAlive(pid: pid, startTime: monitorStartTime) {
            record.status = "stopped"
        }
        return record
    }

    public static func isAlive(pid: Int32, startTime: UInt64?) -> Bool {
        guard pid > 0, kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let startTime else { return true }
        return processStartTime(pid) == startTime
    }

    /// Field 22 of /proc/PID/stat (after the command name, which may hold spaces and parentheses).
    public static func processStartTime(_ pid: Int32) -> UInt64? {
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let text = String(decoding: readToEnd(fd), as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? UInt64(fields[19]) : nil // field 3 is fields[0]
    }
}

/// The containers under one `--root`.
public struct ContainerStore: Sendable {
    public let root: String

    public init(root: String) { self.root = root }

    /// runc's rule for IDs: letters, digits, `_+-.`, not starting with `.`, at most 1024 bytes.
    public static func checkID(_ id: String) throws(RuntimeError) {
        guard !id.isEmpty, id.utf8.count <= 1024, !id.hasPrefix("."),
              id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_+-.".contains($0)) }) else {
            throw .usage("invalid container ID '\(id)'")
        }
    }

    public func directory(_ id: String) -> String { root + "/" + id }

    public func load(_ id: String) throws(RuntimeError) -> ContainerRecord {
        try Self.checkID(id)
        let path = directory(id) + "/state.json"
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw .container("container \(id) does not exist") }
        defer { close(fd) }
        do { return try JSONCodec.decode(ContainerRecord.self, from: readToEnd(fd)) } catch {
            throw .container("container \(id): state.json is damaged: \(error)")
        }
    }

    /// Creates the container's directory; fails if it exists.
    public func create(_ id: String) throws(RuntimeError) -> String {
        try Self.checkID(id)
        // Like runc, the root and its parents are made as needed (containerd's
        // shim passes /run/containerd/runc/NAMESPACE, which may not exist yet).
        makeDirectories(root, mode: 0o711)
        let path = directory(id)
        guard mkdir(path, 0o700) == 0 else {
            throw errno == EEXIST ? .container("container \(id) already exists") : .system("mkdir \(path): \(String(cString: strerror(errno)))")
        }
        return path
    }

    public func save(_ record: ContainerRecord) throws(RuntimeError) {
        let bytes: [UInt8]
        do { bytes = try JSONCodec.encode(record) } catch { throw .system("encoding state.json: \(error)") }
        try Self.replace(directory(record.id) + "/state.json", with: bytes)
    }

    /// Writes `bytes` beside `path`, syncs, and renames over it.
    public static func replace(_ path: String, with bytes: [UInt8]) throws(RuntimeError) {
        if let failure = replaceFile(path, with: bytes, mode: 0o600, durable: true) {
            throw .system("writing \(path): \(failure.operation): \(String(cString: strerror(failure.errno)))")
        }
    }

    /// Removes everything the container had.
    public func remove(_ id: String) {
        let path = directory(id)
        for name in listDirectory(atPath: path) ?? [] { unlink(path + "/" + name) }
        rmdir(path)
    }
}
