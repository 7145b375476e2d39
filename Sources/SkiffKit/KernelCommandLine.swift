import Platform

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

    /// `base` (the defaults unless replaced), then the parameters the
    /// compatibility profile's workarounds need on the machine's platform,
    /// then `append`, so that what the user appends can override either.
    /// Whatever follows a `--` (in `base` or `append`) is init's and goes
    /// last, after a single `--`.
    public static func compose(base: String?, append: String?, profile: CompatibilityProfile) -> String {
        let (baseKernel, baseInit) = splitAtInitArguments(base ?? spaced(defaults))
        let (appendKernel, appendInit) = splitAtInitArguments(append ?? "")
        let initArguments = [baseInit, appendInit].compactMap { $0 }.filter { !$0.isEmpty }
        let workarounds = MachineConfiguration.platform(compatibility: profile, hiddenCPUFeatures: []).workaroundParameters
        return join([baseKernel] + workarounds + [appendKernel], initArguments: initArguments)
    }

    /// Adds kernel parameters (device announcements, say) before init's arguments.
    public static func inserting(_ parameters: [String], into line: String) -> String {
        guard !parameters.isEmpty else { return line }
        let (kernel, initArguments) = splitAtInitArguments(line)
        return join([kernel] + parameters, initArguments: initArguments.map { [$0] } ?? [])
    }

    /// The line with the CPU features `platform` hides announced to the
    /// kernel (`GuestPlatform.announcingHiddenFeatures`); init's arguments untouched.
    public static func announcingHiddenFeatures(of platform: any GuestPlatform, in line: String) throws(BootError) -> String {
        let (kernel, initArguments) = splitAtInitArguments(line)
        let words = try platform.announcingHiddenFeatures(in: kernel.split(separator: " ").map(String.init))
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
