import Foundation
import Images

/// Writes an OCI image layout by hand: blobs named by their digests, a
/// manifest, a config and an index with tags.
public struct LayoutBuilder {
    public let path: String

    public init(_ path: String) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: path + "/blobs/sha256", withIntermediateDirectories: true)
        try #"{"imageLayoutVersion":"1.0.0"}"#.write(toFile: path + "/oci-layout", atomically: true, encoding: .utf8)
    }

    public func blob(_ bytes: [UInt8], mediaType: String) throws -> Descriptor {
        let digest = SHA256.hex(bytes)
        try Data(bytes).write(to: URL(fileURLWithPath: "\(path)/blobs/sha256/\(digest)"))
        return Descriptor(mediaType: mediaType, digest: "sha256:" + digest, size: Int64(bytes.count))
    }

    public func json<T: Encodable>(_ value: T, mediaType: String) throws -> Descriptor {
        try blob(Array(try JSONEncoder().encode(value)), mediaType: mediaType)
    }

    public func index(_ manifests: [Descriptor]) throws {
        try JSONEncoder().encode(ImageIndex(schemaVersion: 2, manifests: manifests)).write(to: URL(fileURLWithPath: path + "/index.json"))
    }

    /// Writes an amd64/linux config with `defaults`, a manifest over `layers`,
    /// and an index naming that manifest (with `tag` as its ref.name, if given).
    @discardableResult
    public func image(layers: [Descriptor], defaults: ImageConfiguration.RunDefaults, tag: String? = nil) throws -> Descriptor {
        let config = try json(ImageConfiguration(architecture: "amd64", os: "linux", config: defaults), mediaType: MediaType.config)
        var manifest = try json(ImageManifest(schemaVersion: 2, mediaType: MediaType.manifest, config: config, layers: layers),
                                mediaType: MediaType.manifest)
        if let tag { manifest.annotations = ["org.opencontainers.image.ref.name": tag] }
        try index([manifest])
        return manifest
    }
}
