import CNettle

/// SHA-256 as Skiff uses it: streamed (a layer of any size is hashed as it is
/// read) and rendered as 64 lowercase hex digits, the form OCI digests,
/// snapshot checksums and cache keys are written in. The hashing is
/// Nettle's (with the CPU's SHA extensions where it has them), not Skiff's
/// own. It replaced swift-crypto, whose Swift layer imports FoundationEssentials
/// and so linked it into `skiff`, with Dispatch and the concurrency runtime
/// behind it: pages the loader relocates at every start (issue 11).
public struct SHA256: Sendable {
    private var context = sha256_ctx()

    public init() {
        nettle_sha256_init(&context)
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        nettle_sha256_update(&context, bytes.count, base.assumingMemoryBound(to: UInt8.self))
    }

    public mutating func update<Bytes: Collection<UInt8>>(_ bytes: Bytes) {
        if bytes.withContiguousStorageIfAvailable({ update(UnsafeRawBufferPointer($0)) }) == nil {
            Array(bytes).withUnsafeBytes { update($0) }
        }
    }

    /// The digest as 64 lowercase hex digits. Nettle starts the context
    /// afresh afterwards, so the hasher then hashes a new message.
    public mutating func finalize() -> String {
        var digest = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_SIZE))
        nettle_sha256_digest(&context, digest.count, &digest)
        return lowercaseHex(digest)
    }

    public static func hex<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String {
        var hasher = SHA256()
        hasher.update(bytes)
        return hasher.finalize()
    }
}
