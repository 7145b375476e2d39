import Devices
import Glibc
import Host
import Memory

/// A snapshot on disk: a directory holding `state` (SnapshotState's bytes)
/// and `memory` (guest RAM back to back, sparse where zero). Written into a
/// temporary directory beside its destination, synced, then renamed into
/// place, so that a reader finds either a complete pair or nothing.
public enum SnapshotFiles {
    public static let stateName = "state"
    public static let memoryName = "memory"

    /// A snapshot opened for restoring: its state checked, its memory file open.
    public final class Loaded: @unchecked Sendable {
        public let directory: String
        public let state: SnapshotState
        /// Read-only; mapped MAP_PRIVATE by the restore.
        let memoryFD: Int32

        init(directory: String, state: SnapshotState, memoryFD: Int32) {
            self.directory = directory; self.state = state; self.memoryFD = memoryFD
        }
        deinit { close(memoryFD) }

        /// Guest memory on the memory file: lazy, copy-on-write.
        func mapMemory() throws(MachineError) -> GuestMemory {
            do { return try GuestMemory(layout: state.memory.map { ($0.guestAddress, $0.size) }, mappingFile: memoryFD) } catch let error as GuestMemoryError {
                throw .memory(error)
            } catch {
                throw .snapshot(.invalid("\(error)"))
            }
        }
    }

