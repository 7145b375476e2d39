import Synchronization

/// What unpacking one image may cost: data bytes written (holes of sparse
/// entries excluded), entries, and path depth. A 134 KB layer of compressed
/// zeros can expand to gigabytes; a hostile one to millions of entries or a
/// path deeper than any tool can walk. Shared by all of an image's layers;
/// exceeding it is an error that names the layer and the entry.
public final class UnpackBudget: Sendable {
    public let maxBytes: Int64
    public let maxEntries: Int
    public let maxDepth: Int
    private let spent = Mutex<(bytes: Int64, entries: Int)>((0, 0))

    /// The default for an image whose layers are `compressedBytes` as stored:
    /// 32 times that, at least 2 GiB, at most 64 GiB.
    public static let floor: Int64 = 2 << 30
    public static let multiple: Int64 = 32
    public static let hardCap: Int64 = 64 << 30

    public init(maxBytes: Int64, maxEntries: Int = 2_000_000, maxDepth: Int = 256) {
        self.maxBytes = maxBytes
        self.maxEntries = maxEntries
        self.maxDepth = maxDepth
    }

    /// `override` (from --max-image-size or SKIFF_MAX_IMAGE_SIZE) replaces the default, cap included.
    public static func forImage(compressedBytes: Int64, override: Int64? = nil) -> UnpackBudget {
        if let override { return UnpackBudget(maxBytes: override) }
        let scaled = compressedBytes > hardCap / multiple ? hardCap : compressedBytes * multiple
        return UnpackBudget(maxBytes: min(max(scaled, floor), hardCap))
    }

    public var bytesWritten: Int64 { spent.withLock { $0.bytes } }

    /// Counts one entry at `depth` components.
    func admitEntry(depth: Int, layer: String, path: String) throws(ImageError) {
        guard depth <= maxDepth else {
            throw .tooLarge(layer: layer, path: path, reason: "\(depth) path components; at most \(maxDepth)")
        }
        let entries = spent.withLock { state -> Int in
            state.entries += 1
            return state.entries
        }
        guard entries <= maxEntries else {
            throw .tooLarge(layer: layer, path: path, reason: "more than \(maxEntries) entries in the image")
        }
    }

    /// Counts `count` bytes of file data about to be written.
    func spend(_ count: Int, layer: String, path: String) throws(ImageError) {
        let total = spent.withLock { state -> Int64 in
            state.bytes += Int64(count)
            return state.bytes
        }
        guard total <= maxBytes else {
            throw .tooLarge(layer: layer, path: path, reason:
                "the image expands to more than \(maxBytes >> 20) MiB (--max-image-size or SKIFF_MAX_IMAGE_SIZE raises the limit)")
        }
    }

    /// "10G", "512M", "4096K" or plain bytes; nil for anything else.
    public static func parseSize(_ text: String) -> Int64? {
        guard let last = text.last else { return nil }
        let shifts: [Character: Int64] = ["K": 10, "M": 20, "G": 30, "T": 40, "k": 10, "m": 20, "g": 30, "t": 40]
        let (digits, shift) = shifts[last].map { (text.dropLast(), $0) } ?? (Substring(text), 0)
        guard let value = Int64(digits), value > 0, value <= Int64.max >> shift else { return nil }
        return value << shift
    }
}
