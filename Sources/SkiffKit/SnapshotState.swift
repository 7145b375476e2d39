import Hypervisor
import Images

/// A snapshot's state file: everything a restore needs besides guest memory.
///
/// Layout, little-endian: the magic "SKIFFSNP", a UInt32 format version, then
/// sections (a 4-byte ASCII tag, a UInt64 length, the bytes), and last a "SUM "
/// section holding the SHA-256 of everything before it. Every length and the
/// checksum are checked before any section is used, and a snapshot is only
/// restored where it fits: same format version, architecture and host kind.
public struct SnapshotState: Equatable, Sendable {
    public static let formatVersion: UInt32 = 1
    static let magic = Array("SKIFFSNP".utf8)

    public struct MemoryRegion: Equatable, Sendable {
        public var guestAddress: UInt64
        public var size: Int
        public init(guestAddress: UInt64, size: Int) { self.guestAddress = guestAddress; self.size = size }
    }

    public var architecture = "x86_64"
    public var hostKind: HostKind
    public var memory: [MemoryRegion]
    /// The CPUID every vCPU had: a restore sets the same before any state.
    public var cpuid: [CPUIDEntry]
    /// The hypervisor's VM-wide state (opaque to Skiff).
    public var machine: [UInt8]
    /// Each vCPU's state, in vCPU id order (opaque to Skiff).
    public var vcpus: [[UInt8]]

    public init(hostKind: HostKind, memory: [MemoryRegion], cpuid: [CPUIDEntry], machine: [UInt8], vcpus: [[UInt8]]) {
        self.hostKind = hostKind; self.memory = memory; self.cpuid = cpuid; self.machine = machine; self.vcpus = vcpus
    }

    /// The file's bytes.
    public func encoded() -> [UInt8] {
        var out = Self.magic
        append(&out, Self.formatVersion)
        func section(_ tag: String, _ bytes: [UInt8]) {
            out += Array(tag.utf8)
            append(&out, UInt64(bytes.count))
            out += bytes
        }
        let layout = memory.map { "\($0.guestAddress):\($0.size)" }.joined(separator: ",")
        section("META", Array("architecture=\(architecture)\nhost=\(hostKind.rawValue)\nmemory=\(layout)\nvcpus=\(vcpus.count)\n".utf8))
        var cpuidBytes: [UInt8] = []
        for entry in cpuid {
            for value in [entry.function, entry.index, entry.flags, entry.eax, entry.ebx, entry.ecx, entry.edx] { append(&cpuidBytes, value) }
        }
        section("CPID", cpuidBytes)
        section("VMST", machine)
        for (index, state) in vcpus.enumerated() { section(Self.vcpuTag(index), state) }
        var hasher = SHA256()
        hasher.update(out)
        section("SUM ", Array(hasher.finalize().utf8))
        return out
    }

