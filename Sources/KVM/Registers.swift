import CKVM

/// General-purpose registers (struct kvm_regs).
public struct Registers: Sendable, Equatable {
    public var rax: UInt64 = 0, rbx: UInt64 = 0, rcx: UInt64 = 0, rdx: UInt64 = 0
    public var rsi: UInt64 = 0, rdi: UInt64 = 0, rsp: UInt64 = 0, rbp: UInt64 = 0
    public var r8: UInt64 = 0, r9: UInt64 = 0, r10: UInt64 = 0, r11: UInt64 = 0
    public var r12: UInt64 = 0, r13: UInt64 = 0, r14: UInt64 = 0, r15: UInt64 = 0
    public var rip: UInt64 = 0
    /// Bit 1 is reserved and always set.
    public var rflags: UInt64 = 0x2

    public init() {}

    init(_ r: kvm_regs) {
        rax = r.rax; rbx = r.rbx; rcx = r.rcx; rdx = r.rdx; rsi = r.rsi; rdi = r.rdi
        rsp = r.rsp; rbp = r.rbp; r8 = r.r8; r9 = r.r9; r10 = r.r10; r11 = r.r11
        r12 = r.r12; r13 = r.r13; r14 = r.r14; r15 = r.r15; rip = r.rip; rflags = r.rflags
    }

    var raw: kvm_regs {
        kvm_regs(rax: rax, rbx: rbx, rcx: rcx, rdx: rdx, rsi: rsi, rdi: rdi, rsp: rsp, rbp: rbp,
                 r8: r8, r9: r9, r10: r10, r11: r11, r12: r12, r13: r13, r14: r14, r15: r15,
                 rip: rip, rflags: rflags)
    }
}

/// A segment register as KVM describes it (struct kvm_segment).
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

    init(_ r: kvm_segment) {
        self.init(base: r.base, limit: r.limit, selector: r.selector, type: r.type, present: r.present != 0,
                  dpl: r.dpl, db: r.db != 0, s: r.s != 0, l: r.l != 0, g: r.g != 0)
    }

    var raw: kvm_segment {
        var r = kvm_segment()
        r.base = base; r.limit = limit; r.selector = selector; r.type = type
        r.present = present ? 1 : 0; r.dpl = dpl; r.db = db ? 1 : 0; r.s = s ? 1 : 0
        r.l = l ? 1 : 0; r.g = g ? 1 : 0; r.avl = 0; r.unusable = present ? 0 : 1
        return r
    }
}

/// Control registers, segments and descriptor tables (struct kvm_sregs).
/// Unlike `Registers` this is read-modify-write: KVM keeps state here
/// (the APIC base, the interrupt bitmap) that Skiff does not model.
public struct SpecialRegisters {
    var raw: kvm_sregs

    init(_ raw: kvm_sregs) { self.raw = raw }

    public var cs: Segment { get { Segment(raw.cs) } set { raw.cs = newValue.raw } }
    public var ds: Segment { get { Segment(raw.ds) } set { raw.ds = newValue.raw } }
    public var es: Segment { get { Segment(raw.es) } set { raw.es = newValue.raw } }
    public var fs: Segment { get { Segment(raw.fs) } set { raw.fs = newValue.raw } }
    public var gs: Segment { get { Segment(raw.gs) } set { raw.gs = newValue.raw } }
    public var ss: Segment { get { Segment(raw.ss) } set { raw.ss = newValue.raw } }
    public var tr: Segment { get { Segment(raw.tr) } set { raw.tr = newValue.raw } }
    public var gdt: (base: UInt64, limit: UInt16) {
        get { (raw.gdt.base, raw.gdt.limit) }
        set { raw.gdt.base = newValue.base; raw.gdt.limit = newValue.limit }
    }
    public var idt: (base: UInt64, limit: UInt16) {
        get { (raw.idt.base, raw.idt.limit) }
        set { raw.idt.base = newValue.base; raw.idt.limit = newValue.limit }
    }
    public var cr0: UInt64 { get { raw.cr0 } set { raw.cr0 = newValue } }
    public var cr3: UInt64 { get { raw.cr3 } set { raw.cr3 = newValue } }
    public var cr4: UInt64 { get { raw.cr4 } set { raw.cr4 = newValue } }
    public var efer: UInt64 { get { raw.efer } set { raw.efer = newValue } }
}

/// x87/SSE state (struct kvm_fpu): only the control words Linux expects at entry.
public struct FPUState: Sendable {
    public var fcw: UInt16 = 0x37F
    public var mxcsr: UInt32 = 0x1F80
    public init() {}
}
