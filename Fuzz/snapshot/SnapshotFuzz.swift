// libFuzzer target: snapshot state files, as `skiff restore` and `skiff run`
// read them from disk. The input is a state file without its checksum; the
// harness appends the right one (SHA-256), so the fuzzer reaches the
// sections behind it: META, CONF, the vCPUs' CPU identity (read by the
// platform, as a restore compares it) and state, and each device's saved
// state, which is then restored into a fresh device of its kind. Any input
// must give an error or a state, never a trap.
import Devices
import Hypervisor
import Memory
import SkiffKit

nonisolated(unsafe) let memory = try! GuestMemory(layout: [(0, 1 << 20)])
let platform = MachineConfiguration(kernelPath: "", commandLine: "").platform
/// What a restore compares each saved identity with (x86: a one-leaf CPUID table).
let oneLeaf = CPUIdentity(bytes: [UInt8](repeating: 0, count: 28))

struct NoInterrupt: InterruptTrigger { func trigger() {} }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = SnapshotState.sealed(Array(UnsafeBufferPointer(start: data, count: size)))
    for host in [HostKind.pvm, .hardware] {
        guard let state = try? SnapshotState.decode(bytes, restoringOn: host, architecture: MachineConfiguration.architecture) else { continue }
        for vcpu in state.vcpus {
            _ = platform.mismatch(of: vcpu.identity, here: oneLeaf)
            _ = platform.mismatch(of: oneLeaf, here: vcpu.identity)
        }
        for (_, saved) in state.devices {
            try? Serial16550(interrupt: DisconnectedInterruptLine()) { _ in }.restoreState(saved)
            try? BootMarkerDevice(clock: { 0 }).restoreState(saved)
            let transport = VirtioMMIOTransport(name: "fuzz", device: VirtioEntropy { _ in true }, memory: memory, interrupt: NoInterrupt())
            if (try? transport.restoreState(saved)) != nil { transport.resumeAfterRestore() }
        }
    }
    return 0
}
