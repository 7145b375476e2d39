/// The parts of the OCI image spec (image-spec v1.1) Skiff reads. Docker's
/// media types are accepted alongside, since `docker save` and registries use them.
public enum MediaType {
    public static let index = "application/vnd.oci.image.index.v1+json"
    public static let manifest = "application/vnd.oci.image.manifest.v1+json"
    public static let config = "application/vnd.oci.image.config.v1+json"
    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    public static let dockerConfig = "application/vnd.docker.container.image.v1+json"

    /// Layer media types and how their blobs are compressed (libarchive detects it anyway).
    public static let layers: Set<String> = [
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    ]
}

/// A content descriptor: what a blob is, its digest and size.
public struct Descriptor: Codable, Equatable, Sendable {
    public var mediaType: String
    public var digest: String
    public var size: Int64
    public var annotations: [String: String]?
    public var platform: Platform?

    public struct Platform: Codable, Equatable, Sendable {
        public var architecture: String
        public var os: String
    }

    /// The tag an OCI layout's index gives this manifest, if any.
    public var referenceName: String? { annotations?["org.opencontainers.image.ref.name"] }

    public init(mediaType: String, digest: String, size: Int64, annotations: [String: String]? = nil, platform: Platform? = nil) {
        (self.mediaType, self.digest, self.size, self.annotations, self.platform) = (mediaType, digest, size, annotations, platform)
    }
}

public struct ImageIndex: Codable, Sendable {
    public var schemaVersion: Int
    public var manifests: [Descriptor]
    public init(schemaVersion: Int, manifests: [Descriptor]) { (self.schemaVersion, self.manifests) = (schemaVersion, manifests) }
}

public struct ImageManifest: Codable, Sendable {
    public var schemaVersion: Int
    public var mediaType: String?
    public var config: Descriptor
    public var layers: [Descriptor]
    public init(schemaVersion: Int, mediaType: String?, config: Descriptor, layers: [Descriptor]) {
        (self.schemaVersion, self.mediaType, self.config, self.layers) = (schemaVersion, mediaType, config, layers)
    }
}

/// The image configuration's run-time defaults (`config` in the JSON).
public struct ImageConfiguration: Codable, Equatable, Sendable {
    public struct RunDefaults: Codable, Equatable, Sendable {
        public var User: String?
        public var Env: [String]?
        public var Entrypoint: [String]?
        public var Cmd: [String]?
        public var WorkingDir: String?
        public init() {}
    }
    /// The uncompressed layers' digests, in order (docker's archives are checked against them).
    public struct RootFS: Codable, Equatable, Sendable {
        public var type: String
        public var diff_ids: [String]
        public init(type: String, diff_ids: [String]) { (self.type, self.diff_ids) = (type, diff_ids) }
    }
    public var architecture: String?
    public var os: String?
    public var config: RunDefaults?
    public var rootfs: RootFS?

    public init(architecture: String? = nil, os: String? = nil, config: RunDefaults? = nil, rootfs: RootFS? = nil) {
        (self.architecture, self.os, self.config, self.rootfs) = (architecture, os, config, rootfs)
    }
}
