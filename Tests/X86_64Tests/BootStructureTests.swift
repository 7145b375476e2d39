import Memory
import Testing
@testable import X86_64
import Platform

@Suite struct BootParamsTests {
    @Test func vmlinuxParamsCarryTheFieldsLinuxReads() {
        var params = BootParams()
        params.setCommandLine(address: 0x20000)
        params.setInitrd(address: 0x1_2345_6000, size: 0x1234)
        var map = E820Map()
        map.add(0, size: 0x9FC00, .ram)
        map.add(0x10_0000, size: 0x100_0000, .ram)
        params.setMemoryMap(map)
        let bytes = params.bytes
        #expect(bytes.count == 4096)
        #expect(bytes[0x1FE] == 0x55 && bytes[0x1FF] == 0xAA)      // boot_flag
        #expect(u32(bytes, 0x202) == 0x5372_6448)                  // "HdrS"
        #expect(bytes[0x210] == 0xFF)                              // type_of_loader
        #expect(bytes[0x211] & 0x01 == 0x01)                       // LOADED_HIGH
        #expect(u32(bytes, 0x228) == 0x20000)                      // cmd_line_ptr
        #expect(u32(bytes, 0x218) == 0x2345_6000)                  // ramdisk_image (low 32 bits)
        #expect(u32(bytes, 0x0C0) == 0x1)                          // ext_ramdisk_image (high 32 bits)
        #expect(u32(bytes, 0x21C) == 0x1234)                       // ramdisk_size
        #expect(bytes[0x1E8] == 2)                                 // e820_entries
        #expect(u64(bytes, 0x2D0) == 0 && u64(bytes, 0x2D8) == 0x9FC00 && u32(bytes, 0x2E0) == 1)
        #expect(u64(bytes, 0x2E4) == 0x10_0000 && u64(bytes, 0x2EC) == 0x100_0000 && u32(bytes, 0x2F4) == 1)
    }

    @Test func bzImageParamsStartFromItsSetupHeader() throws {
        let image = try BzImage(bytes: makeBzImage(), file: "k")
        let bytes = BootParams(setupHeader: image.setupHeader).bytes
        #expect(u32(bytes, 0x230) == 0x20_0000)                    // kernel_alignment from the file
        #expect(bytes[0x210] == 0xFF)
    }
}

@Suite struct PCMemoryTests {
    @Test func x86LayoutLeavesTheMMIOHoleUnmapped() throws {
        let small = try GuestMemory.x86(size: 64 << 20)
        #expect(small.regions.count == 1)
        #expect(small.size == 64 << 20)
        let large = try GuestMemory.x86(size: 4 << 30)
        #expect(large.regions.map(\.guestAddress) == [0, 0x1_0000_0000])
        #expect(large.regions.map(\.size) == [3 << 30, 1 << 30])
        #expect(!large.contains(address: 0xC000_0000, length: 1))
        #expect(large.size == 4 << 30)
    }
}

@Suite struct E820Tests {
    @Test func pcMapReservesTheEBDAAndSplitsAroundTheHole() throws {
        let memory = try GuestMemory.x86(size: 4 << 30)
        let map = E820Map.pc(for: memory)
        let expected: [E820Map.Entry] = [
            E820Map.Entry(address: 0, size: 0x9FC00, kind: .ram),
            E820Map.Entry(address: 0x9FC00, size: 0x6_0400, kind: .reserved),
            E820Map.Entry(address: 0x10_0000, size: 0xBFF0_0000, kind: .ram),
            E820Map.Entry(address: 0x1_0000_0000, size: 0x4000_0000, kind: .ram),
        ]
        #expect(map.entries == expected)
        // The hand-over mailbox's 64 KiB lie in the reserved range, below 1 MiB (guest/init reads them through /dev/mem).
        let mailbox = X86Platform().deviceLayout.handoverMailbox
        #expect(mailbox == 0xE0000)
        #expect(map.entries.contains { $0.kind == .reserved && $0.address <= mailbox && mailbox + 0x1_0000 <= $0.address + $0.size })
        #expect(mailbox + 0x1_0000 <= X86Layout.highMemory)
    }
}

