import CProcessStart
import SkiffCLI
import SkiffKit

// Nothing else here: top-level code runs on the main actor, and the checks
// that isolation costs would link Swift's concurrency runtime and Dispatch.
// The environment as the user gave it (CProcessStart added the Swift
// runtime's backtracer setting for its start only).
cprocessstart_restore_environment()
Skiff.prepareProcess()
ShutdownSignals.install()
Skiff.main()
