/// Why an image could not be read or unpacked. Each case names the file or
/// layer path at fault, so that the message alone says what to fix.
public enum ImageError: Error, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case invalidLayout(String)
    case digestMismatch(blob: String, actual: String)
    case sizeMismatch(blob: String, expected: Int64, actual: Int64)
    case unsupportedMediaType(String)
    case noSuchTag(String, available: [String])
    case invalidArchive(layer: String, reason: String)
    case escapesRoot(layer: String, path: String)
    case unsafeEntry(layer: String, path: String, reason: String)
    /// Unpacking went past the image's `UnpackBudget`.
    case tooLarge(layer: String, path: String, reason: String)
    case io(path: String, operation: String, errno: Int32)
    /// The run's flags and the image's config do not make a runnable process.
    case invalidRunSpec(String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): return "\(path): \(reason)"
        case let .invalidLayout(reason): return "not a valid image: \(reason)"
        case let .digestMismatch(blob, actual): return "blob \(blob) is corrupt: its content hashes to sha256:\(actual)"
        case let .sizeMismatch(blob, expected, actual): return "blob \(blob) is \(actual) bytes, the manifest says \(expected)"
        case let .unsupportedMediaType(type): return "unsupported media type \(type)"
        case let .noSuchTag(tag, available):
            return "no image tagged '\(tag)' (the layout has: \(available.isEmpty ? "no tags" : available.joined(separator: ", ")))"
        case let .invalidArchive(layer, reason): return "layer \(layer): \(reason)"
        case let .escapesRoot(layer, path): return "layer \(layer): refusing '\(path)': it points outside the image root"
        case let .unsafeEntry(layer, path, reason): return "layer \(layer): refusing '\(path)': \(reason)"
        case let .tooLarge(layer, path, reason): return "layer \(layer): stopped at '\(path)': \(reason)"
        case let .io(path, operation, errno): return "\(operation) \(path): \(errnoDescription(errno))"
        case let .invalidRunSpec(reason): return reason
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

func errnoDescription(_ code: Int32) -> String { String(cString: strerror(code)) }
