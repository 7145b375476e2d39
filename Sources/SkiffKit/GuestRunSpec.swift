import Boot
import Images

/// The `skiff run` spec as the guest init reads it (guest/init/run_spec.h):
/// NUL-terminated `key=value` records in a file the VMM appends to the
/// initramfs. Any byte but NUL passes unquoted, so arguments and environment
/// values arrive exactly as given.
public enum GuestRunSpec {
    public static let path = "/skiff/run-spec"

    public static func encode(_ spec: ContainerSpec, rootDevice: String,
                              terminalSize: (rows: Int, columns: Int)? = nil) -> [UInt8] {
        var records = ["skiff-run-spec=1", "root=\(rootDevice)"]
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
        return records.flatMap { Array($0.utf8) + [0] }
    }

    /// A cpio archive holding the spec, to append to the guest's initrd.
    public static func initramfsAppendix(_ spec: ContainerSpec, rootDevice: String,
                                         terminalSize: (rows: Int, columns: Int)? = nil) -> [UInt8] {
        var archive = InitramfsArchive()
        archive.directory("/skiff", mode: 0o700)
        archive.file(path, encode(spec, rootDevice: rootDevice, terminalSize: terminalSize), mode: 0o600)
        return archive.finished()
    }
}
