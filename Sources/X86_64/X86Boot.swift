import Platform
import Memory

/// The bootstrap CPU's state at entry, in architectural terms (the machine
/// turns it into KVM registers). Application processors start through INIT/SIPI.
public struct X86BootState: Equatable, Sendable {
    public enum KernelFormat: String, Sendable { case elf = "vmlinux (ELF)", bzImage = "bzImage" }

    public let format: KernelFormat
    public let instructionPointer: UInt64
    public let kernelEntry: UInt64
    public let bootParams: UInt64 = X86Layout.zeroPage
    public let stackPointer: UInt64 = X86Layout.stackTop
    public let pageTableRoot: UInt64 = X86Layout.pml4
    public let gdt: (base: UInt64, limit: UInt16) = (X86Layout.gdt, 31)
    /// Empty: the kernel installs its own before it enables interrupts.
    public let idt: (base: UInt64, limit: UInt16)
    public let kernelRange: Range<UInt64>
    public let initrdRange: Range<UInt64>?

    public init(format: KernelFormat, instructionPointer: UInt64, kernelEntry: UInt64,
                idt: (base: UInt64, limit: UInt16) = (X86Layout.idt, 7),
                kernelRange: Range<UInt64>, initrdRange: Range<UInt64>? = nil) {
        self.format = format; self.instructionPointer = instructionPointer; self.kernelEntry = kernelEntry
        self.idt = idt; self.kernelRange = kernelRange; self.initrdRange = initrdRange
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.format == b.format && a.instructionPointer == b.instructionPointer && a.kernelEntry == b.kernelEntry
            && a.kernelRange == b.kernelRange && a.initrdRange == b.initrdRange
    }
}

/// Loads x86_64 Linux into guest memory following the 64-bit boot protocol
/// (Documentation/x86/boot.rst): kernel, initrd, command line, boot_params with
/// the e820 map, MP table, identity page tables and GDT.
public enum X86Boot {
    /// The `file` of a BootError about the command line.
    public static let commandLineFile = BootError.commandLineFile

    /// Parses the kernel's headers (vmlinux ELF or bzImage) without loading
    /// anything, so that a file that is not a bootable kernel is refused
    /// before a VM exists. `load` parses the same way.
    @discardableResult
    public static func checkKernel(_ bytes: [UInt8], file: String) throws(BootError) -> X86BootState.KernelFormat {
        if ELFKernel.matches(bytes) {
            _ = try ELFKernel(bytes: bytes, file: file)
            return .elf
        }
        if BzImage.matches(bytes) {
            _ = try BzImage(bytes: bytes, file: file)
            return .bzImage
        }
        throw BootError(file: file, "not a Linux kernel: neither an ELF vmlinux nor a bzImage")
    }

