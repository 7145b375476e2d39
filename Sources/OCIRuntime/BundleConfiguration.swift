import Container
import Glibc
import Host
import JSON
import Images
import SkiffKit

/// The part of an OCI bundle's config.json (runtime-spec) a microVM acts on:
/// the process, the root, the hostname, and what the runtime must say it
/// does not do. Every value is checked here, once, before anything is built.
public struct BundleConfiguration: Decodable, Sendable {
    public var ociVersion: String
    public var process: Process?
    public var root: Root?
    public var hostname: String?
    public var mounts: [Mount]?
    public var annotations: [String: String]?
    public var linux: Linux?

    /// runtime-spec's process: config.json's, or the whole of `exec --process FILE`.
    public struct Process: Decodable, Sendable {
        public var terminal: Bool?
        public var consoleSize: ConsoleSize?
        public var user: User
        public var args: [String]?
        public var env: [String]?
        public var cwd: String
    }
    public struct ConsoleSize: Decodable, Sendable {
        public var height: Int
        public var width: Int
    }
    public struct User: Decodable, Sendable {
        public var uid: UInt32
        public var gid: UInt32
        public var additionalGids: [UInt32]?
    }
    public struct Root: Decodable, Sendable {
        public var path: String
        public var readonly: Bool?
    }
    public struct Mount: Decodable, Sendable {
        public var destination: String
        public var type: String?
        public var source: String?
        public var options: [String]?

        /// runc binds when the type says so, or (type absent or "none") the options do.
        var isBind: Bool {
            type == "bind" || (options ?? []).contains { $0 == "bind" || $0 == "rbind" }
        }
    }
    public struct Linux: Decodable, Sendable {
        public var namespaces: [Namespace]?
        public var cgroupsPath: String?
        public var resources: Resources?
    }
    /// The resources a microVM's monitor can be held to (the rest are the guest's business).
    public struct Resources: Decodable, Sendable {
        public var memory: Memory?
        public var cpu: CPU?
        public var pids: Pids?
        public struct Memory: Decodable, Sendable { public var limit: Int64? }
        public struct CPU: Decodable, Sendable { public var quota: Int64?; public var period: UInt64? }
        public struct Pids: Decodable, Sendable { public var limit: Int64? }
    }
    public struct Namespace: Decodable, Sendable {
        public var type: String
        public var path: String?
    }

    /// config.json is small; a larger one is not a bundle's.
    public static let maximumSize = 4 << 20

    public static func decode(_ bytes: [UInt8]) throws(RuntimeError) -> BundleConfiguration {
        guard bytes.count <= maximumSize else { throw .invalidBundle("config.json has \(bytes.count) bytes; at most \(maximumSize)") }
        do { return try JSONCodec.decode(BundleConfiguration.self, from: bytes) } catch {
            throw .invalidBundle("config.json: \(Self.describe(error))")
        }
    }

    /// The container's process as Skiff's guest init runs it.
    public func containerSpec(defaultHostname: String) throws(RuntimeError) -> ContainerSpec {
        guard let process else { throw .invalidBundle("config.json has no process") }
        if let hostname, hostname.utf8.contains(0) { throw .invalidBundle("a NUL byte in hostname") }
        if let hostname, hostname.utf8.count > 64 { throw .invalidBundle("hostname longer than 64 bytes") }
        return try process.containerSpec(hostname: hostname ?? defaultHostname, what: "process")
    }

    /// `exec --process FILE`: a runtime-spec process object alone.
    public static func decodeProcess(_ bytes: [UInt8]) throws(RuntimeError) -> Process {
        guard bytes.count <= maximumSize else { throw .invalidBundle("the process file has \(bytes.count) bytes; at most \(maximumSize)") }
        do { return try JSONCodec.decode(Process.self, from: bytes) } catch {
            throw .invalidBundle("the process file: \(Self.describe(error))")
        }
    }
}