    /// Parses and checks a state file; `host` is the kind of host restoring it.
    public static func decode(_ bytes: [UInt8], restoringOn host: HostKind) throws(SnapshotError) -> SnapshotState {
        guard bytes.count >= 12, Array(bytes[0..<8]) == magic else { throw .invalid("not a Skiff snapshot (no SKIFFSNP magic)") }
        let version = read(UInt32.self, bytes, at: 8)
        guard version == formatVersion else {
            throw .mismatch("snapshot format version \(version); this skiff reads version \(formatVersion)")
        }
        var sections: [(tag: String, range: Range<Int>)] = []
        var offset = 12
        while offset < bytes.count {
            guard bytes.count - offset >= 12 else { throw .invalid("truncated at byte \(offset)") }
            let tag = String(decoding: bytes[offset..<offset + 4], as: UTF8.self)
            let length = read(UInt64.self, bytes, at: offset + 4)
            guard length <= UInt64(bytes.count - offset - 12) else {
                throw .invalid("section '\(tag)' claims \(length) bytes; the file has \(bytes.count - offset - 12) left")
            }
            sections.append((tag, offset + 12..<offset + 12 + Int(length)))
            offset += 12 + Int(length)
        }
        guard let sum = sections.last, sum.tag == "SUM " else { throw .invalid("truncated: no checksum at the end") }
        var hasher = SHA256()
        hasher.update(bytes[..<(sum.range.lowerBound - 12)])
        guard Array(bytes[sum.range]) == Array(hasher.finalize().utf8) else { throw .invalid("checksum mismatch: the file is damaged") }

        func section(_ tag: String) throws(SnapshotError) -> [UInt8] {
            guard let found = sections.first(where: { $0.tag == tag }) else { throw .invalid("no '\(tag)' section") }
            return Array(bytes[found.range])
        }
        var meta: [String: String] = [:]
        for line in String(decoding: try section("META"), as: UTF8.self).split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            meta[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        guard meta["architecture"] == "x86_64" else { throw .mismatch("snapshot of a \(meta["architecture"] ?? "?") machine; this is x86_64") }
        guard let hostName = meta["host"], let kind = HostKind(rawValue: hostName) else { throw .invalid("no host kind") }
        guard kind == host else { throw .mismatch("snapshot taken on \(kind.rawValue); this host is \(host.rawValue)") }
        var memory: [MemoryRegion] = []
        for item in (meta["memory"] ?? "").split(separator: ",") {
            let parts = item.split(separator: ":")
            guard parts.count == 2, let address = UInt64(parts[0]), let size = Int(parts[1]), size > 0 else {
                throw .invalid("bad memory layout '\(meta["memory"] ?? "")'")
            }
            memory.append(MemoryRegion(guestAddress: address, size: size))
        }
        guard !memory.isEmpty, let count = Int(meta["vcpus"] ?? ""), (1...32).contains(count) else { throw .invalid("bad memory or vCPU count") }
        let cpuidBytes = try section("CPID")
        guard cpuidBytes.count % 28 == 0 else { throw .invalid("CPUID section of \(cpuidBytes.count) bytes") }
        let cpuid = stride(from: 0, to: cpuidBytes.count, by: 28).map { base in
            let value = { (index: Int) in read(UInt32.self, cpuidBytes, at: base + 4 * index) }
            return CPUIDEntry(function: value(0), index: value(1), flags: value(2), eax: value(3), ebx: value(4), ecx: value(5), edx: value(6))
        }
        var vcpus: [[UInt8]] = []
        for index in 0..<count { vcpus.append(try section(vcpuTag(index))) }
        guard sections.filter({ $0.tag.hasPrefix("C") && $0.tag != "CPID" }).count == count else {
            throw .invalid("\(count) vCPUs announced, a different number saved")
        }
        return SnapshotState(hostKind: kind, memory: memory, cpuid: cpuid, machine: try section("VMST"), vcpus: vcpus)
    }

    /// "C000", "C001", ...: one section per vCPU.
    static func vcpuTag(_ index: Int) -> String { "C" + String(index).leftPadded(3) }

    private func append<T: FixedWidthInteger>(_ out: inout [UInt8], _ value: T) {
        withUnsafeBytes(of: value.littleEndian) { out += $0 }
    }

    private static func read<T: FixedWidthInteger>(_ type: T.Type, _ bytes: [UInt8], at offset: Int) -> T {
        var value: T = 0
        for index in 0..<MemoryLayout<T>.size { value |= T(bytes[offset + index]) << (8 * index) }
        return value
    }
}

/// Why a snapshot cannot be restored: damaged, or made for another host or format.
public enum SnapshotError: Error, Equatable, CustomStringConvertible {
    case invalid(String)
    case mismatch(String)

    public var description: String {
        switch self {
        case let .invalid(reason): return "not a usable snapshot: \(reason)"
        case let .mismatch(reason): return "snapshot does not fit: \(reason)"
        }
    }
}
