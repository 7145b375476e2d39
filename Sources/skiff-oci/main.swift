import CProcessStart
import Glibc
import OCIRuntime
import SkiffKit

// `skiff-oci`: Skiff as an OCI runtime (runc's command line), for podman
// (`--runtime`), containerd's runc shim, or by hand.
// The environment as given (CProcessStart added a setting for the runtime's start).
cprocessstart_restore_environment()
// Before any thread: malloc's parameters (MallocPolicy says why).
MallocPolicy.apply()
let line: RuntimeCommandLine
do {
    line = try RuntimeCommandLine(parsing: Array(CommandLine.arguments.dropFirst()))
} catch {
    RuntimeLog(path: nil, format: "text").error("\(error)")
    exit(1)
}
exit(RuntimeCommands.run(line, executable: RuntimeCommands.ownExecutable()))
