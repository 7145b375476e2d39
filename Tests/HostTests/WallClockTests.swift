import Glibc
import Host
import Testing

/// WallClock is the calendar clock (what `time(2)` reads), not the monotonic
/// one the phases are timed with: dates written with it must be dates.
@Suite struct WallClockTests {
    @Test func readsTheCalendarClock() {
        let before = time(nil)
        let now = WallClock.now()
        let after = time(nil)
        #expect(now.tv_sec >= before && now.tv_sec <= after)
        #expect(now.tv_nsec >= 0 && now.tv_nsec < 1_000_000_000)
        // After 2020-01-01: a monotonic clock counts from boot instead.
        #expect(now.tv_sec > 1_577_836_800)
    }
}
