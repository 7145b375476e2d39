import Glibc

/// CLOCK_REALTIME, for what is dated rather than timed: records' creation
/// times, OCI state timestamps, the guest's clock at a hand-over, a cache
/// stamp's age. Durations use SkiffKit's MonotonicClock instead.
public enum WallClock {
    public static func now() -> timespec {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return time
    }
}
