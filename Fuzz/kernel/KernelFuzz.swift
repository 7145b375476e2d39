// libFuzzer target: kernel images (vmlinux ELF and bzImage) as `skiff boot
// --kernel` reads them, headers parsed and segments loaded into 64 MiB of
// guest memory with an initrd and a command line. Any input must give a
// BootError or a load, never a trap or an access outside memory.
import X86_64
import Platform
import Memory
import Glibc

nonisolated(unsafe) let memory = try! GuestMemory(layout: [(0, 64 << 20)])

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let configuration = KernelImages(kernel: bytes, kernelPath: "fuzz", initrd: [1, 2, 3, 4], initrdPath: "initrd",
                                             commandLine: "console=ttyS0", cpuCount: 2)
    do { _ = try X86Boot.load(configuration, into: memory) } catch { if getenv("FUZZ_DEBUG") != nil { print(error) } }
    return 0
}
