import SkiffKit
import Glibc
import Synchronization
import Host

/// A process `skiff bench` starts and times: spawned with Host's `spawnProcess`, its
/// stdout read by a thread that stamps the first byte on the host clock.
final class ChildProcess: Sendable {
    let pid: pid_t
    /// CLOCK_MONOTONIC ns just before the spawn.
    let spawned: UInt64
    private let output = Mutex<(first: UInt64?, data: [UInt8], closed: Bool)>((nil, [], false))

    /// `stdoutPipe`: capture stdout (else /dev/null). stderr goes to `stderr` (else /dev/null).
    init(_ arguments: [String], captureOutput: Bool = true, stderr: Int32? = nil) throws(MachineError) {
        var fds: [Int32] = [-1, -1]
        if captureOutput {
            // The child gets the write end as its fd 1 only.
            do { (fds[0], fds[1]) = try makePipe() } catch { throw MachineError(error) }
        }
        let descriptors: [(child: Int32, ChildDescriptor)] = [
            (STDIN_FILENO, .null),
            (STDOUT_FILENO, captureOutput ? .descriptor(fds[1]) : .null),
            (STDERR_FILENO, stderr.map { .descriptor($0) } ?? .null),
        ]
        spawned = MonotonicClock.now()
        let pid: pid_t
        do { pid = try spawnProcess(arguments, descriptors: descriptors) } catch {
            if captureOutput { close(fds[0]); close(fds[1]) }
            throw MachineError(error)
        }
        if captureOutput { close(fds[1]) }
        self.pid = pid
        guard captureOutput else { output.withLock { $0.closed = true }; return }
        let readEnd = fds[0]
        let reader = try NativeThread.start { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = buffer.withUnsafeMutableBytes { space in retryingInterrupts { read(readEnd, space.baseAddress!, space.count) } }
                let now = MonotonicClock.now()
                output.withLock { state in
                    if count > 0 {
                        if state.first == nil { state.first = now }
                        state.data += buffer[0..<count]
                    } else {
                        state.closed = true
                    }
                }
                if count <= 0 { close(readEnd); return }
            }
        }
        reader.detach()
    }

    var firstOutput: UInt64? { output.withLock { $0.first } }
    var text: String { String(decoding: output.withLock { $0.data }, as: UTF8.self) }

    /// Waits until stdout holds `needle` (true), or it closes or `seconds` pass (false).
    func waitForOutput(_ needle: String, seconds: Double) -> Bool {
        let deadline = MonotonicClock.now() + UInt64(seconds * 1e9)
        while MonotonicClock.now() < deadline {
            let (text, closed) = output.withLock { (String(decoding: $0.data, as: UTF8.self), $0.closed) }
            if text.contains(needle) { return true }
            if closed { return false }
            usleep(5000)
        }
        return false
    }

    /// Waits for `pid` (a child, or an orphan adopted as subreaper); returns the
    /// shell-style status and when the wait returned.
    static func wait(_ pid: pid_t) -> (status: Int32, time: UInt64) {
        let status = waitForChild(pid) ?? -1
        return (status, MonotonicClock.now())
    }

    func wait() -> (status: Int32, time: UInt64) { Self.wait(pid) }

    /// Waits until stdout has closed (all writers gone), at most `seconds`.
    func waitForEndOfOutput(seconds: Double) {
        let deadline = MonotonicClock.now() + UInt64(seconds * 1e9)
        while !output.withLock({ $0.closed }) && MonotonicClock.now() < deadline { usleep(1000) }
    }
}
