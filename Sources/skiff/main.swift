import SkiffCLI
import SkiffKit

// Nothing else here: top-level code runs on the main actor, and the checks
// that isolation costs would link Swift's concurrency runtime and Dispatch.
Skiff.prepareProcess()
ShutdownSignals.install()
Skiff.main()
