import SkiffKit
import Devices
import Glibc
import Images

/// `skiff run`: image → cached root disk → run spec → microVM → exit status.
/// Every phase is stamped on the host clock so that `--timings` and
/// `skiff bench` can show where the time went.
public enum ContainerRunner {
    /// What a run did, phase by phase.
    public struct Report: Sendable {
        /// The container's exit status (nil when the guest never reported one).
        public let exitStatus: Int?
        public let machine: MachineReport
        public let rootDisk: ImageStore.RootDisk
        public let imageID: String
        /// Host CLOCK_MONOTONIC ns: image opened (index, manifest, config read
        /// and checked), root disk ready (built or found in the cache).
        public let imageOpened: UInt64
        public let diskReady: UInt64
        /// How the guest started: restored from the image's ready snapshot,
        /// booted and snapshotted at ready for later runs, or booted only.
        public let start: GuestStart
    }

    public enum GuestStart: String, Sendable, Codable {
        case restored, bootedAndSnapshotted = "booted, snapshot saved", booted
    }

    /// Runs `image` with `options` in a machine configured by `base` (memory,
    /// CPUs, extra disks, networks, timeout, compatibility profile). The
    /// image's disk becomes vda; `base`'s disks follow it.
    /// `snapshots`: restore the image's ready guest if there is one, else
    /// boot and save one at ready for the next run; false boots every time.
    public static func run(image: String, options: ContainerSpec.Options, base: MachineConfiguration,
                           store: ImageStore = .standard(), logger: Logger, snapshots: Bool = true,
                           startedAt start: UInt64 = MonotonicClock.now()) throws(MachineError) -> Report {
        let source: ImageSource
        do { source = try ImageSource.open(try ImageReference(parsing: image)) } catch { throw .image(error) }
        let imageOpened = MonotonicClock.now()
        logger.debug("image opened", metadata: ["id": "\(source.id)", "layers": "\(source.layerCount)"])

        let disk = try store.rootDisk(for: source)
        let diskReady = MonotonicClock.now()
        if disk.built {
            logger.debug("root disk built", metadata: [
                "path": "\(disk.path)", "unpack_s": "\(disk.entry.unpackSeconds)", "mkfs_s": "\(disk.entry.diskSeconds)"])
        }

        let spec: ContainerSpec
        do {
            spec = try ContainerSpec.resolve(source.configuration.config ?? .init(), options: options, users: disk.entry.users,
                                             hostEnvironment: processEnvironment(), defaultHostname: randomHostname())
        } catch {
            throw .image(error)
        }

        var configuration = base
        configuration.disks = [DiskConfiguration(path: disk.path, readOnly: true)] + base.disks
        configuration.console = .capture
        configuration.initrdAppendix = GuestRunSpec.initramfsAppendix(GuestRunSpec.preparation(rootDevice: "/dev/vda"))
        configuration.handoverPayload = GuestRunSpec.encode(spec, rootDevice: "/dev/vda", terminalSize: terminalSize())
        configuration.containerLines = ContainerLines(input: spec.terminal ? .terminal : spec.interactive ? .framed : .none)

        func report(_ machine: MachineReport, _ how: GuestStart) -> Report {
            Report(exitStatus: machine.workloadExitStatus, machine: machine, rootDisk: disk, imageID: source.id,
                   imageOpened: imageOpened, diskReady: diskReady, start: how)
        }
        guard snapshots else {
            return report(try Machine(configuration, logger: logger).run(startedAt: start), .booted)
        }
        let entryDirectory = String(disk.path.dropLast("/rootfs.ext4".count))
        let directory = RunSnapshots.directory(for: configuration, imageID: source.id, entryDirectory: entryDirectory)
        if access(directory + "/" + SnapshotFiles.stateName, F_OK) == 0 {
            do {
                let snapshot = try SnapshotFiles.load(directory, on: configuration.host)
                var restoring = try MachineConfiguration.restoring(snapshot)
                restoring.adoptRunSettings(of: configuration)
                return report(try Machine(restoring, logger: logger).run(startedAt: start), .restored)
            } catch .snapshot(let problem) {
                // Refused before anything ran: replace it with a fresh boot's.
                logger.warning("the image's ready snapshot cannot be used (\(problem)); booting and taking a new one")
                SnapshotFiles.removeTree(directory)
            }
        }
        // A jailed VMM cannot write into the image store (its root is
        // read-only): it boots without saving; an unjailed run saves one.
        if configuration.jail != nil {
            return report(try Machine(configuration, logger: logger).run(startedAt: start), .booted)
        }
        // The image's snapshots that no run can restore any more go first.
        configuration.snapshot = RunSnapshots.readyGuestRequest(savingTo: directory, for: configuration) { path in
            logger.debug("removed a snapshot no run can restore", metadata: ["snapshot": "\(path)"])
        }
        let machine = try Machine(configuration, logger: logger).run(startedAt: start)
        return report(machine, machine.snapshot?.written == true ? .bootedAndSnapshotted : .booted)
    }

    /// Twelve hex digits, like a docker container's short ID.
    static func randomHostname() -> String {
        var generator = SystemRandomNumberGenerator()
        let value = generator.next() & 0xFFFF_FFFF_FFFF
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 12 - hex.count) + hex
    }

    /// The host terminal's size, for `-t`.
    static func terminalSize() -> (rows: Int, columns: Int)? {
        var size = winsize()
        for fd in [STDOUT_FILENO, STDIN_FILENO] where ioctl(fd, UInt(TIOCGWINSZ), &size) == 0 && size.ws_row > 0 {
            return (Int(size.ws_row), Int(size.ws_col))
        }
        return nil
    }
}
