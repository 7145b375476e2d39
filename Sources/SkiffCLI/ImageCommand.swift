import Container
import Glibc
import SkiffKit

extension Skiff {
    /// `skiff image`: a group; its commands are below.
    enum Image {
        static let spec = CommandSpec(name: "image", abstract: "Manage the root disks `skiff run` builds from images.",
                                      subcommands: [List.spec, Remove.spec, Prune.spec].map { ($0.name, $0.abstract) })

        struct List: SkiffCommand {
            static let spec = CommandSpec(name: "ls", abstract: "List cached images.")

            init(_ arguments: ParsedArguments) {}

            func run() throws {
                let store = ImageStore.standard()
                var rows = [["IMAGE ID", "SOURCE", "LAYERS", "FILES", "DISK", "CREATED"]]
                for entry in store.list() {
                    rows.append([entry.shortID, entry.source, "\(entry.layerCount)", megabytes(entry.treeBytes),
                                 megabytes(entry.diskBytes), localTime(entry.created)])
                }
                let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
                for row in rows {
                    print(zip(row, widths).map { $0.padding($1) }.joined(separator: "  ").trimmingSpacesAtEnd)
                }
            }
        }

        struct Remove: SkiffCommand {
            static let spec = CommandSpec(name: "rm", abstract: "Remove cached images by ID (a unique prefix will do).",
                                          positionals: [PositionalSpec(name: "ids", help: "Image IDs, as `skiff image ls` shows them.", repeating: true)])

            var ids: [String]

            init(_ arguments: ParsedArguments) throws(UsageError) {
                ids = arguments.positionals
                guard !ids.isEmpty else { throw UsageError("Missing expected argument '<ids> ...': name at least one image ID") }
            }

            func run() throws {
                let store = ImageStore.standard()
                var failed = false
                for id in ids {
                    do {
                        let entry = try store.remove(id)
                        print("removed \(entry.shortID) (\(entry.source))")
                    } catch {
                        printError("skiff: \(error)")
                        failed = true
                    }
                }
                if failed { throw ExitStatus(1) }
            }
        }

        struct Prune: SkiffCommand {
            static let spec = CommandSpec(name: "prune", abstract: "Remove every cached image no running VM uses, and the OCI runtime's ready guests.")

            init(_ arguments: ParsedArguments) {}

            func run() throws {
                let report = try ImageStore.standard().prune()
                for entry in report.removed { print("removed \(entry.shortID) (\(entry.source))") }
                for name in report.leftovers { print("removed leftover \(name)") }
                let ready = RunSnapshots.pruneBundleReadyGuests()
                for name in ready.removed { print("removed the OCI runtime's ready guest \(name)") }
                print("reclaimed \(megabytes(report.reclaimedBytes + ready.bytes))")
            }
        }
    }
}

/// Megabytes with one decimal, as `docker images` shows sizes.
func megabytes(_ bytes: Int64) -> String {
    let tenths = Int64((Double(bytes) / 1e5).rounded())
    return "\(tenths / 10).\(tenths % 10) MB"
}

/// `seconds` since the epoch as local "yyyy-mm-dd HH:MM" (strftime; no ICU).
func localTime(_ seconds: Double) -> String {
    var time = time_t(seconds)
    var parts = tm()
    var buffer = [CChar](repeating: 0, count: 32)
    guard localtime_r(&time, &parts) != nil, strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M", &parts) > 0 else { return "?" }
    return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

extension String {
    var trimmingSpacesAtEnd: String {
        var slice = Substring(self)
        while slice.last == " " { slice.removeLast() }
        return String(slice)
    }
}
