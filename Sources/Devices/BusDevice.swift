/// A device on the port I/O bus or the MMIO bus. `offset` is relative to the
/// start of the range the device was attached at; `data` is 1, 2, 4 or 8 bytes.
/// Called from vCPU threads, possibly several at once: implementations lock.
public protocol BusDevice: AnyObject, Sendable {
    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer)
    func write(offset: UInt64, from data: UnsafeRawBufferPointer)
}
