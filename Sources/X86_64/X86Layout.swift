/// Where Skiff puts things in guest physical memory when booting x86_64 Linux.
/// All of it lies in the first MiB except the kernel and the initrd.
public enum X86Layout {
    public static let gdt: UInt64 = 0x500
    public static let idt: UInt64 = 0x520
    /// The VMM's few-instruction stub that reports "first instruction" and jumps to the kernel.
    public static let trampoline: UInt64 = 0x6000
    /// boot_params, "the zero page".
    public static let zeroPage: UInt64 = 0x7000
    public static let stackTop: UInt64 = 0x8FF0
    public static let pml4: UInt64 = 0x9000
    public static let pdpt: UInt64 = 0xA000
    /// Up to four page directories: up to 4 GiB identity-mapped with 2 MiB pages.
    public static let pageDirectories: UInt64 = 0xB000
    public static let identityMappedGiB = 4
    public static let commandLine: UInt64 = 0x20000
    /// Linux's x86 COMMAND_LINE_SIZE, for kernels that do not say (vmlinux).
    public static let defaultCommandLineLimit = 2048
    /// Extended BIOS data area: Linux scans its first KiB for the MP table.
    public static let ebda: UInt64 = 0x9FC00
    public static let highMemory: UInt64 = 0x10_0000
    /// The hand-over mailbox: in the BIOS area the e820 map reserves (so
    /// Linux never allocates it), below 1 MiB (so /dev/mem reads it under
    /// STRICT_DEVMEM); guest/init/handover.h has the same address.
    public static let handoverMailbox: UInt64 = 0xE0000
    /// Where a bzImage goes when it does not say (its pref_address normally does).
    public static let defaultKernelAddress: UInt64 = 0x100_0000
    /// The MMIO hole below 4 GiB (the I/O APIC, the local APIC, the virtio
    /// windows): RAM that would lie there is relocated above 4 GiB.
    public static let mmioHoleStart: UInt64 = 0xC000_0000
    public static let mmioHoleEnd: UInt64 = 0x1_0000_0000
    public static let ioapicAddress: UInt32 = 0xFEC0_0000
    public static let localAPICAddress: UInt32 = 0xFEE0_0000
}
