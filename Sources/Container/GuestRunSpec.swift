import SkiffKit
import Platform
import Images

/// A file or directory written into the container's root before its
/// process starts (an OCI bundle's bind mounts, copied).
public struct GuestFile: Sendable, Equatable {
    /// Absolute, in the container.
    public var path: String
    /// Permission bits.
    public var mode: UInt32
    /// The contents; nil for a directory.
    public var bytes: [UInt8]?

    public init(path: String, mode: UInt32, bytes: [UInt8]?) {
        self.path = path; self.mode = mode; self.bytes = bytes
    }
}

/// The `skiff run` spec as the guest init reads it (guest/init/run_spec.h):
/// NUL-terminated `key=value` records in a file the VMM appends to the
/// initramfs. Any byte but NUL passes unquoted, so arguments and environment
/// values arrive exactly as given.
public enum GuestRunSpec {
    public static let path = "/skiff/run-spec"

    /// `files`: written into the container's root before the process starts
    /// (an OCI bundle's bind mounts, copied), in order, as `file=MODE:HEX:PATH`
    /// and `dir=MODE:PATH` records (guest/init/run_spec.h allows 256).
    /// `rootSize`: the root disk's size in bytes, for a guest that attaches
    /// it at the hand-over (it waits until the device shows that size).
    public static func encode(_ spec: ContainerSpec, rootDevice: String, rootSize: UInt64? = nil,
                              terminalSize: (rows: Int, columns: Int)? = nil,
                              files: [GuestFile] = []) -> [UInt8] {
        var records = ["skiff-run-spec=1", "root=\(rootDevice)"]
        if let rootSize { records.append("root-size=\(rootSize)") }
        records += spec.arguments.map { "arg=\($0)" }
        records += spec.environment.map { "env=\($0)" }
        records += [
            "cwd=\(spec.workingDirectory)", "hostname=\(spec.hostname)",
            "uid=\(spec.identity.uid)", "gid=\(spec.identity.gid)",
        ]
        records += spec.identity.groups.map { "group=\($0)" }
        records += ["tty=\(spec.terminal ? 1 : 0)", "interactive=\(spec.interactive ? 1 : 0)"]
        if let terminalSize, spec.terminal {
            records += ["rows=\(min(max(terminalSize.rows, 0), 0xFFFF))", "columns=\(min(max(terminalSize.columns, 0), 0xFFFF))"]
        }
        for file in files {
            let mode = String(file.mode & 0o7777, radix: 8)
            guard let bytes = file.bytes else {
                records.append("dir=\(mode):\(file.path)")
                continue
            }
            records.append("file=\(mode):" + lowercaseHex(bytes) + ":\(file.path)")
        }
        return records.flatMap { Array($0.utf8) + [0] }
    }

    /// What the container's root is, and nothing of the run: the part of the
    /// spec a boot that is snapshotted at `ready` may know (the rest comes in
    /// the hand-over, so that every restore can differ).
    /// `attachedAtHandover`: the disk behind `rootDevice` is only known at
    /// the hand-over (the OCI runtime's ready guest serves every bundle), so
    /// the guest mounts nothing before it.
    public static func preparation(rootDevice: String, attachedAtHandover: Bool = false) -> [UInt8] {
        (["skiff-prepare=1", "root=\(rootDevice)"] + (attachedAtHandover ? ["attach=handover"] : []))
            .flatMap { Array($0.utf8) + [0] }
    }

    /// A cpio archive holding the spec, to append to the guest's initrd.
    public static func initramfsAppendix(_ records: [UInt8]) -> [UInt8] {
        var archive = InitramfsArchive()
        archive.directory("/skiff", mode: 0o700)
        archive.file(path, records, mode: 0o600)
        return archive.finished()
    }
}

/// Hand-over payloads (`HandoverMailbox`) as guest/init/handover.c reads them:
/// NUL-terminated `key=value` records like the run spec's.
public enum GuestHandover {
    /// `skiff restore DIR [--hostname NAME] -- COMMAND...`: the command Skiff's
    /// init runs in place of the one on the kernel command line, and the
    /// clone's own hostname. Empty when there is neither.
    public static func command(_ arguments: [String], hostname: String? = nil) -> [UInt8] {
        guard !arguments.isEmpty || hostname != nil else { return [] }
        let records = ["skiff-command=1"] + arguments.map { "arg=\($0)" } + (hostname.map { ["hostname=\($0)"] } ?? [])
        return records.flatMap { Array($0.utf8) + [0] }
    }
}