    public static func load(_ configuration: KernelImages, into memory: GuestMemory) throws(BootError) -> X86BootState {
        let kernelFile = configuration.kernelPath
        var params: BootParams
        let entry: UInt64
        let kernelRange: Range<UInt64>
        let format: X86BootState.KernelFormat
        var commandLineLimit = X86Layout.defaultCommandLineLimit
        var initrdAddressMax = UInt64(Int32.max)

        if ELFKernel.matches(configuration.kernel) {
            let elf = try ELFKernel(bytes: configuration.kernel, file: kernelFile)
            for segment in elf.segments {
                try place(kernelFile, "segment at 0x\(hex(segment.physicalAddress))", in: memory) {
                    try memory.write(bytes: configuration.kernel[segment.fileOffset..<segment.fileOffset + segment.fileSize],
                                     at: segment.physicalAddress)
                    try memory.fill(0, at: segment.physicalAddress + UInt64(segment.fileSize),
                                    length: segment.memorySize - segment.fileSize)
                }
            }
            params = BootParams()
            entry = elf.entry
            kernelRange = elf.physicalRange
            format = .elf
        } else if BzImage.matches(configuration.kernel) {
            let image = try BzImage(bytes: configuration.kernel, file: kernelFile)
            let address = image.preferredAddress != 0 ? image.preferredAddress : X86Layout.defaultKernelAddress
            let body = configuration.kernel[image.kernelOffset...]
            let footprint = max(UInt64(body.count), UInt64(image.initSize))
            try place(kernelFile, "kernel of \(footprint >> 10) KiB at 0x\(hex(address))", in: memory) {
                guard memory.contains(address: address, length: Int(footprint)) else {
                    throw GuestMemoryError.outOfBounds(address: address, length: Int(footprint))
                }
                try memory.write(bytes: body, at: address)
            }
            params = BootParams(setupHeader: image.setupHeader)
            entry = address + 0x200 // the 64-bit entry point of the boot protocol
            kernelRange = address..<address + footprint
            format = .bzImage
            if image.commandLineLimit > 0 { commandLineLimit = Int(image.commandLineLimit) }
            if image.initrdAddressMax > 0 { initrdAddressMax = UInt64(image.initrdAddressMax) }
        } else {
            throw BootError(file: kernelFile, "not a Linux kernel: neither an ELF vmlinux nor a bzImage")
        }

        // Command line, NUL-terminated.
        let commandLine = Array(configuration.commandLine.utf8) + [0]
        guard commandLine.count <= commandLineLimit else {
            throw BootError(file: commandLineFile, "\(commandLine.count - 1) bytes; this kernel accepts at most \(commandLineLimit - 1)")
        }
        try place(kernelFile, "command line", in: memory) {
            try memory.write(bytes: commandLine, at: X86Layout.commandLine)
        }
        params.setCommandLine(address: X86Layout.commandLine)

        // Initrd: as high as the kernel allows, in low RAM, above the kernel.
        var initrdRange: Range<UInt64>?
        if let initrd = configuration.initrd {
            guard !initrd.isEmpty else { throw BootError(file: configuration.initrdPath, "initrd is empty") }
            let lowEnd = memory.regions.first { $0.guestAddress == 0 }.map(\.guestEnd) ?? 0
            let ceiling = min(lowEnd, initrdAddressMax + 1)
            let size = UInt64(initrd.count)
            guard size < ceiling, (ceiling - size) & ~0xFFF >= kernelRange.upperBound else {
                throw BootError(file: configuration.initrdPath,
                                "initrd of \(size >> 20) MiB does not fit in guest memory above the kernel (try more --memory)")
            }
            let address = (ceiling - size) & ~0xFFF
            try place(configuration.initrdPath, "initrd", in: memory) { try memory.write(bytes: initrd, at: address) }
            params.setInitrd(address: address, size: size)
            initrdRange = address..<address + size
        }

        params.setMemoryMap(E820Map.pc(for: memory))
        let mpTable = try MPTable(cpuCount: configuration.cpuCount)
        try place(kernelFile, "boot structures", in: memory) {
            try memory.write(bytes: params.bytes, at: X86Layout.zeroPage)
            try memory.write(bytes: mpTable.bytes, at: X86Layout.ebda)
            try memory.write(bytes: GDT.bytes, at: X86Layout.gdt)
            try memory.fill(0, at: X86Layout.idt, length: 8)
            let ramTop = memory.layout.filter { $0.guestAddress < 1 << 32 }.map { $0.guestAddress + UInt64($0.size) }.max() ?? 0
            for page in PageTables.build(gibibytes: PageTables.gibibytes(coveringRAMUpTo: ramTop)) {
                try memory.write(bytes: page.bytes, at: page.address)
            }
        }

        var instructionPointer = entry
        if let marker = configuration.firstInstructionMarker {
            try place(kernelFile, "trampoline", in: memory) {
                try memory.write(bytes: trampoline(port: marker.port, code: marker.value, jumpTo: entry), at: X86Layout.trampoline)
            }
            instructionPointer = X86Layout.trampoline
        }
        return X86BootState(format: format, instructionPointer: instructionPointer, kernelEntry: entry,
                            kernelRange: kernelRange, initrdRange: initrdRange)
    }

    /// 64-bit code: `mov al, code; mov dx, port; out dx, al; mov rax, entry; jmp rax`.
    /// Leaves RSI (boot_params) alone.
    public static func trampoline(port: UInt16, code: UInt8, jumpTo entry: UInt64) -> [UInt8] {
        var bytes: [UInt8] = [0xB0, code, 0x66, 0xBA, UInt8(port & 0xFF), UInt8(port >> 8), 0xEE, 0x48, 0xB8]
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: entry >> UInt64(shift))) }
        bytes += [0xFF, 0xE0]
        return bytes
    }

    /// Turns a guest-memory bounds failure into a BootError naming the file.
    private static func place(_ file: String, _ what: String, in memory: GuestMemory,
                              _ body: () throws -> Void) throws(BootError) {
        do {
            try body()
        } catch {
            throw BootError(file: file, "\(what) does not fit in \(memory.size >> 20) MiB of guest memory")
        }
    }
}

func hex(_ value: UInt64) -> String { String(value, radix: 16) }