extension BundleConfiguration.Process {
    /// This process as Skiff's guest init runs it; `what` names it in errors.
    public func containerSpec(hostname: String, what: String) throws(RuntimeError) -> ContainerSpec {
        guard let args, !args.isEmpty, !args[0].isEmpty else { throw .invalidBundle("\(what).args is empty") }
        guard cwd.hasPrefix("/") else { throw .invalidBundle("\(what).cwd '\(cwd)' is not absolute") }
        let environment = env ?? []
        if let bad = environment.first(where: { !$0.contains("=") }) { throw .invalidBundle("\(what).env entry '\(bad)' has no '='") }
        for text in args + environment + [cwd] where text.utf8.contains(0) {
            throw .invalidBundle("a NUL byte in \(what).args, env or cwd")
        }
        let groups = [user.gid] + (user.additionalGids ?? []).filter { $0 != user.gid }
        guard groups.count <= 64 else { throw .invalidBundle("more than 64 supplementary groups") }
        let home = environment.first { $0.hasPrefix("HOME=") }.map { String($0.dropFirst(5)) } ?? "/"
        return ContainerSpec(arguments: args, environment: environment, workingDirectory: cwd,
                             identity: .init(uid: user.uid, gid: user.gid, groups: groups, home: home),
                             hostname: hostname, terminal: terminal ?? false, interactive: true)
    }
}

extension BundleConfiguration {

    /// What the monitor's cgroup holds it to: memory (the guest's RAM and the
    /// VMM's own), CPU time, processes. Zero or negative values mean no limit.
    public var cgroupLimits: ControlGroup.Limits {
        let resources = linux?.resources
        var limits = ControlGroup.Limits()
        if let memory = resources?.memory?.limit, memory > 0 { limits.memoryBytes = Int(memory) }
        if let quota = resources?.cpu?.quota, quota > 0 {
            limits.cpuQuota = Int(quota)
            if let period = resources?.cpu?.period, period > 0 { limits.cpuPeriod = Int(period) }
        }
        if let pids = resources?.pids?.limit, pids > 0 { limits.pids = Int(pids) }
        return limits
    }

    /// What the VMM itself needs beside the guest's RAM, within a memory limit.
    public static let monitorOverheadMiB = 64
    /// The guest's RAM: the default without a memory limit; with one, what the
    /// limit leaves beside the VMM (memory the guest never touches costs nothing).
    public func guestMemoryMiB(default defaultMiB: Int = 128) throws(RuntimeError) -> Int {
        guard let limit = cgroupLimits.memoryBytes else { return defaultMiB }
        let available = limit >> 20 - Self.monitorOverheadMiB
        guard available >= 32 else {
            throw .invalidBundle("memory limit \(limit >> 20) MiB is too small for a microVM (at least \(32 + Self.monitorOverheadMiB) MiB)")
        }
        return min(available, 16384)
    }

    /// Where the monitor's cgroup goes: `linux.cgroupsPath` as runc reads it.
    /// With `--systemd-cgroup`, "SLICE:PREFIX:NAME" names the scope
    /// PREFIX-NAME.scope in SLICE, laid out as systemd does (the directory is
    /// made directly: Skiff does not ask systemd over D-Bus). Nil without one.
    public static func cgroupPath(_ cgroupsPath: String?, systemd: Bool) throws(RuntimeError) -> String? {
        guard let cgroupsPath, !cgroupsPath.isEmpty else { return nil }
        let parts = cgroupsPath.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard systemd || parts.count == 1 else { throw .invalidBundle("cgroupsPath '\(cgroupsPath)' is systemd's form: use --systemd-cgroup") }
        guard systemd else { return cgroupsPath }
        guard parts.count == 3, !parts[2].isEmpty else { throw .invalidBundle("--systemd-cgroup: cgroupsPath must be SLICE:PREFIX:NAME, not '\(cgroupsPath)'") }
        let slice = parts[0].isEmpty ? "system.slice" : parts[0]
        guard slice.hasSuffix(".slice") else { throw .invalidBundle("--systemd-cgroup: '\(slice)' is not a slice") }
        // "a-b-c.slice" lives in "a.slice/a-b.slice/a-b-c.slice"; "-.slice" is the root.
        let words = slice.dropLast(6).split(separator: "-").map(String.init)
        var path: [String] = []
        for index in words.indices { path.append(words[...index].joined(separator: "-") + ".slice") }
        let scope = (parts[1].isEmpty ? "" : parts[1] + "-") + parts[2] + ".scope"
        return (path + [scope]).joined(separator: "/")
    }