@Suite struct MPTableTests {
    @Test(arguments: [1, 2, 32])
    func layoutAndChecksums(cpus: Int) throws {
        let table = try MPTable(cpuCount: cpus)
        let bytes = table.bytes
        #expect(Array(bytes[0..<4]) == Array("_MP_".utf8))
        #expect(u32(bytes, 4) == UInt32(X86Layout.ebda) + 16)      // points at the PCMP header
        #expect(bytes[0..<16].reduce(0, &+) == 0)                   // floating pointer checksum
        #expect(Array(bytes[16..<20]) == Array("PCMP".utf8))
        let length = Int(bytes[20]) | Int(bytes[21]) << 8
        #expect(16 + length == bytes.count)
        #expect(bytes[16...].reduce(0, &+) == 0)                    // configuration table checksum
        let entryCount = Int(bytes[16 + 34]) | Int(bytes[16 + 35]) << 8
        #expect(entryCount == cpus + 1 + 1 + 24 + 2)
        // Processors first: APIC ids 0..<cpus, the first one the bootstrap processor.
        for cpu in 0..<cpus {
            let entry = 60 + cpu * 20
            #expect(bytes[entry] == 0 && bytes[entry + 1] == UInt8(cpu))
            #expect(bytes[entry + 3] == (cpu == 0 ? 3 : 1))
        }
        // The whole table fits in the EBDA's first KiB, where Linux looks.
        #expect(bytes.count <= 1024)
    }

    @Test func rejectsImpossibleCPUCounts() {
        #expect(throws: BootError.self) { try MPTable(cpuCount: 0) }
        #expect(throws: BootError.self) { try MPTable(cpuCount: 33) }
    }
}

@Suite struct CPUStateStructureTests {
    @Test func gdtDescriptorsEncodeAsTheBootProtocolWants() {
        #expect(GDT.code.encoded == 0x00AF_9B00_0000_FFFF)
        #expect(GDT.data.encoded == 0x00CF_9300_0000_FFFF)
        #expect(GDT.code.long && !GDT.code.system && GDT.code.byteLimit == 0xFFFF_FFFF)
        #expect(GDT.bytes.count == 32 && GDT.bytes[0..<8].allSatisfy { $0 == 0 })
    }

    @Test func pageTablesIdentityMapFourGiB() {
        let pages = PageTables.build()
        #expect(pages[0].address == X86Layout.pml4)
        #expect(u64(pages[0].bytes, 0) == X86Layout.pdpt | 3)
        #expect(u64(pages[1].bytes, 8) == X86Layout.pageDirectories + 0x1000 | 3)
        let secondGiB = pages[3].bytes
        let secondEntry: UInt64 = 1 << 30 | 2 << 20 | 0x83
        #expect(u64(secondGiB, 8) == secondEntry)
        #expect(pages.count == 2 + X86Layout.identityMappedGiB)
    }

    /// A small guest gets one page directory; RAM up to the 4 GiB hole, all four.
    @Test func pageTablesCoverTheRAMBelowFourGiB() {
        #expect(PageTables.gibibytes(coveringRAMUpTo: 32 << 20) == 1)
        #expect(PageTables.gibibytes(coveringRAMUpTo: 1 << 30) == 1)
        #expect(PageTables.gibibytes(coveringRAMUpTo: (1 << 30) + 4096) == 2)
        #expect(PageTables.gibibytes(coveringRAMUpTo: 3 << 30) == 3)
        #expect(PageTables.gibibytes(coveringRAMUpTo: 1 << 32) == 4)
        let pages = PageTables.build(gibibytes: 1)
        #expect(pages.count == 3)
        #expect(u64(pages[1].bytes, 0) == X86Layout.pageDirectories | 3)
        #expect(u64(pages[1].bytes, 8) == 0, "no second page directory")
        #expect(u64(pages[2].bytes, 511 * 8) == 511 << 21 | 0x83)
    }

    @Test func trampolineReportsThenJumps() {
        let code = X86Boot.trampoline(port: 0x440, code: 0x10, jumpTo: 0x100_0000)
        let expected: [UInt8] = [0xB0, 0x10, 0x66, 0xBA, 0x40, 0x04, 0xEE, 0x48, 0xB8,
                                 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xE0]
        #expect(code == expected)
    }
}

@Suite struct X86BootLoadTests {
    let memory: GuestMemory
    init() throws { memory = try GuestMemory.x86(size: 64 << 20) }

