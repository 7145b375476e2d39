/// Writes a cpio archive in the "newc" format the kernel unpacks into its
/// initramfs. The VMM appends one to the guest's initrd to hand files (the
/// `skiff run` spec) to init without a disk or the 2 KiB command line: the
/// kernel unpacks concatenated archives in order, each starting 4-byte aligned.
public struct InitramfsArchive: Sendable {
    public private(set) var bytes: [UInt8] = []
    private var inode: UInt32 = 1

    public init() {}

    public mutating func directory(_ path: String, mode: UInt32 = 0o755) {
        entry(path, mode: 0o040000 | (mode & 0o7777), data: [], links: 2)
    }

    public mutating func file(_ path: String, _ data: [UInt8], mode: UInt32 = 0o644) {
        entry(path, mode: 0o100000 | (mode & 0o7777), data: data, links: 1)
    }

    /// The archive with its trailer; nothing may be added after.
    public func finished() -> [UInt8] {
        var copy = self
        copy.entry("TRAILER!!!", mode: 0, data: [], links: 1)
        return copy.bytes
    }

    /// `base` padded with zeros to a 4-byte boundary, then `appendix`.
    public static func concatenate(_ base: [UInt8], _ appendix: [UInt8]) -> [UInt8] {
        guard !appendix.isEmpty else { return base }
        return base + [UInt8](repeating: 0, count: (4 - base.count % 4) % 4) + appendix
    }

    private mutating func entry(_ path: String, mode: UInt32, data: [UInt8], links: UInt32) {
        var name = Array(path.drop(while: { $0 == "/" }).utf8)
        name.append(0)
        let fields: [UInt32] = [inode, mode, 0, 0, links, 0, UInt32(data.count), 0, 0, 0, 0, UInt32(name.count), 0]
        inode += 1
        bytes += Array("070701".utf8)
        for field in fields {
            let hex = String(field, radix: 16, uppercase: false)
            bytes += Array((String(repeating: "0", count: 8 - hex.count) + hex).utf8)
        }
        bytes += name
        pad()
        bytes += data
        pad()
    }

    private mutating func pad() {
        bytes += [UInt8](repeating: 0, count: (4 - bytes.count % 4) % 4)
    }
}
