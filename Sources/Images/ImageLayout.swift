import Glibc
import Host
import JSON

/// An OCI image layout directory (`oci-layout`, `index.json`, `blobs/`), as
/// umoci, skopeo and buildah write it. Every blob read is checked against the
/// size and digest that named it, so a corrupt or tampered layout is an error
/// naming the blob, never a half-unpacked image.
public struct ImageLayout: Sendable {
    public let path: String

    public init(path: String) throws(ImageError) {
        let marker = path + "/oci-layout"
        guard let data = try? readRegularFile(marker, limit: 1 << 16) else {
            throw .unreadable(path: path, reason: "not an OCI image layout (no oci-layout file)")
        }
        struct Marker: Decodable { let imageLayoutVersion: String }
        guard let version = try? JSONCodec.decode(Marker.self, from: data).imageLayoutVersion, version.hasPrefix("1.") else {
            throw .invalidLayout("\(marker): unsupported or missing imageLayoutVersion")
        }
        self.path = path
    }

    /// The manifest for `tag` (or the only one, when no tag is asked for),
    /// following nested indexes, with an amd64/linux choice among platforms.
    public func manifest(tag: String?) throws(ImageError) -> (descriptor: Descriptor, manifest: ImageManifest) {
        let index: ImageIndex = try decode(path + "/index.json", as: ImageIndex.self)
        var candidates = index.manifests
        if let tag {
            candidates = candidates.filter { $0.referenceName == tag }
            guard !candidates.isEmpty else { throw .noSuchTag(tag, available: index.manifests.compactMap(\.referenceName)) }
        }
        guard let chosen = Self.pick(candidates) else {
            throw .invalidLayout(candidates.isEmpty ? "index.json lists no manifests"
                                 : "index.json lists \(candidates.count) images; name one with :TAG (\(index.manifests.compactMap(\.referenceName).joined(separator: ", ")))")
        }
        return try resolve(chosen, depth: 0)
    }

    private func resolve(_ descriptor: Descriptor, depth: Int) throws(ImageError) -> (descriptor: Descriptor, manifest: ImageManifest) {
        switch descriptor.mediaType {
        case MediaType.manifest, MediaType.dockerManifest:
            return (descriptor, try decode(blob: descriptor, as: ImageManifest.self))
        case MediaType.index, MediaType.dockerManifestList:
            guard depth < 4 else { throw .invalidLayout("indexes nested too deeply") }
            let nested = try decode(blob: descriptor, as: ImageIndex.self)
            guard let chosen = Self.pick(nested.manifests) else {
                throw .invalidLayout("index \(descriptor.digest) has no linux/amd64 image")
            }
            return try resolve(chosen, depth: depth + 1)
        default:
            throw .unsupportedMediaType(descriptor.mediaType)
        }
    }

    /// The only candidate, or the linux/amd64 one among several platforms.
    static func pick(_ candidates: [Descriptor]) -> Descriptor? {
        if candidates.count == 1 { return candidates[0] }
        let native = candidates.filter { $0.platform.map { $0.os == "linux" && $0.architecture == "amd64" } ?? false }
        return native.count == 1 ? native[0] : nil
    }

    public func configuration(of manifest: ImageManifest) throws(ImageError) -> ImageConfiguration {
        try decode(blob: manifest.config, as: ImageConfiguration.self)
    }

    /// The file holding `descriptor`'s blob, after checking its size and digest.
    public func verifiedBlobPath(_ descriptor: Descriptor) throws(ImageError) -> String {
        let path = try blobPath(descriptor)
        try Self.verify(path, against: descriptor)
        return path
    }

    func blobPath(_ descriptor: Descriptor) throws(ImageError) -> String {
        let parts = descriptor.digest.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, parts[0] == "sha256", parts[1].count == 64,
              parts[1].allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
            throw .invalidLayout("unsupported digest '\(descriptor.digest)' (sha256 only)")
        }
        return "\(path)/blobs/sha256/\(parts[1])"
    }

    /// Streams the file through SHA-256 and compares size and digest.
    static func verify(_ path: String, against descriptor: Descriptor) throws(ImageError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw .unreadable(path: path, reason: "blob \(descriptor.digest) is missing") }
        defer { close(fd) }
        var hasher = SHA256()
        var size: Int64 = 0
        // No larger than the blob (and one byte to see it is not longer): a
        // 1 MiB buffer zeroed for a blob of a few hundred bytes is 256 page faults.
        var chunk = [UInt8](repeating: 0, count: Int(clamping: min(max(descriptor.size, 4095) + 1, 1 << 20)))
        while size <= descriptor.size {
            let count = chunk.withUnsafeMutableBytes { space in retryingInterrupts { read(fd, space.baseAddress, space.count) } }
            guard count >= 0 else { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
            guard count > 0 else { break }
            size += Int64(count)
            if size <= descriptor.size { chunk.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<count])) } }
        }
        try check(size: size, digest: hasher.finalize(), against: descriptor)
    }

    /// A blob's size, then its SHA-256, against what its descriptor says.
    static func check(size: Int64, digest: @autoclosure () -> String, against descriptor: Descriptor) throws(ImageError) {
        guard size == descriptor.size else { throw .sizeMismatch(blob: descriptor.digest, expected: descriptor.size, actual: size) }
        let actual = digest()
        guard "sha256:" + actual == descriptor.digest else { throw .digestMismatch(blob: descriptor.digest, actual: actual) }
    }

    /// A JSON blob, read once: the bytes checked against the descriptor are
    /// the bytes decoded (no second read a changed file could slip into).
    private func decode<T: Decodable>(blob descriptor: Descriptor, as type: T.Type) throws(ImageError) -> T {
        guard descriptor.size <= Self.documentLimit else { throw .invalidLayout("\(descriptor.digest): a \(descriptor.size)-byte JSON document") }
        let path = try blobPath(descriptor)
        let bytes = try Self.readDocument(path, missing: "blob \(descriptor.digest) is missing")
        try Self.check(size: Int64(bytes.count), digest: SHA256.hex(bytes), against: descriptor)
        return try Self.decode(bytes, from: path, as: type)
    }

    /// JSON documents are read whole but bounded (index.json has no
    /// descriptor saying its size): a FIFO or a huge file is refused.
    static let documentLimit = 16 << 20

    private func decode<T: Decodable>(_ file: String, as type: T.Type) throws(ImageError) -> T {
        try Self.decode(try Self.readDocument(file), from: file, as: type)
    }

    static func readDocument(_ file: String, missing: String? = nil) throws(ImageError) -> [UInt8] {
        do { return try readRegularFile(file, limit: documentLimit) } catch {
            switch error {
            case let .unreadable(errno): throw .unreadable(path: file, reason: errno == ENOENT ? missing ?? String(cString: strerror(errno)) : String(cString: strerror(errno)))
            case let .notRegularFile(kind): throw .unreadable(path: file, reason: "not a regular file (\(kind))")
            case let .tooLarge(size): throw .invalidLayout("\(file): \(size) bytes, more than a JSON document may have (\(documentLimit))")
            }
        }
    }

    static func decode<T: Decodable>(_ bytes: [UInt8], from file: String, as type: T.Type) throws(ImageError) -> T {
        do { return try JSONCodec.decode(type, from: bytes) } catch {
            throw .invalidLayout("\(file): \(error)")
        }
    }
}
