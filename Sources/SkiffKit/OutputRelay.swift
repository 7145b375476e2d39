import Glibc
import Synchronization
import Host

/// Bytes a device emits (the serial console, a container's stdout and
/// stderr), written to their host file descriptor from the event loop. A vCPU
/// only appends to a buffer (and signals the loop when the buffer was empty),
/// so a slow terminal or a full pipe does not stall the guest, and a burst of
/// output is one write(2), not one per byte. Past `limit` unwritten bytes the
/// vCPU writes them itself: memory stays bounded and a reader that never
/// reads slows the guest down instead of growing skiff.
final class OutputRelay: Sendable {
    static let limit = 1 << 20

    let fd: Int32
    private let pending = Mutex<[UInt8]>([])
    /// Held across taking and writing a batch, so batches reach `fd` in order.
    private let writing = Mutex(())
    private let wake: EventFD

    init(fd: Int32, loop: EventLoop) throws(MachineError) {
        self.fd = fd
        wake = try EventFD.make()
        let wake = self.wake
        do {
            try loop.register(wake.fd) { [weak self] in
                wake.drain()
                self?.flush()
            }
        } catch {
            throw MachineError(error)
        }
    }

    /// Called on a vCPU thread for each byte the device emits.
    func append(_ byte: UInt8) {
        let (wasEmpty, full) = pending.withLock { buffer -> (Bool, Bool) in
            let wasEmpty = buffer.isEmpty
            buffer.append(byte)
            return (wasEmpty, buffer.count >= Self.limit)
        }
        if full {
            flush()
        } else if wasEmpty {
            wake.signal()
        }
    }

    /// Writes everything appended so far (the loop does; so does the machine
    /// once more after the loop stopped).
    func flush() {
        writing.withLock { _ in
            let batch = pending.withLock { buffer -> [UInt8] in
                defer { buffer.removeAll(keepingCapacity: true) }
                return buffer
            }
            // If the reader went away, what is left is lost, as with a closed pipe.
            _ = batch.withUnsafeBytes { writeAll(fd, $0) }
        }
    }
}
