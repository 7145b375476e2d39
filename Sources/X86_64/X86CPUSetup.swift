import Hypervisor

/// Puts an x86_64 vCPU into the state the Linux 64-bit boot protocol expects
/// (X86Platform calls it; an aarch64 platform would have its own).
public enum X86CPUSetup {
    static let msrMiscEnable: UInt32 = 0x1A0
    static let msrMTRRDefaultType: UInt32 = 0x2FF
    static let lapicLINT0 = 0x350
    static let lapicLINT1 = 0x360
    static let deliveryExtINT: UInt32 = 0x7
    static let deliveryNMI: UInt32 = 0x4

    static let kvmFeatureLeaf: UInt32 = 0x4000_0001

    /// CPU features a machine can hide from its guest (`--hide-cpu-feature`),
    /// as (CPUID leaf, register, bit): RDRAND and RDSEED, so that a test can
    /// show the guest's randomness comes from what Skiff gives it. A list in
    /// name order, not a dictionary: every start validates against it, and a
    /// dictionary's first use instantiated its metadata and sorted its keys
    /// (33 µs of each `skiff boot`, perf over 300 starts).
    public static let hideableFeatures: [(name: String, leaf: UInt32, inECX: Bool, bit: UInt32)] = [
        ("rdrand", 1, true, 30),   // CPUID.1:ECX.RDRAND
        ("rdseed", 7, false, 18),  // CPUID.(7,0):EBX.RDSEED
    ]

    /// CPUID for vCPU `id` of `count`: the host's supported leaves with this
    /// CPU's APIC id, the hypervisor bit and the logical CPU count, less the
    /// KVM paravirtual features in `hiddenKVMFeatures`.
    public static func cpuid(_ supported: [CPUIDEntry], vcpu id: Int, of count: Int, hiddenKVMFeatures: UInt32 = 0,
                      hiddenFeatures: [String] = []) -> [CPUIDEntry] {
        supported.map { entry in
            var entry = entry
            for name in hiddenFeatures {
                guard let feature = hideableFeatures.first(where: { $0.name == name }), feature.leaf == entry.function, entry.index == 0 else { continue }
                if feature.inECX { entry.ecx &= ~(1 << feature.bit) } else { entry.ebx &= ~(1 << feature.bit) }
            }
            switch entry.function {
            case 1:
                entry.ebx = entry.ebx & 0x0000_FFFF | UInt32(id) << 24 | UInt32(min(count, 255)) << 16
                entry.ecx |= 1 << 31 // running on a hypervisor
                entry.edx |= 1 << 28 // HTT: the logical-count field is valid
            case 0xB, 0x1F:
                entry.edx = UInt32(id) // x2APIC id
            case kvmFeatureLeaf:
                entry.eax &= ~hiddenKVMFeatures
            default:
                break
            }
            return entry
        }
    }

    /// State every vCPU needs: CPUID, MSRs, FPU and LAPIC wiring.
    public static func configure(_ vcpu: any X86VirtualCPU, cpuid: [CPUIDEntry]) throws(HypervisorError) {
        try vcpu.setCPUID(cpuid)
        try vcpu.setMSRs([
            (msrMiscEnable, 1),                 // fast strings
            (msrMTRRDefaultType, 1 << 11 | 6),  // MTRRs on, write-back by default
        ])
        try vcpu.setFPU(FPUState())
        try vcpu.updateLocalAPIC { page in
            func setDelivery(_ offset: Int, _ mode: UInt32) {
                var value = UInt32(page[offset]) | UInt32(page[offset + 1]) << 8
                    | UInt32(page[offset + 2]) << 16 | UInt32(page[offset + 3]) << 24
                value = value & ~0x700 | mode << 8
                for index in 0..<4 { page[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
            }
            setDelivery(lapicLINT0, deliveryExtINT) // the PIC's interrupts arrive on LINT0
            setDelivery(lapicLINT1, deliveryNMI)
        }
    }

    /// Registers of the bootstrap processor at the kernel's 64-bit entry.
    public static func enterLongMode(_ vcpu: any X86VirtualCPU, _ state: X86BootState) throws(HypervisorError) {
        var sregs = try vcpu.specialRegisters()
        func segment(_ descriptor: GDT.Descriptor, _ selector: UInt16) -> Segment {
            Segment(base: UInt64(descriptor.base), limit: descriptor.byteLimit, selector: selector,
                    type: descriptor.type, present: descriptor.present, dpl: descriptor.dpl,
                    db: descriptor.defaultSize, s: !descriptor.system, l: descriptor.long, g: descriptor.granularity)
        }
        let code = segment(GDT.code, GDT.codeSelector)
        let data = segment(GDT.data, GDT.dataSelector)
        sregs.cs = code
        sregs.ds = data; sregs.es = data; sregs.fs = data; sregs.gs = data; sregs.ss = data
        sregs.tr = segment(GDT.tss, GDT.tssSelector)
        sregs.gdt = DescriptorTable(base: state.gdt.base, limit: state.gdt.limit)
        sregs.idt = DescriptorTable(base: state.idt.base, limit: state.idt.limit)
        sregs.cr3 = state.pageTableRoot
        sregs.cr4 = 0x20                    // PAE
        sregs.cr0 = 0x8005_0033             // PG, WP, NE, ET, MP, PE
        sregs.efer = 0x500                  // LMA, LME
        try vcpu.setSpecialRegisters(sregs)

        var registers = Registers()
        registers.rip = state.instructionPointer
        registers.rsi = state.bootParams
        registers.rsp = state.stackPointer
        registers.rbp = state.stackPointer
        registers.rflags = 0x2
        try vcpu.setRegisters(registers)
    }
}
