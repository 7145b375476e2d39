import Glibc
import Images
import Host

/// The project's own guest (kernel and initramfs), built by
/// `scripts/build-guest.sh` into its cache on first use and reused afterwards.
public struct GuestArtifacts: Sendable, Equatable {
    public let kernel: String
    public let bzImage: String?
    public let initrd: String

    /// Finds `scripts/build-guest.sh` (from $SKIFF_SOURCE_DIR, else upward from the
    /// skiff executable, else upward from the working directory), runs it, and
    /// parses its `kernel=` and `initrd=` lines.
    /// When the script has built the guest for this source tree before, its
    /// paths are found in-process by the tree's key, and no script runs.
    public static func ensureBuilt() throws(MachineError) -> GuestArtifacts {
        guard let script = locateBuildScript() else {
            throw .invalidConfiguration("cannot find scripts/build-guest.sh to build the guest kernel; pass --kernel, or set SKIFF_SOURCE_DIR to Skiff's source tree")
        }
        let repository = String(script.dropLast("/scripts/build-guest.sh".count))
        if let cached = cached(repository: repository) { return cached }
        let result = try HostCommand.run(["/bin/bash", script])
        guard result.status == 0 else {
            throw .invalidConfiguration("\(script) failed with status \(result.status); see its messages above")
        }
        return try parse(result.output, from: script)
    }

    /// The files of the source tree the guest is built from, as
    /// scripts/build-guest.sh lists them for its `guest-KEY.paths` record.
    static let sourceInputs: [(directory: String, suffix: String)] = [
        ("guest/kernel", ".config"), ("guest/kernel", ".patch"), ("guest/init", ".c"), ("guest/init", ".h"),
        ("scripts", "/build-guest.sh"), ("scripts", "/build-kernel.sh"), ("scripts", "/mkinitramfs.py"),
    ]

    /// SHA-256 (16 hex digits) over each input's relative path, a newline and
    /// its contents, in the script's order; nil if a file cannot be read.
    /// When no input's stat changed since the key was last hashed (the
    /// `guest-stamp-*` record beside the script's), the recorded key is used
    /// and no input is read: hashing them cost a warm `skiff run` 0.5 ms.
    static func sourceKey(repository: String, cache: String = cacheDirectory()) -> String? {
        guard let inputs = sourceFiles(repository: repository) else { return nil }
        let stampPath = cache + "/guest-stamp-" + String(SHA256.hex(Array(repository.utf8)).prefix(16))
        // Taken before the files are read: a file changed while they are
        // hashed then has a newer stat than the record, and is hashed again.
        let stamp = SourceStamp(inputs, in: repository)
        if let stamp, let key = stamp.recordedKey(at: stampPath) { return key }
        var hasher = SHA256()
        for relative in inputs {
            guard let contents = try? readFile(repository + "/" + relative, limit: 1 << 24) else { return nil }
            hasher.update(Array((relative + "\n").utf8))
            hasher.update(contents)
        }
        let key = String(hasher.finalize().prefix(16))
        stamp?.record(key, at: stampPath)
        return key
    }

    /// The inputs' paths relative to the repository, in the script's order.
    /// Each directory is listed once (two suffixes share each).
    static func sourceFiles(repository: String) -> [String]? {
        var files: [String] = []
        var listings: [String: [String]] = [:]
        for (directory, suffix) in sourceInputs {
            if suffix.hasPrefix("/") {
                files.append(directory + suffix)
                continue
            }
            if listings[directory] == nil {
                guard let listed = listDirectory(atPath: repository + "/" + directory) else { return nil }
                listings[directory] = listed.filter { !$0.hasPrefix(".") }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            }
            files += listings[directory]!.filter { $0.hasSuffix(suffix) }.map { directory + "/" + $0 }
        }
        return files
    }

    /// The guest the script built for this tree, if it did and its files are still there.
    static func cached(repository: String) -> GuestArtifacts? {
        guard let key = sourceKey(repository: repository),
              let record = try? readFile(cacheDirectory() + "/guest-\(key).paths", limit: 1 << 16),
              let artifacts = try? parse(String(decoding: record, as: UTF8.self), from: "guest-\(key).paths"),
              access(artifacts.kernel, R_OK) == 0, access(artifacts.initrd, R_OK) == 0 else { return nil }
        return artifacts
    }

    /// $SKIFF_CACHE_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/skiff: where the script caches.
    public static func cacheDirectory() -> String {
        func variable(_ name: String) -> String? { getenv(name).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } }
        if let directory = variable("SKIFF_CACHE_DIR") { return directory }
        return (variable("XDG_CACHE_HOME") ?? ((variable("HOME") ?? "/tmp") + "/.cache")) + "/skiff"
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
        if let own = executablePath() { starts.append(own) }
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
