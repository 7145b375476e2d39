/// Builds the guest kernel's command line.
public enum KernelCommandLine {
    /// What every Skiff guest gets unless `--cmdline` replaces it: the serial
    /// console, reset through the keyboard controller (the i8042 model), an
    /// immediate reset on panic rather than a hang, no PCI probing, and quiet
    /// (each console byte is a VM exit).
    public static let defaults = [
        "console=ttyS0", "reboot=k", "panic=-1", "pci=off",
        "no_timer_check", "random.trust_cpu=on", "quiet",
    ]

    /// `base` (the defaults unless replaced), then the compatibility profile's
    /// parameters, then `append`, so that what the user appends can override
    /// either. Whatever follows a `--` (in `base` or `append`) is init's and
    /// goes last, after a single `--`.
    public static func compose(base: String?, append: String?, profile: CompatibilityProfile) -> String {
        let (baseKernel, baseInit) = splitAtInitArguments(base ?? spaced(defaults))
        let (appendKernel, appendInit) = splitAtInitArguments(append ?? "")
        let initArguments = [baseInit, appendInit].compactMap { $0 }.filter { !$0.isEmpty }
        return join([baseKernel] + profile.kernelParameters + [appendKernel], initArguments: initArguments)
    }

    /// Adds kernel parameters (device announcements, say) before init's arguments.
    public static func inserting(_ parameters: [String], into line: String) -> String {
        guard !parameters.isEmpty else { return line }
        let (kernel, initArguments) = splitAtInitArguments(line)
        return join([kernel] + parameters, initArguments: initArguments.map { [$0] } ?? [])
    }

    /// Adds CPU features to the line's `clearcpuid=` list (one parameter:
    /// Linux reads only one), or adds the parameter. On a PVM host the guest
    /// kernel's CPUID instruction does not go through the VMM's CPUID table,
    /// so the kernel must be told; on hardware KVM it repeats what CPUID says.
    /// Linux's buffer for the `clearcpuid=` value (arch/x86/kernel/cpu/common.c).
    public static let clearCPUIDLimit = 127

    public static func clearing(_ features: [String], in line: String) throws(MachineError) -> String {
        guard !features.isEmpty else { return line }
        let (kernel, initArguments) = splitAtInitArguments(line)
        var words = kernel.split(separator: " ").map(String.init)
        if let index = words.lastIndex(where: { $0.hasPrefix("clearcpuid=") }) {
            words[index] += "," + spaced(features, by: ",")
        } else {
            words.append("clearcpuid=" + spaced(features, by: ","))
        }
        if let clear = words.last(where: { $0.hasPrefix("clearcpuid=") }), clear.utf8.count - 11 > clearCPUIDLimit {
            throw .invalidConfiguration("clearcpuid= would be \(clear.utf8.count - 11) bytes; Linux reads \(clearCPUIDLimit) (hide fewer CPU features)")
        }
        return join(words, initArguments: initArguments.map { [$0] } ?? [])
    }

    /// Kernel parameters, then (if there are any) `--` and init's arguments; empty pieces dropped.
    private static func join(_ kernelParameters: [String], initArguments: [String]) -> String {
        var parts = kernelParameters
        if !initArguments.isEmpty { parts += ["--"] + initArguments }
        return spaced(parts.filter { !$0.isEmpty })
    }

    /// `words.joined(separator:)` written out for `[String]`: the standard
    /// library's joined is not specialized here, and its first call looks up
    /// the collection's associated types by name in the runtime, about 80 µs
    /// of every `skiff boot` (perf, 150 starts).
    static func spaced(_ words: [String], by separator: String = " ") -> String {
        var line = ""
        line.reserveCapacity(words.reduce(0) { $0 + $1.utf8.count + 1 })
        for (index, word) in words.enumerated() {
            if index > 0 { line += separator }
            line += word
        }
        return line
    }

    /// Splits at the first standalone `--`: the kernel's part, and init's (nil if none).
    /// Word by word rather than with `firstRange(of:)`: that one lives in
    /// _StringProcessing, and calling it maps about 450 KiB of its text into
    /// every `skiff boot` (scripts/make-start-order.sh).
    static func splitAtInitArguments(_ line: String) -> (kernel: String, init: String?) {
        let words = line.split(separator: " ", omittingEmptySubsequences: false)
        guard let marker = words.firstIndex(of: "--") else { return (line, nil) }
        let kernel = spaced(words[..<marker].map(String.init)).trimmingSpaces
        let rest = spaced(words[(marker + 1)...].map(String.init)).trimmingSpaces
        return (kernel, rest)
    }
}

extension String {
    var trimmingSpaces: String {
        var slice = Substring(self)
        while slice.first == " " { slice.removeFirst() }
        while slice.last == " " { slice.removeLast() }
        return String(slice)
    }
}
