import Testing
@testable import X86_64
import Platform

@Suite struct ELFKernelTests {
    @Test func parsesLoadableSegmentsAndEntry() throws {
        let elf = makeELF(entry: 0x100_0000, segments: [(0x100_0000, [1, 2, 3], 0x1000), (0x200_0000, [4], 1)])
        let kernel = try ELFKernel(bytes: elf, file: "vmlinux")
        #expect(kernel.entry == 0x100_0000)
        #expect(kernel.segments.map(\.physicalAddress) == [0x100_0000, 0x200_0000])
        #expect(kernel.segments[0].memorySize == 0x1000)
        #expect(kernel.physicalRange == 0x100_0000..<0x200_0001)
    }

    @Test(arguments: [
        ([UInt8](), "not an ELF file"),
        ([0x7F, 0x45, 0x4C, 0x46, 2, 1], "truncated ELF header"),
        ([0x7F, 0x45, 0x4C, 0x46, 1, 1] + [UInt8](repeating: 0, count: 60), "not a 64-bit ELF file"),
    ])
    func rejectsWhatIsNotAnELFKernel(bytes: [UInt8], problem: String) {
        #expect { try ELFKernel(bytes: bytes, file: "k") } throws: { ($0 as? BootError)?.problem.contains(problem) == true }
    }

    @Test func rejectsForeignAndBrokenELF() {
        let arm = makeELF(entry: 0, segments: [(0x1000, [1], 1)], machine: 183)
        #expect { try ELFKernel(bytes: arm, file: "k") } throws: { "\($0)".contains("not x86_64") }
        let shared = makeELF(entry: 0, segments: [(0x1000, [1], 1)], type: 3)
        #expect { try ELFKernel(bytes: shared, file: "k") } throws: { "\($0)".contains("not an executable") }
        // Segment data cut off by truncation.
        let whole = makeELF(entry: 0, segments: [(0x1000, [UInt8](repeating: 7, count: 100), 100)])
        #expect { try ELFKernel(bytes: Array(whole.dropLast(10)), file: "k") } throws: { "\($0)".contains("truncated") }
        // Program headers cut off.
        #expect { try ELFKernel(bytes: Array(whole.prefix(80)), file: "k") } throws: { $0 is BootError }
        // memsz smaller than filesz.
        let impossible = makeELF(entry: 0, segments: [(0x1000, [1, 2, 3, 4], 2)])
        #expect { try ELFKernel(bytes: impossible, file: "k") } throws: { "\($0)".contains("impossible size") }
    }

    /// Offsets and addresses near 2^64 are errors that say what is wrong (the
    /// message once showed the wrapped sum), never a trap.
    @Test func overflowingOffsetsAndAddressesAreErrors() {
        var offset = makeELF(entry: 0, segments: [(0x1000, [1, 2, 3, 4], 4)])
        for (index, byte) in withUnsafeBytes(of: UInt64.max - 1, Array.init).enumerated() { offset[64 + 8 + index] = byte }
        #expect { try ELFKernel(bytes: offset, file: "k") } throws: {
            "\($0)" == "k: segment 0: offset 18446744073709551614 plus size 4 is past any file"
        }
        let high = makeELF(entry: 0, segments: [(UInt64.max - 2, [1, 2, 3, 4], 4)])
        #expect { try ELFKernel(bytes: high, file: "k") } throws: { "\($0)".contains("runs past the end of the address space") }
    }

    @Test func everyTruncationOfAValidKernelIsAnErrorNotATrap() {
        let elf = makeELF(entry: 0x100_0000, segments: [(0x100_0000, [UInt8](repeating: 1, count: 64), 64)])
        for length in 0..<elf.count {
            #expect(throws: BootError.self) { try ELFKernel(bytes: Array(elf.prefix(length)), file: "k") }
        }
    }
}

@Suite struct BzImageTests {
    @Test func parsesTheSetupHeader() throws {
        let image = try BzImage(bytes: makeBzImage(), file: "bzImage")
        #expect(image.protocolVersion == 0x020F)
        #expect(image.kernelOffset == 1024)
        #expect(image.preferredAddress == 0x100_0000)
        #expect(image.commandLineLimit == 2048)
        #expect(image.setupHeader.count == 0x268 - 0x1F1)
        #expect(image.setupHeader[0x202 - 0x1F1] == 0x48) // "H"
    }

    @Test func rejectsOldProtocolsAndKernelsWithoutA64BitEntry() {
        #expect { try BzImage(bytes: makeBzImage(version: 0x0209), file: "k") } throws: { "\($0)".contains("older than 2.12") }
        #expect { try BzImage(bytes: makeBzImage(xloadflags: 0), file: "k") } throws: { "\($0)".contains("64-bit entry") }
        var bad = makeBzImage()
        bad[0x1FE] = 0
        #expect { try BzImage(bytes: bad, file: "k") } throws: { "\($0)".contains("not a Linux bzImage") }
        let headerOnly = Array(makeBzImage(setupSectors: 4).prefix(1024))
        #expect { try BzImage(bytes: headerOnly, file: "k") } throws: { "\($0)".contains("truncated") }
    }
}