    /// Opens and checks the snapshot in `directory` for a restore on `host`
    /// by a machine of `architecture` (the platform's name for it).
    public static func load(_ directory: String, on host: HostKind,
                            architecture: String = MachineConfiguration.architecture) throws(MachineError) -> Loaded {
        let statePath = directory + "/" + stateName
        let fd = open(statePath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else {
            let error = errno
            throw .snapshot(.invalid(error == ENOENT ? "\(directory) holds no snapshot (no '\(stateName)' file)" : "\(statePath): \(String(cString: strerror(error)))"))
        }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw .snapshot(.invalid("\(statePath) is not a regular file"))
        }
        guard info.st_size <= SnapshotState.maximumFileSize else {
            close(fd)
            throw .snapshot(.invalid("\(statePath) has \(info.st_size) bytes; a state file has at most \(SnapshotState.maximumFileSize)"))
        }
        let bytes = readToEnd(fd)
        close(fd)
        let state: SnapshotState
        do { state = try SnapshotState.decode(bytes, restoringOn: host, architecture: architecture) } catch { throw .snapshot(error) }

        let memoryPath = directory + "/" + memoryName
        let memoryFD = open(memoryPath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard memoryFD >= 0 else {
            throw .snapshot(.invalid("\(memoryPath): \(String(cString: strerror(errno)))"))
        }
        guard fstat(memoryFD, &info) == 0, info.st_mode & S_IFMT == S_IFREG, Int(info.st_size) == state.memorySize else {
            close(memoryFD)
            throw .snapshot(.invalid("\(memoryPath) is not a regular file of \(state.memorySize) bytes (the saved guest memory)"))
        }
        return Loaded(directory: directory, state: state, memoryFD: memoryFD)
    }

    /// Whether `directory` may receive a snapshot: absent, or an empty directory.
    public static func checkDestination(_ directory: String) throws(MachineError) {
        var info = stat()
        guard lstat(directory, &info) == 0 else {
            guard errno == ENOENT else { throw .invalidConfiguration("--snapshot-to \(directory): \(String(cString: strerror(errno)))") }
            let parent = directory.contains("/") ? String(directory[..<directory.lastIndex(of: "/")!]) : "."
            guard access(parent.isEmpty ? "/" : parent, W_OK) == 0 else {
                throw .invalidConfiguration("--snapshot-to \(directory): cannot write in \(parent.isEmpty ? "/" : parent)")
            }
            return
        }
        guard info.st_mode & S_IFMT == S_IFDIR, listDirectory(atPath: directory)?.isEmpty == true else {
            throw .invalidConfiguration("--snapshot-to \(directory) exists and is not an empty directory")
        }
    }

    /// Writes `state` and `memory` to `directory`. Returns whether it did
    /// (false: another process put a snapshot there first) and the memory
    /// bytes written (zero pages are holes).
    @discardableResult
    static func write(_ state: SnapshotState, memory: GuestMemory, to directory: String) throws(MachineError) -> (published: Bool, memoryBytes: Int) {
        var memoryBytes = 0
        let temporary = "\(directory).tmp-\(getpid())"
        removeTemporary(temporary)
        guard mkdir(temporary, 0o700) == 0 else { throw .system("mkdir \(temporary)", errno) }
        do {
            let memoryFD = open(temporary + "/" + memoryName, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard memoryFD >= 0 else { throw MachineError.system("create \(temporary)/\(memoryName)", errno) }
            defer { close(memoryFD) }
            do { memoryBytes = try memory.write(toFile: memoryFD) } catch { throw MachineError.invalidConfiguration("writing the snapshot's memory: \(error)") }
            let stateFD = open(temporary + "/" + stateName, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard stateFD >= 0 else { throw MachineError.system("create \(temporary)/\(stateName)", errno) }
            defer { close(stateFD) }
            let bytes = state.encoded()
            if let error = bytes.withUnsafeBytes({ writeAll(stateFD, $0) }) { throw MachineError.system("write \(temporary)/\(stateName)", error) }
            // Both files on disk before the name that publishes them.
            guard fsync(memoryFD) == 0, fsync(stateFD) == 0 else { throw MachineError.system("fsync", errno) }
        } catch let error as MachineError {
            removeTemporary(temporary)
            throw error
        } catch {
            removeTemporary(temporary)
            throw .invalidConfiguration("\(error)")
        }
        guard rename(temporary, directory) == 0 else {
            let error = errno
            removeTemporary(temporary)
            if error == EEXIST || error == ENOTEMPTY { return (false, memoryBytes) }
            throw .system("rename \(temporary) → \(directory)", error)
        }
        return (true, memoryBytes)
    }

    /// Removes the half-written snapshot `write` made (or a stale one of an
    /// earlier process with this PID): the two files only `write` puts there,
    /// then the directory. By name, not by listing it: `write` runs on the
    /// confined snapshot thread, and listing a directory (glibc's fdopendir)
    /// makes a call its list leaves out (fcntl F_GETFL). A directory that
    /// holds anything else stays.
    static func removeTemporary(_ temporary: String) {
        unlink(temporary + "/" + memoryName)
        unlink(temporary + "/" + stateName)
        rmdir(temporary)
    }

    /// Removes a snapshot directory (or a half-written one): its two files, then itself.
    public static func removeTree(_ directory: String) {
        for name in listDirectory(atPath: directory) ?? [] { unlink(directory + "/" + name) }
        rmdir(directory)
    }
}

extension MachineConfiguration {
    /// The machine a snapshot was taken of, to restore it: its memory, CPUs,
    /// compatibility profile and devices, with host backends replaced where
    /// `overrides` say (`vda=PATH`: another disk image, `eth0=TAP`: another
    /// TAP, `vsock=PATH`: another Unix socket for the vsock device), as
    /// Firecracker's network and vsock overrides do.
    public static func restoring(_ snapshot: SnapshotFiles.Loaded, overrides: [String] = []) throws(MachineError) -> MachineConfiguration {
        let saved = snapshot.state.machine
        var configuration = MachineConfiguration(kernelPath: snapshot.state.provenance["kernel"] ?? "", commandLine: "")
        configuration.restore = snapshot
        configuration.memoryMiB = saved.memoryMiB
        configuration.cpus = saved.cpus
        configuration.host = snapshot.state.hostKind
        guard let profile = CompatibilityProfile(rawValue: saved.compatibility) else {
            throw .snapshot(.mismatch("compatibility profile '\(saved.compatibility)' is unknown to this skiff"))
        }
        configuration.compatibility = profile
        configuration.disks = saved.disks
        configuration.networks = saved.networks.map { network in
            var configuration = NetworkConfiguration(tap: network.tap)
            configuration.mac = network.mac
            return configuration
        }
        configuration.entropyDevice = saved.entropyDevice
        configuration.hiddenCPUFeatures = saved.hiddenCPUFeatures
        configuration.vsock = saved.vsock
        for override in overrides {
            let parts = override.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[1].isEmpty else {
                throw .invalidConfiguration("--override \(override): expected vdX=PATH, ethN=TAP or vsock=PATH")
            }
            let (device, value) = (parts[0], parts[1])
            if device.hasPrefix("vd"), let index = configuration.disks.indices.first(where: { "vd" + VirtioDevices.driveLetter($0) == device }) {
                configuration.disks[index].path = value
            } else if device.hasPrefix("eth"), let index = Int(device.dropFirst(3)), configuration.networks.indices.contains(index) {
                configuration.networks[index].tap = value
            } else if device == "vsock", configuration.vsock != nil {
                configuration.vsock?.path = value
            } else {
                throw .invalidConfiguration("--override \(override): the snapshot has no \(device) (disks: \(configuration.disks.indices.map { "vd" + VirtioDevices.driveLetter($0) }.joined(separator: ", ")), networks: \(configuration.networks.indices.map { "eth\($0)" }.joined(separator: ", "))\(configuration.vsock == nil ? "" : ", vsock"))")
            }
        }
        return configuration
    }
}

extension MachineConfiguration {
    /// Takes from `run` (a cold boot's configuration for the same guest) what
    /// a restore of its saved guest must keep for this run: where the console
    /// and the container's lines go, the hand-over and any hold at ready, the
    /// timeout, and the confinement (seccomp, jail). The machine itself comes
    /// from the snapshot.
    public mutating func adoptRunSettings(of run: MachineConfiguration) {
        console = run.console
        containerLines = run.containerLines
        handoverPayload = run.handoverPayload
        holdAtReady = run.holdAtReady
        timeout = run.timeout
        seccomp = run.seccomp
        seccompStateFiles = run.seccompStateFiles
        seccompProbe = run.seccompProbe
        jail = run.jail
    }
}

/// The boot markers, by the name the CLI's users see.
public typealias BootMarkerPhase = BootMarkerDevice.Phase
