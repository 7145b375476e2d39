import CSystem
import Glibc
import Host
import Synchronization

/// `--jail`: how the VMM confines itself beyond seccomp.
public struct JailOptions: Sendable, Equatable {
    /// Who the VMM runs as once /dev/kvm is open: nobody:nogroup unless told.
    public var uid: UInt32 = 65534
    public var gid: UInt32 = 65534
    /// The cgroup's memory limit beyond guest memory: the VMM's own heap,
    /// page tables, device buffers.
    public static let memoryOverheadMiB = 256

    public init() {}

    /// "UID:GID", both numbers, neither 0 (root is what the jail leaves).
    public init?(user: String) {
        let parts = user.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let uid = UInt32(parts[0]), let gid = UInt32(parts[1]), uid != 0, gid != 0 else { return nil }
        self.uid = uid
        self.gid = gid
    }
}

/// The jail, entered from `Machine.run` once /dev/kvm is open and before the
/// VM exists (KVM ties a VM to the process that made it):
///
/// - a new PID namespace (the VMM is its PID 1), and new mount, IPC and
///   network namespaces;
/// - a root of its own: an empty, read-only tmpfs holding only the time
///   zone file; the host's file system is unmounted from view (pivot_root);
/// - a cgroup (v2, or v1's memory and cpu hierarchies) limiting memory to the
///   guest's plus `JailOptions.memoryOverheadMiB` and CPU to one core per vCPU;
/// - every capability dropped (bounding set too), no supplementary groups,
///   the jail's uid and gid, no_new_privs.
///
/// The kernel and initrd were read, the guest memory mapped, the disk
/// images, TAPs and /dev/kvm opened before; the jailed VMM keeps those
/// descriptors (the TAPs stay in the host's network namespace) and sees
/// none of their paths. The
/// process that called `enter` stays outside as the jail's parent: it
/// forwards SIGINT/SIGTERM/SIGHUP/SIGQUIT, waits, removes the cgroup and the
/// mount point, and ends as the VMM ended. The child returns from `enter` and
/// carries on as the VMM.
enum Jail {
    /// What can be jailed now; the rest is refused with the reason.
    static func check(_ configuration: MachineConfiguration) throws(MachineError) {
        guard getuid() == 0 else {
            throw .invalidConfiguration("--jail needs root: it makes namespaces and a cgroup, then drops to the jail user")
        }
        if case .file = configuration.console {
            throw .invalidConfiguration("--jail with --console file: is not supported (the file is outside the jail); use stdio or none")
        }
        if configuration.snapshot != nil {
            throw .invalidConfiguration("--jail with a snapshot to write is not supported yet (the jail's root is read-only)")
        }
    }

    /// Returns in the jailed child; in the parent, waits and exits.
    static func enter(_ options: JailOptions, configuration: MachineConfiguration) throws(MachineError) {
        try check(configuration)
        // The one file the jail shows: the log's clock. glibc looks at
        // /etc/localtime for every log line's time, and opens it (a seccomp
        // kill) whenever it is missing.
        var files: [String] = []
        if let zone = realpath("/etc/localtime", nil) {
            files.append(String(cString: zone))
            free(zone)
        }
        var template = Array("/tmp/skiff-jail-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw .system("mkdtemp /tmp/skiff-jail-XXXXXX", errno) }
        let root = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        let cgroup: ControlGroup
        do {
            cgroup = try ControlGroup(path: "skiff-jail-\(getpid())",
                                      limits: .init(memoryBytes: (configuration.memoryMiB + JailOptions.memoryOverheadMiB) << 20,
                                                    cpuQuota: configuration.cpus * 100_000, cpuPeriod: 100_000))
        } catch {
            rmdir(root)
            throw error
        }
        let go: (read: Int32, write: Int32)
        do { go = try makePipe() } catch { throw MachineError(error) }
        // The next child is PID 1 of a new PID namespace; this process stays where it is.
        let unshared = csystem_unshare(CSYSTEM_NEWPID)
        guard unshared == 0 else { cgroup.remove(); rmdir(root); throw .system("unshare(CLONE_NEWPID)", -unshared) }
        let child = fork()
        guard child >= 0 else { cgroup.remove(); rmdir(root); throw .system("fork", errno) }
        if child == 0 {
            close(go.write)
            var byte: UInt8 = 0
            guard read(go.read, &byte, 1) == 1, byte == 1 else { _exit(1) }
            close(go.read)
            confine(root: root, files: files, options: options)
            ShutdownSignals.restartAfterFork()
            return
        }
        close(go.read)
        var placed: UInt8 = 1
        if let failure = cgroup.add(child) {
            writeErrorLine("skiff: jail: cannot place the VMM in its cgroup: \(failure)")
            placed = 0
        }
        _ = write(go.write, &placed, 1)
        close(go.write)
        // Signals go to the VMM, which stops its guest and ends; we follow.
        let forwarding = ShutdownSignals.register { signal in
            kill(child, signal)
            return true
        }
        var status: Int32 = 0
        _ = retryingInterrupts { waitpid(child, &status, 0) }
        forwarding.cancel()
        cgroup.remove()
        rmdir(root)
        if status & 0x7F != 0 { ShutdownSignals.die(by: status & 0x7F) }
        exit((status >> 8) & 0xFF)
    }

    /// In the child, single-threaded: namespaces, the new root, the drop.
    /// A failure here ends the child with one line (exit 1): nothing else runs.
    private static func confine(root: String, files: [String], options: JailOptions) {
        func fail(_ what: String, _ error: Int32) -> Never {
            writeErrorLine("skiff: jail: \(what): \(String(cString: strerror(error)))")
            _exit(1)
        }
        let unshared = csystem_unshare(CSYSTEM_NEWNS | CSYSTEM_NEWIPC | CSYSTEM_NEWNET)
        if unshared != 0 { fail("unshare(mount, IPC, network)", -unshared) }
        // Nothing mounted here propagates back to the host.
        guard mount("", "/", nil, UInt(MS_REC | MS_PRIVATE), nil) == 0 else { fail("making / private", errno) }
        guard mount("tmpfs", root, "tmpfs", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), "mode=0755,size=1m") == 0 else {
            fail("tmpfs on \(root)", errno)
        }
        for file in files {
            let target = root + file
            var directory = ""
            for part in file.split(separator: "/").dropLast() {
                directory += "/" + part
                mkdir(root + directory, 0o755)
            }
            let fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { fail("creating \(target)", errno) }
            close(fd)
            guard mount(file, target, nil, UInt(MS_BIND), nil) == 0 else { fail("binding \(file)", errno) }
            guard mount("", target, nil, UInt(MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC), nil) == 0 else {
                fail("making \(file) read-only", errno)
            }
            if file.hasPrefix("/usr/share/zoneinfo/") {
                mkdir(root + "/etc", 0o755)
                symlink(file, root + "/etc/localtime")
            }
        }
        mkdir(root + "/.old", 0o700)
        let pivoted = csystem_pivot_root(root, root + "/.old")
        if pivoted != 0 { fail("pivot_root", -pivoted) }
        guard chdir("/") == 0 else { fail("chdir /", errno) }
        guard umount2("/.old", Int32(MNT_DETACH)) == 0 else { fail("unmounting the host's root", errno) }
        rmdir("/.old")
        guard mount("", "/", nil, UInt(MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC), nil) == 0 else {
            fail("making the jail's root read-only", errno)
        }
        let dropped = csystem_drop_privileges(options.uid, options.gid)
        if dropped != 0 { fail("dropping to \(options.uid):\(options.gid)", -dropped) }
    }
}

