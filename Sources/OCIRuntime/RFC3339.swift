import Glibc
import Host

/// A UTC time as RFC 3339 text, as runc writes it: `2026-12-01T05:30:12Z`
/// in log lines, and with nanoseconds (trailing zeros dropped, as Go's
/// RFC3339Nano does) for a container's `created`.
func rfc3339(_ time: timespec, nanoseconds: Bool = false) -> String {
    var seconds = time.tv_sec
    var parts = tm()
    gmtime_r(&seconds, &parts)
    func padded(_ value: Int32, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
    var text = padded(parts.tm_year + 1900, 4) + "-" + padded(parts.tm_mon + 1, 2) + "-" + padded(parts.tm_mday, 2)
        + "T" + padded(parts.tm_hour, 2) + ":" + padded(parts.tm_min, 2) + ":" + padded(parts.tm_sec, 2)
    if nanoseconds, time.tv_nsec > 0 {
        var fraction = padded(Int32(time.tv_nsec), 9)
        while fraction.hasSuffix("0") { fraction.removeLast() }
        text += "." + fraction
    }
    return text + "Z"
}

func rfc3339Now(nanoseconds: Bool = false) -> String {
    rfc3339(WallClock.now(), nanoseconds: nanoseconds)
}
