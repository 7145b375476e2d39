import CKVM

// Conversions between the seam's register types and <linux/kvm.h>'s.

extension Registers {
    init(_ r: kvm_regs) {
        self.init()
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

extension Segment {
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

extension SpecialRegisters {
    init(_ raw: kvm_sregs) {
        self.init()
        cs = Segment(raw.cs); ds = Segment(raw.ds); es = Segment(raw.es); fs = Segment(raw.fs)
        gs = Segment(raw.gs); ss = Segment(raw.ss); tr = Segment(raw.tr)
        gdt = DescriptorTable(base: raw.gdt.base, limit: raw.gdt.limit)
        idt = DescriptorTable(base: raw.idt.base, limit: raw.idt.limit)
        cr0 = raw.cr0; cr3 = raw.cr3; cr4 = raw.cr4; efer = raw.efer
    }

    /// `base` (what KVM had) with these registers written over it: the LDT,
    /// CR2, CR8, the APIC base and the interrupt bitmap stay KVM's.
    func applied(to base: kvm_sregs) -> kvm_sregs {
        var raw = base
        raw.cs = cs.raw; raw.ds = ds.raw; raw.es = es.raw; raw.fs = fs.raw
        raw.gs = gs.raw; raw.ss = ss.raw; raw.tr = tr.raw
        raw.gdt.base = gdt.base; raw.gdt.limit = gdt.limit
        raw.idt.base = idt.base; raw.idt.limit = idt.limit
        raw.cr0 = cr0; raw.cr3 = cr3; raw.cr4 = cr4; raw.efer = efer
        return raw
    }
}

extension CPUIDEntry {
    init(_ raw: kvm_cpuid_entry2) {
        self.init(function: raw.function, index: raw.index, flags: raw.flags,
                  eax: raw.eax, ebx: raw.ebx, ecx: raw.ecx, edx: raw.edx)
    }

    var raw: kvm_cpuid_entry2 {
        var entry = kvm_cpuid_entry2()
        entry.function = function; entry.index = index; entry.flags = flags
        entry.eax = eax; entry.ebx = ebx; entry.ecx = ecx; entry.edx = edx
        return entry
    }
}
