/// General-purpose registers of an x86_64 vCPU.
public struct Registers: Sendable, Equatable {
    public var rax: UInt64 = 0, rbx: UInt64 = 0, rcx: UInt64 = 0, rdx: UInt64 = 0
    public var rsi: UInt64 = 0, rdi: UInt64 = 0, rsp: UInt64 = 0, rbp: UInt64 = 0
    public var r8: UInt64 = 0, r9: UInt64 = 0, r10: UInt64 = 0, r11: UInt64 = 0
    public var r12: UInt64 = 0, r13: UInt64 = 0, r14: UInt64 = 0, r15: UInt64 = 0
    public var rip: UInt64 = 0
    /// Bit 1 is reserved and always set.
    public var rflags: UInt64 = 0x2

    public init() {}
}

/// A segment register with its hidden part (base, limit, attributes).
public struct Segment: Sendable, Equatable {
    public var base: UInt64 = 0
    public var limit: UInt32 = 0xFFFF
    public var selector: UInt16 = 0
    public var type: UInt8 = 0
    public var present = true
    public var dpl: UInt8 = 0
    /// Default operand size (32-bit) for code, big for data.
    public var db = false
    /// Code or data, as opposed to a system segment.
    public var s = true
    /// 64-bit code.
    public var l = false
    /// Limit in 4 KiB units.
    public var g = false

    public init(base: UInt64 = 0, limit: UInt32 = 0xFFFF, selector: UInt16 = 0, type: UInt8 = 0,
                present: Bool = true, dpl: UInt8 = 0, db: Bool = false, s: Bool = true,
                l: Bool = false, g: Bool = false) {
        self.base = base; self.limit = limit; self.selector = selector; self.type = type
        self.present = present; self.dpl = dpl; self.db = db; self.s = s; self.l = l; self.g = g
    }
}

/// Control registers, segments and descriptor tables. A hypervisor may keep
/// more state beside these (KVM: the APIC base, the pending-interrupt bitmap);
/// setting them changes only what is here.
public struct SpecialRegisters: Sendable, Equatable {
    public var cs = Segment(), ds = Segment(), es = Segment(), fs = Segment(), gs = Segment(), ss = Segment()
    public var tr = Segment(type: 11, s: false)
    public var gdt: DescriptorTable = DescriptorTable()
    public var idt: DescriptorTable = DescriptorTable()
    public var cr0: UInt64 = 0x6000_0010, cr3: UInt64 = 0, cr4: UInt64 = 0, efer: UInt64 = 0

    public init() {}
}

/// A GDT or IDT register.
public struct DescriptorTable: Sendable, Equatable {
    public var base: UInt64
    public var limit: UInt16
    public init(base: UInt64 = 0, limit: UInt16 = 0xFFFF) { self.base = base; self.limit = limit }
}

/// x87/SSE state: only the control words Linux expects at entry.
public struct FPUState: Sendable, Equatable {
    public var fcw: UInt16 = 0x37F
    public var mxcsr: UInt32 = 0x1F80
    public init() {}
}

/// One CPUID leaf (and sub-leaf) as the hypervisor reports and accepts it.
public struct CPUIDEntry: Sendable, Equatable {
    public var function: UInt32
    public var index: UInt32
    public var flags: UInt32
    public var eax: UInt32
    public var ebx: UInt32
    public var ecx: UInt32
    public var edx: UInt32

    public init(function: UInt32, index: UInt32 = 0, flags: UInt32 = 0,
                eax: UInt32 = 0, ebx: UInt32 = 0, ecx: UInt32 = 0, edx: UInt32 = 0) {
        self.function = function; self.index = index; self.flags = flags
        self.eax = eax; self.ebx = ebx; self.ecx = ecx; self.edx = edx
    }
}
