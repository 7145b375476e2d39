import Glibc
import Host

/// A cgroup for a VMM process: v2 where the host has it (one directory under
/// /sys/fs/cgroup), else v1's memory, cpu and pids hierarchies. Made with
/// its parents, limits written before anything is placed in it. The jail
/// puts its VMM in one; the OCI runtime its monitor (`linux.cgroupsPath`).
public struct ControlGroup: Sendable {
    public struct Limits: Sendable, Equatable {
        public var memoryBytes: Int?
        /// CPU time per period, in microseconds (`cpuQuota / cpuPeriod` CPUs).
        public var cpuQuota: Int?
        public var cpuPeriod: Int
        public var pids: Int?

        public init(memoryBytes: Int? = nil, cpuQuota: Int? = nil, cpuPeriod: Int = 100_000, pids: Int? = nil) {
            self.memoryBytes = memoryBytes
            self.cpuQuota = cpuQuota
            self.cpuPeriod = cpuPeriod
            self.pids = pids
        }
    }

    public static let mountPoint = "/sys/fs/cgroup"
    /// The directories this made or reuses, leaf first per hierarchy.
    public let directories: [String]
    let procsFiles: [String]

    public static var isUnified: Bool { access(mountPoint + "/cgroup.controllers", F_OK) == 0 }

    /// `path`: relative to the hierarchy's root ("a/b" and "/a/b" alike; no "..").
    public init(path: String, limits: Limits) throws(MachineError) {
        let components = path.split(separator: "/").map(String.init)
        guard !components.isEmpty, !components.contains(where: { $0 == ".." || $0 == "." }) else {
            throw .invalidConfiguration("cgroup path '\(path)' is empty or has '.' or '..' components")
        }
        let relative = components.joined(separator: "/")
        var writes: [(String, String, required: Bool)] = []
        if Self.isUnified {
            // v2: each parent must hand the controllers down to its children.
            var parent = Self.mountPoint
            for component in components {
                _ = Self.write(parent + "/cgroup.subtree_control", "+memory +cpu +pids")
                parent += "/" + component
                guard mkdir(parent, 0o755) == 0 || errno == EEXIST else { throw .system("mkdir \(parent)", errno) }
            }
            directories = [parent]
            procsFiles = [parent + "/cgroup.procs"]
            if let memory = limits.memoryBytes {
                writes += [(parent + "/memory.max", "\(memory)", true), (parent + "/memory.swap.max", "0", false)]
            }
            if let quota = limits.cpuQuota { writes.append((parent + "/cpu.max", "\(quota) \(limits.cpuPeriod)", true)) }
            if let pids = limits.pids { writes.append((parent + "/pids.max", "\(pids)", true)) }
        } else {
            let hierarchies = ["memory", "cpu", "pids"].map { Self.mountPoint + "/" + $0 }.filter { access($0, F_OK) == 0 }
            var made: [String] = []
            for hierarchy in hierarchies {
                var directory = hierarchy
                for component in components {
                    directory += "/" + component
                    guard mkdir(directory, 0o755) == 0 || errno == EEXIST else { throw .system("mkdir \(directory) (cgroup v1)", errno) }
                }
                made.append(directory)
            }
            directories = made
            procsFiles = made.map { $0 + "/cgroup.procs" }
            let base = Self.mountPoint
            if let memory = limits.memoryBytes { writes.append(("\(base)/memory/\(relative)/memory.limit_in_bytes", "\(memory)", true)) }
            if let quota = limits.cpuQuota {
                writes += [("\(base)/cpu/\(relative)/cpu.cfs_period_us", "\(limits.cpuPeriod)", true),
                           ("\(base)/cpu/\(relative)/cpu.cfs_quota_us", "\(quota)", true)]
            }
            if let pids = limits.pids { writes.append(("\(base)/pids/\(relative)/pids.max", "\(pids)", true)) }
        }
        for (file, value, required) in writes {
            if let error = Self.write(file, value), required {
                remove()
                throw .system("writing \(value) to \(file)", error)
            }
        }
    }

    /// Moves `pid` into every hierarchy; nil, or what failed.
    public func add(_ pid: pid_t) -> String? {
        for file in procsFiles {
            if let error = Self.write(file, "\(pid)") { return "\(file): \(String(cString: strerror(error)))" }
        }
        return nil
    }

    /// Removes the leaf directories (once empty: the processes in them ended).
    public func remove() { for directory in directories { rmdir(directory) } }

    /// Writes `value` to a control file; nil or the errno.
    static func write(_ path: String, _ value: String) -> Int32? {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        return Array(value.utf8).withUnsafeBytes { writeAll(fd, $0) }
    }
}
