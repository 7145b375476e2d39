import Container
import Glibc
import Host
import SkiffKit

/// The OCI runtime's ready guest: booted once per machine shape, saved while
/// init waits at `ready` with no root mounted, and restored by every later
/// `create` with that container's disk behind vda. A bundle's root is a new
/// directory each time (podman's overlay mount), so unlike `skiff run`'s
/// per-image snapshots this one must not know its disk: the guest mounts its
/// root only after the hand-over ("attach=handover"), once the disk's new
/// size shows (the restore announces it as a configuration change).
///
/// The snapshots live in the cache (`$SKIFF_CACHE_DIR/oci-ready/KEY`), keyed
/// by everything that shapes the guest but the disk (`RunSnapshots.machineKeyLines`).
enum ReadyGuest {
    static func directory(for configuration: MachineConfiguration) -> String {
        RunSnapshots.bundleReadyGuests() + "/" + RunSnapshots.key(RunSnapshots.machineKeyLines(configuration))
    }

    /// The machine for `configuration` (a cold boot's, its disk the
    /// container's): restored from the ready guest when there is one, else
    /// booted with a request to save one at ready. A snapshot that cannot be
    /// used is removed and replaced by this boot's. The runtime log says
    /// which, for container `id`.
    static func machine(_ configuration: MachineConfiguration, logger: Logger,
                        id: String, log: RuntimeLog) throws(MachineError) -> Machine {
        let directory = directory(for: configuration)
        if access(directory + "/" + SnapshotFiles.stateName, F_OK) == 0 {
            do {
                let snapshot = try SnapshotFiles.load(directory, on: configuration.host)
                var overrides = configuration.disks.first.map { ["vda=\($0.path)"] } ?? []
                if let vsock = configuration.vsock { overrides.append("vsock=\(vsock.path)") }
                var restoring = try MachineConfiguration.restoring(snapshot, overrides: overrides)
                restoring.adoptRunSettings(of: configuration)
                let machine = try Machine(restoring, logger: logger)
                log.info("container \(id): restored the ready guest (\(directory))")
                return machine
            } catch .snapshot(let problem) {
                log.warning("the ready guest \(directory) cannot be used (\(problem)); booting and saving a new one")
                SnapshotFiles.removeTree(directory)
            }
        }
        var booting = configuration
        // The ready guests no create can restore any more go first, as `skiff run`'s do.
        booting.snapshot = RunSnapshots.readyGuestRequest(savingTo: directory, for: configuration) { path in
            log.info("removed the ready guest \(path): no create can restore it")
        }
        let machine = try Machine(booting, logger: logger)
        log.info("container \(id): booted\(booting.snapshot == nil ? "" : "; saving the ready guest") (\(directory))")
        return machine
    }
}