    /// Files larger than this are not copied (podman's are a few hundred bytes).
    public static let maximumBoundFile = 256 * 1024
    /// Destinations the guest provides itself: binding them changes nothing.
    static let providedByGuest: Set<String> = ["/dev/shm", "/dev/mqueue", "/dev/pts", "/sys/fs/cgroup"]

    /// The bind mounts, copied: files (podman's /etc/hosts, /etc/resolv.conf,
    /// /etc/hostname, /run/.containerenv) and directory trees (`-v DIR:/data`),
    /// read now, at create, and written into the container's root at start,
    /// in order, a directory before what it holds. A copy, not a live mount:
    /// later changes on the host are not seen, and the container's writes
    /// stay in the guest. What cannot be copied is in `warnings`.
    public func boundFiles() -> [GuestFile] {
        boundFilesAndWarnings().files
    }

    /// `boundFiles()` and `warnings` from one walk of the binds (`create`
    /// needs both; a tree is read once).
    public func boundFilesAndWarnings() -> (files: [GuestFile], warnings: [String]) {
        let binds = boundMounts()
        var lines: [String] = []
        if !binds.skipped.isEmpty {
            lines.append("bind mounts that cannot be copied into the microVM (over \(BoundTree.Budget.maximumEntries) entries or \(BoundTree.Budget.maximumBytes >> 20) MiB in all, a file over 256 KiB, or unreadable) are left out: \(binds.skipped.joined(separator: ", "))")
        }
        if linux?.namespaces?.contains(where: { $0.type == "network" && $0.path != nil }) == true {
            lines.append("the bundle's network namespace is not given to the microVM: it runs without network")
        }
        return (binds.files, lines)
    }

    private func boundMounts() -> (files: [GuestFile], skipped: [String]) {
        var files: [GuestFile] = []
        var skipped: [String] = []
        var budget = BoundTree.Budget()
        for mount in mounts ?? [] where mount.isBind {
            guard !Self.providedByGuest.contains(mount.destination) else { continue }
            var info = stat()
            guard let source = mount.source, mount.destination.hasPrefix("/"), !mount.destination.utf8.contains(0),
                  !mount.destination.contains(":"), stat(source, &info) == 0 else {
                skipped.append(mount.destination)
                continue
            }
            if info.st_mode & S_IFMT == S_IFDIR, let tree = BoundTree.copy(source, to: mount.destination, budget: &budget) {
                files += tree
            } else if info.st_mode & S_IFMT == S_IFREG, budget.take(bytes: Int(info.st_size)),
                      let bytes = try? readRegularFile(source, limit: Self.maximumBoundFile) {
                files.append(GuestFile(path: mount.destination, mode: UInt32(info.st_mode & 0o7777), bytes: bytes))
            } else {
                skipped.append(mount.destination)
            }
        }
        return (files, skipped)
    }

    /// What a VM does not do yet and the runtime says once (bind mounts too
    /// large to copy are not shared into the guest; a network namespace's
    /// interfaces are not given to it).
    public var warnings: [String] {
        boundFilesAndWarnings().warnings
    }

    static func describe(_ error: JSONError) -> String {
        switch error.location {
        case .offset: "not valid JSON (\(error))"
        case .path: "\(error)"
        }
    }
}

/// Why a runtime command failed: one line for the log and for stderr.
public enum RuntimeError: Error, CustomStringConvertible, Equatable {
    case usage(String)
    case invalidBundle(String)
    case container(String)
    case system(String)

    public var description: String {
        switch self {
        case let .usage(message): return message
        case let .invalidBundle(message): return "invalid bundle: \(message)"
        case let .container(message): return message
        case let .system(message): return message
        }
    }
}
