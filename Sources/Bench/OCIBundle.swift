import SkiffKit
import Foundation
import Images

/// An OCI runtime bundle (config.json) for the same process `skiff run` would
/// start: argv, env, cwd, uid/gid/groups and hostname from the same
/// `ContainerSpec`, over the image's unpacked tree, with the namespaces and
/// mounts `runc spec` and docker give a container.
///
/// The root is read-only with a tmpfs /tmp: the bench must not change the
/// cached tree (docker would add an overlayfs layer; that cost is not measured).
public enum OCIBundle {
    public static func configuration(_ spec: ContainerSpec, rootPath: String) -> [String: Any] {
        let capabilities = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                            "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                            "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
        func mount(_ destination: String, _ type: String, _ source: String, _ options: [String]) -> [String: Any] {
            ["destination": destination, "type": type, "source": source, "options": options]
        }
        return [
            "ociVersion": "1.0.2",
            "process": [
                "terminal": false,
                "user": ["uid": spec.identity.uid, "gid": spec.identity.gid, "additionalGids": spec.identity.groups],
                "args": spec.arguments,
                "env": spec.environment,
                "cwd": spec.workingDirectory,
                "capabilities": ["bounding": capabilities, "effective": capabilities, "permitted": capabilities],
                "rlimits": [["type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024]],
                "noNewPrivileges": true,
            ] as [String: Any],
            "root": ["path": rootPath, "readonly": true],
            "hostname": spec.hostname,
            "mounts": [
                mount("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
                mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
                mount("/dev/pts", "devpts", "devpts", ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]),
                mount("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
                mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
                mount("/tmp", "tmpfs", "tmpfs", ["nosuid", "nodev", "mode=1777"]),
            ],
            "linux": [
                "namespaces": ["pid", "network", "ipc", "uts", "mount"].map { ["type": $0] },
                "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
                "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
            ] as [String: Any],
        ]
    }

    /// Writes `directory/config.json`.
    public static func write(_ spec: ContainerSpec, rootPath: String, to directory: String) throws(MachineError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let data = try JSONSerialization.data(withJSONObject: configuration(spec, rootPath: rootPath), options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: directory + "/config.json"))
        } catch {
            throw .invalidConfiguration("cannot write the OCI bundle in \(directory): \(error)")
        }
    }
}
