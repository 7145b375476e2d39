// libFuzzer target: a hostile virtio driver. The input is guest memory (the
// first 16 KiB: rings, descriptors, buffers) followed by a program of
// register reads and writes, queue notifications and host-side frames,
// run against the virtio-mmio transport with a block, network, entropy or
// vsock device behind it. Whatever the driver does, the VMM must neither trap nor
// touch memory outside the guest's; it may only report and refuse.
import Devices
import Glibc
import Memory

let memorySize = 64 << 10
let ramPrefix = 16 << 10
nonisolated(unsafe) let memory = try! GuestMemory(layout: [(0, memorySize)])

/// A 64 KiB disk in a scratch file (virtio-blk reads and writes it).
let disk: DiskImage = {
    var template = Array("/tmp/skiff-fuzz-disk-XXXXXX".utf8CString)
    let fd = mkstemp(&template)
    ftruncate(fd, 64 << 10)
    close(fd)
    let path = String(cString: template)
    let image = try! DiskImage(path: path, readOnly: false)
    unlink(path)
    return image
}()

/// The vsock device's host side: a listener in a scratch directory, kept
/// across inputs (each input starts with no connections); the directory goes
/// when the fuzzer exits.
let vsockDirectory: String = {
    var template = Array("/tmp/skiff-fuzz-vsock-XXXXXX".utf8CString)
    return String(cString: mkdtemp(&template)!)
}()
let vsockBackend: VsockUnixBackend = {
    let path = vsockDirectory + "/v.sock"
    atexit {
        unlink(vsockDirectory + "/v.sock")
        rmdir(vsockDirectory)
    }
    return try! VsockUnixBackend(listener: try! VsockUnixBackend.listen(at: path), path: path, guestCID: 3)
}()

struct NoInterrupt: InterruptTrigger { func trigger() {} }

/// Frames from the input for the network device; whatever the device sends is dropped.
final class FuzzEndpoint: PacketEndpoint, @unchecked Sendable {
    var frames: [[UInt8]] = []
    func receive(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard !frames.isEmpty else { return nil }
        let frame = frames.removeFirst()
        let count = min(frame.count, buffer.count)
        frame.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0.prefix(count))) }
        return count
    }
    func send(_ frame: UnsafeRawBufferPointer) -> Bool { true }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    guard size > 1 else { return 0 }
    // Guest memory: zeroed, then the first part of the input.
    let ram = input.dropFirst().prefix(ramPrefix)
    try! memory.write(bytes: [UInt8](repeating: 0, count: memorySize), at: 0)
    try! memory.write(bytes: Array(ram), at: 0)
    var program = input.dropFirst(1 + ram.count)[...]

    let endpoint = FuzzEndpoint()
    let device: any VirtioDevice
    switch input[0] % 4 {
    case 0: device = VirtioBlock(disk: disk)
    case 1: device = VirtioNetwork(endpoint: endpoint, mac: MACAddress(derivedFrom: "fuzz"))
    case 3:
        vsockBackend.dropAll()
        device = VirtioVsock(guestCID: 3, backend: vsockBackend)
    default: device = VirtioEntropy { buffer in
        for index in buffer.indices { buffer[index] = UInt8(truncatingIfNeeded: index) }
        return true
    }
    }
    let transport = VirtioMMIOTransport(name: "fuzz", device: device, memory: memory, interrupt: NoInterrupt())

    // Each step: an opcode byte, a register byte, four value bytes.
    while program.count >= 6 {
        let step = Array(program.prefix(6))
        program = program.dropFirst(6)
        let register = UInt64(step[1]) & 0xFC | (step[0] & 0x80 != 0 ? UInt64(step[1] & 3) : 0) // unaligned now and then
        let value = UInt32(step[2]) | UInt32(step[3]) << 8 | UInt32(step[4]) << 16 | UInt32(step[5]) << 24
        let offset = step[0] & 0x40 != 0 ? 0x100 + register : register // config space too
        let width = [1, 2, 4, 8][Int(step[0] >> 4) & 3]
        switch step[0] & 0x0F {
        case 0...5:
            var bytes = [UInt8](repeating: 0, count: width)
            withUnsafeBytes(of: value.littleEndian) { source in
                for index in 0..<min(width, 4) { bytes[index] = source[index] }
            }
            bytes.withUnsafeBytes { transport.write(offset: offset, from: $0) }
        case 6...9:
            var bytes = [UInt8](repeating: 0, count: width)
            bytes.withUnsafeMutableBytes { transport.read(offset: offset, into: $0) }
        case 10, 11:
            transport.notify(queue: Int(step[1] & 3))
        case 12:
            endpoint.frames.append(Array(program.prefix(Int(step[2]))))
            transport.backendReady()
        default:
            // The guest rewrites a word of its memory between steps (rings change under the device).
            let address = UInt64(value % UInt32(memorySize - 4))
            try? memory.write(bytes: [step[1], step[2], step[3], step[4]], at: address)
        }
    }
    _ = transport.saveState()
    return 0
}
