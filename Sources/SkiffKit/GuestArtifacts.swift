import Glibc

/// The project's own guest (kernel and initramfs), built by
/// `scripts/build-guest.sh` into its cache on first use and reused afterwards.
public struct GuestArtifacts: Sendable, Equatable {
    public let kernel: String
    public let bzImage: String?
    public let initrd: String

    /// Finds `scripts/build-guest.sh` (from $SKIFF_SOURCE_DIR, else upward from the
    /// skiff executable, else upward from the working directory), runs it, and
    /// parses its `kernel=` and `initrd=` lines.
    public static func ensureBuilt() throws(MachineError) -> GuestArtifacts {
        guard let script = locateBuildScript() else {
            throw .invalidConfiguration("cannot find scripts/build-guest.sh to build the guest kernel; pass --kernel, or set SKIFF_SOURCE_DIR to Skiff's source tree")
        }
        let result = try HostCommand.run(["/bin/bash", script])
        guard result.status == 0 else {
            throw .invalidConfiguration("\(script) failed with status \(result.status); see its messages above")
        }
        return try parse(result.output, from: script)
    }

    static func parse(_ output: String, from script: String) throws(MachineError) -> GuestArtifacts {
        var values: [String: String] = [:]
        for line in output.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        guard let kernel = values["kernel"], let initrd = values["initrd"] else {
            throw .invalidConfiguration("\(script) did not print kernel= and initrd= lines")
        }
        return GuestArtifacts(kernel: kernel, bzImage: values["bzimage"], initrd: initrd)
    }

    static func locateBuildScript() -> String? {
        var starts: [String] = []
        if let source = getenv("SKIFF_SOURCE_DIR") { starts.append(String(cString: source)) }
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if length > 0 { starts.append(String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)) }
        if let cwd = getcwd(nil, 0) { starts.append(String(cString: cwd)); free(cwd) }
        for start in starts {
            var directory = start
            while !directory.isEmpty {
                let candidate = directory + "/scripts/build-guest.sh"
                if access(candidate, R_OK) == 0 { return candidate }
                guard let slash = directory.lastIndex(of: "/") else { break }
                directory = String(directory[..<slash])
            }
        }
        return nil
    }
}
