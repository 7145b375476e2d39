import Crypto

/// SHA-256 as Skiff uses it: streamed (a layer of any size is hashed as it is
/// read) and rendered as 64 lowercase hex digits, the form OCI digests,
/// snapshot checksums and cache keys are written in. The hashing is
/// swift-crypto's (BoringSSL on Linux), not Skiff's own.
public struct SHA256: Sendable {
    private var hasher = Crypto.SHA256()

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        hasher.update(bufferPointer: bytes)
    }

    public mutating func update<Bytes: Collection<UInt8>>(_ bytes: Bytes) {
        if bytes.withContiguousStorageIfAvailable({ update(UnsafeRawBufferPointer($0)) }) == nil {
            Array(bytes).withUnsafeBytes { update($0) }
        }
    }

    /// The digest as 64 lowercase hex digits. The hasher is spent afterwards,
    /// as the one it replaced was: start a new one for the next digest.
    public mutating func finalize() -> String {
        lowercaseHex(hasher.finalize())
    }

    public static func hex<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String {
        var hasher = SHA256()
        hasher.update(bytes)
        return hasher.finalize()
    }
}
