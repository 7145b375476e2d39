import CArchiveLazy
import Glibc
import Host
import JSON

/// A `docker save` archive: `manifest.json` names the config and the layer
/// tars inside the archive (in both the classic layout and the OCI-shaped one
/// docker 25 writes). The image's identity is its config's digest (docker's
/// image ID), and each layer is checked against the config's `diff_ids`, the
/// digests of the uncompressed layers.
public struct DockerArchive: Sendable {
    public let path: String

    struct ManifestEntry: Decodable {
        let Config: String
        let RepoTags: [String]?
        let Layers: [String]
    }

    /// What the archive holds, read without extracting layers.
    public struct Contents: Sendable {
        public let imageID: String
        public let configuration: ImageConfiguration
        public let layerMembers: [String]
        public let repoTags: [String]
    }

    public init(path: String) { self.path = path }

    /// Reads manifest.json and the config it names (two passes over the
    /// archive, each skipping the layers' data).
    public func contents() throws(ImageError) -> Contents {
        let manifestData = try members(["manifest.json"], limit: 1 << 20)["manifest.json"]
        guard let manifestData else { throw .invalidLayout("\(path): no manifest.json (is this a docker save archive?)") }
        let entries: [ManifestEntry]
        do { entries = try JSONCodec.decode([ManifestEntry].self, from: manifestData) } catch {
            throw .invalidLayout("\(path): manifest.json: \(error)")
        }
        guard entries.count == 1, let entry = entries.first else {
            throw .invalidLayout("\(path) holds \(entries.count) images; save one image per archive")
        }
        let configName = Self.normalize(entry.Config)
        guard let configData = try members([configName], limit: 16 << 20)[configName] else {
            throw .invalidLayout("\(path): manifest.json names config \(entry.Config), which the archive lacks")
        }
        var hasher = SHA256()
        hasher.update(configData)
        let configuration: ImageConfiguration
        do { configuration = try JSONCodec.decode(ImageConfiguration.self, from: configData) } catch {
            throw .invalidLayout("\(path): config \(entry.Config): \(error)")
        }
        let diffIDs = configuration.rootfs?.diff_ids ?? []
        guard diffIDs.count == entry.Layers.count else {
            throw .invalidLayout("\(path): manifest.json lists \(entry.Layers.count) layers, the config's rootfs \(diffIDs.count)")
        }
        return Contents(imageID: "sha256:" + hasher.finalize(), configuration: configuration,
                        layerMembers: entry.Layers.map(Self.normalize), repoTags: entry.RepoTags ?? [])
    }

    /// Copies the layer tars out into `directory` (one pass) and checks each
    /// against its diff_id. Returns their paths, in order.
    public func extractLayers(_ contents: Contents, into directory: String) throws(ImageError) -> [String] {
        let wanted = Dictionary(contents.layerMembers.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        var written = Set<Int>()
        try forEachMember { name, archive throws(ImageError) in
            guard let index = wanted[name], !written.contains(index) else { return }
            let target = "\(directory)/layer-\(index).tar"
            let fd = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw .io(path: target, operation: "create", errno: errno) }
            defer { close(fd) }
            var hasher = SHA256()
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let count = buffer.withUnsafeMutableBytes { skiff_archive_read_data(archive, $0.baseAddress, $0.count) }
                if count == 0 { break }
                guard count > 0 else { throw .invalidArchive(layer: name, reason: archiveError(archive)) }
                let failure: Int32? = buffer.withUnsafeBytes { bytes in
                    let chunk = UnsafeRawBufferPointer(rebasing: bytes[0..<count])
                    hasher.update(chunk)
                    return writeAll(fd, UnsafeRawBufferPointer(chunk))
                }
                if let failure { throw .io(path: target, operation: "write", errno: failure) }
            }
            let digest = "sha256:" + hasher.finalize()
            let expected = contents.configuration.rootfs?.diff_ids[index] ?? ""
            guard digest == expected else { throw .digestMismatch(blob: "\(name) (diff_id \(expected))", actual: String(digest.dropFirst(7))) }
            written.insert(index)
        }
        if let missing = contents.layerMembers.indices.first(where: { !written.contains($0) }) {
            throw .invalidLayout("\(path): manifest.json names layer \(contents.layerMembers[missing]), which the archive lacks")
        }
        return contents.layerMembers.indices.map { "\(directory)/layer-\($0).tar" }
    }

    /// The data of the named members (each at most `limit` bytes).
    func members(_ names: Set<String>, limit: Int) throws(ImageError) -> [String: [UInt8]] {
        var found: [String: [UInt8]] = [:]
        try forEachMember { name, archive throws(ImageError) in
            guard names.contains(name), found[name] == nil else { return }
            var data: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let count = buffer.withUnsafeMutableBytes { skiff_archive_read_data(archive, $0.baseAddress, $0.count) }
                if count == 0 { break }
                guard count > 0 else { throw .invalidArchive(layer: name, reason: archiveError(archive)) }
                data += buffer[0..<count]
                guard data.count <= limit else { throw .invalidLayout("\(path): \(name) is larger than \(limit) bytes") }
            }
            found[name] = data
        }
        return found
    }

    /// Walks the archive's members; data a body does not read is skipped.
    private func forEachMember(_ body: (String, OpaquePointer) throws(ImageError) -> Void) throws(ImageError) {
        let reader = try ArchiveReader(path: path) { .unreadable(path: path, reason: $0) }
        try reader.forEachEntry(failure: { .unreadable(path: path, reason: "not a docker save archive: \($0)") }) { entry throws(ImageError) in
            guard let raw = skiff_archive_entry_pathname(entry) else {
                throw .unreadable(path: path, reason: "not a docker save archive: a member without a name")
            }
            try body(Self.normalize(String(cString: raw)), reader.handle)
        }
    }

    static func normalize(_ name: String) -> String {
        var name = Substring(name)
        while name.hasPrefix("./") { name = name.dropFirst(2) }
        while name.hasPrefix("/") { name = name.dropFirst() }
        return String(name)
    }
}
