import Glibc
import SkiffCLI
import SkiffKit

/// Process start for `--timings`: the parent's CLOCK_MONOTONIC at spawn when it
/// hands one over in SKIFF_SPAWNED_AT (benchmarks do, so that what the loader
/// and runtime cost before `main` counts), else now.
skiffStartTime = {
    let now = MonotonicClock.now()
    guard let text = getenv("SKIFF_SPAWNED_AT").map({ String(cString: $0) }), let spawned = UInt64(text),
          spawned <= now, now - spawned < 60_000_000_000 else { return now }
    return spawned
}()
ShutdownSignals.install()
Skiff.main()
