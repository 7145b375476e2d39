import Glibc
import Images
import Logging

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
    }

    /// Runs `image` with `options` in a machine configured by `base` (memory,
    /// CPUs, extra disks, networks, timeout, compatibility profile). The
    /// image's disk becomes vda; `base`'s disks follow it.
    public static func run(image: String, options: ContainerSpec.Options, base: MachineConfiguration,
                           store: ImageStore = .standard(), logger: Logger,
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
        configuration.initrdAppendix = GuestRunSpec.initramfsAppendix(spec, rootDevice: "/dev/vda", terminalSize: terminalSize())
        configuration.containerLines = ContainerLines(input: spec.terminal ? .terminal : spec.interactive ? .framed : .none)

        let report = try Machine(configuration, logger: logger).run(startedAt: start)
        return Report(exitStatus: report.workloadExitStatus, machine: report, rootDisk: disk, imageID: source.id,
                      imageOpened: imageOpened, diskReady: diskReady)
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