    @Test func loadsAVmlinuxWithInitrdAndCommandLine() throws {
        let elf = makeELF(entry: 0x100_0000, segments: [(0x100_0000, [0xF4, 0xF4], 0x2000)])
        try memory.fill(0xAA, at: 0x100_0002, length: 16) // .bss must be zeroed
        let initrd = [UInt8](repeating: 0x5A, count: 10_000)
        let state = try X86Boot.load(KernelImages(
            kernel: elf, kernelPath: "vmlinux", initrd: initrd, initrdPath: "initrd",
            commandLine: "console=ttyS0 quiet", cpuCount: 2, firstInstructionMarker: (0x440, 0x10)), into: memory)
        #expect(state.format == .elf)
        #expect(state.kernelEntry == 0x100_0000)
        #expect(state.instructionPointer == X86Layout.trampoline)
        #expect(try memory.readBytes(at: 0x100_0000, count: 4) == [0xF4, 0xF4, 0, 0])
        #expect(try memory.readBytes(at: X86Layout.commandLine, count: 20) == Array("console=ttyS0 quiet".utf8) + [0])
        let initrdRange = try #require(state.initrdRange)
        #expect(initrdRange.lowerBound % 4096 == 0 && initrdRange.upperBound <= 64 << 20)
        #expect(try memory.readBytes(at: initrdRange.lowerBound, count: 3) == [0x5A, 0x5A, 0x5A])
        let params = try memory.readBytes(at: X86Layout.zeroPage, count: 4096)
        #expect(UInt64(u32(params, 0x218)) == initrdRange.lowerBound)
        #expect(u32(params, 0x21C) == 10_000)
        #expect(try memory.readBytes(at: X86Layout.ebda, count: 4) == Array("_MP_".utf8))
    }

    @Test func loadsABzImageAtItsPreferredAddress() throws {
        let image = makeBzImage(kernel: [0xC3] + [UInt8](repeating: 0, count: 600))
        let state = try X86Boot.load(KernelImages(kernel: image, kernelPath: "bzImage", commandLine: ""), into: memory)
        #expect(state.format == .bzImage)
        #expect(state.kernelEntry == 0x100_0200)
        #expect(state.instructionPointer == state.kernelEntry)
        #expect(try memory.read(UInt8.self, at: 0x100_0000) == 0xC3)
    }

    @Test func refusesWhatDoesNotFit() {
        let elf = makeELF(entry: 0, segments: [(0x1000_0000, [1], 1)]) // 256 MiB: beyond 64 MiB of RAM
        #expect { try X86Boot.load(KernelImages(kernel: elf, kernelPath: "big", commandLine: ""), into: memory) }
            throws: { "\($0)".contains("does not fit in 64 MiB") }
        let small = makeELF(entry: 0x100_0000, segments: [(0x100_0000, [1], 1)])
        #expect { try X86Boot.load(KernelImages(kernel: small, kernelPath: "k", initrd: [UInt8](repeating: 1, count: 80 << 20),
                                                        initrdPath: "huge.cpio", commandLine: ""), into: memory) }
            throws: { "\($0)".hasPrefix("huge.cpio: initrd") }
        let longLine = String(repeating: "x", count: 3000)
        #expect { try X86Boot.load(KernelImages(kernel: small, kernelPath: "k", commandLine: longLine), into: memory) }
            throws: { "\($0)".contains("at most 2047") }
        #expect { try X86Boot.load(KernelImages(kernel: Array("hello\n".utf8), kernelPath: "/etc/hostname", commandLine: ""), into: memory) }
            throws: { "\($0)" == "/etc/hostname: not a Linux kernel: neither an ELF vmlinux nor a bzImage" }
    }
}

@Suite struct X86WorkaroundTests {
    @Test func hiddenFeaturesJoinTheLastClearCPUIDList() throws {
        let platform = X86Platform(hiddenFeatures: ["rdrand", "rdseed"])
        #expect(try platform.announcingHiddenFeatures(in: ["clearcpuid=smap", "quiet", "clearcpuid=pcid"])
                == ["clearcpuid=smap", "quiet", "clearcpuid=pcid,rdrand,rdseed"], "Linux reads only the last")
        #expect(try platform.announcingHiddenFeatures(in: ["quiet"]) == ["quiet", "clearcpuid=rdrand,rdseed"])
        #expect(try X86Platform().announcingHiddenFeatures(in: ["quiet"]) == ["quiet"], "nothing hidden, nothing added")
        // 127 bytes fit (the kernel's buffer); one more is refused.
        let full = "clearcpuid=" + String(repeating: "x", count: 127 - 14)
        #expect(try platform.announcingHiddenFeatures(in: [full]).last?.utf8.count == 11 + 127)
        #expect(throws: BootError.self) { try platform.announcingHiddenFeatures(in: [full + "y"]) }
    }

    @Test func onlyThePVMWorkaroundsStepOverTrappedInstructionsAndAddParameters() {
        #expect(X86Platform().workaroundParameters.isEmpty)
        #expect(X86Platform(workarounds: .pvm).workaroundParameters.contains("skiff.pvm_syscall"))
        #expect(X86Workarounds.pvm.stepsOverTrappedInstructions && !X86Workarounds.none.stepsOverTrappedInstructions)
        #expect(X86Workarounds.pvm.hiddenKVMFeatures == X86Workarounds.hypercallFeatures)
    }
}
