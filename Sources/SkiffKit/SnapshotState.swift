import Devices
import Hypervisor
import Images

/// A snapshot's state file: everything a restore needs besides guest memory.
///
/// Layout, little-endian: the magic "SKIFFSNP", a UInt32 format version, then
/// sections (a 4-byte ASCII tag, a UInt64 length, the bytes), and last a "SUM "
/// section holding the SHA-256 of everything before it. Every length and the
/// checksum are checked before any section is used, and a snapshot is only
/// restored where it fits: same format version, architecture and host kind
/// (and, checked by the restore, the same CPU identity for every vCPU).
///
/// Sections: META (text: architecture, host kind, memory layout, vCPU count,
/// and provenance lines for people), CONF (the machine: memory, CPUs,
/// compatibility profile, devices and their host backends), VMST (the
/// hypervisor's VM-wide state: interrupt controllers, PIT, clock), then per
/// vCPU N "I<N>" (its CPU identity, the platform's bytes: x86's CPUID table)
/// and "C<N>" (its state, the hypervisor's bytes), per device N "D<N>".
/// Nothing here depends on the architecture: the platform reads the
/// identity and the hypervisor the states.
public struct SnapshotState: Equatable, Sendable {
    public static let formatVersion: UInt32 = 3
    static let magic = Array("SKIFFSNP".utf8)
    /// Big enough for 32 vCPUs' XSAVE areas and every device, small enough
    /// that a hostile file cannot make a restore allocate without bound.
    public static let maximumFileSize = 64 << 20

    public struct MemoryRegion: Equatable, Sendable {
        public var guestAddress: UInt64
        public var size: Int
        public init(guestAddress: UInt64, size: Int) { self.guestAddress = guestAddress; self.size = size }
    }

    /// The machine a restore re-creates around the saved state.
    public struct Machine: Equatable, Sendable {
        public var memoryMiB: Int
        public var cpus: Int
        /// `CompatibilityProfile.name`.
        public var compatibility: String
        public var disks: [DiskConfiguration]
        /// TAP name and MAC of each network device.
        public var networks: [(tap: String, mac: MACAddress)]
        public var entropyDevice: Bool
        public var hiddenCPUFeatures: [String]
        /// The vsock device (its guest CID is guest-visible; its socket path
        /// is where the saving process listened, which a restore may change).
        public var vsock: VsockConfiguration?

        public init(memoryMiB: Int, cpus: Int, compatibility: String, disks: [DiskConfiguration],
                    networks: [(tap: String, mac: MACAddress)], entropyDevice: Bool, hiddenCPUFeatures: [String] = [],
                    vsock: VsockConfiguration? = nil) {
            self.memoryMiB = memoryMiB; self.cpus = cpus; self.compatibility = compatibility
            self.disks = disks; self.networks = networks; self.entropyDevice = entropyDevice
            self.hiddenCPUFeatures = hiddenCPUFeatures; self.vsock = vsock
        }

        public static func == (a: Machine, b: Machine) -> Bool {
            a.memoryMiB == b.memoryMiB && a.cpus == b.cpus && a.compatibility == b.compatibility && a.disks == b.disks
                && a.networks.map(\.tap) == b.networks.map(\.tap) && a.networks.map(\.mac) == b.networks.map(\.mac)
                && a.entropyDevice == b.entropyDevice && a.hiddenCPUFeatures == b.hiddenCPUFeatures && a.vsock == b.vsock
        }
    }

    public struct VCPU: Equatable, Sendable {
        /// Opaque to the machine: the platform compares and sets it.
        public var identity: CPUIdentity
        /// Opaque to Skiff: the hypervisor reads it back.
        public var state: [UInt8]
        public init(identity: CPUIdentity, state: [UInt8]) { self.identity = identity; self.state = state }
    }

    /// The platform's name for it (`GuestPlatform.architecture`).
    public var architecture: String
    public var hostKind: HostKind
    public var memory: [MemoryRegion]
    public var machine: Machine
    /// The hypervisor's VM-wide state (opaque to Skiff).
    public var machineState: [UInt8]
    public var vcpus: [VCPU]
    /// Each device's saved state, by the name the machine gives it.
    public var devices: [(name: String, state: [UInt8])]
    /// Lines for people (`skiff restore --info`): kernel, command line, when.
    public var provenance: [String: String] = [:]

    public init(architecture: String, hostKind: HostKind, memory: [MemoryRegion], machine: Machine, machineState: [UInt8],
                vcpus: [VCPU], devices: [(name: String, state: [UInt8])]) {
        self.architecture = architecture; self.hostKind = hostKind; self.memory = memory; self.machine = machine; self.machineState = machineState
        self.vcpus = vcpus; self.devices = devices
    }

    public static func == (a: SnapshotState, b: SnapshotState) -> Bool {
        a.architecture == b.architecture && a.hostKind == b.hostKind && a.memory == b.memory && a.machine == b.machine
            && a.machineState == b.machineState && a.vcpus == b.vcpus && a.provenance == b.provenance
            && a.devices.map(\.name) == b.devices.map(\.name) && a.devices.map(\.state) == b.devices.map(\.state)
    }

    /// Guest memory in bytes, as the memory file must hold it.
    public var memorySize: Int { memory.reduce(0) { $0 + $1.size } }

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
        var meta = "architecture=\(architecture)\nhost=\(hostKind.rawValue)\nmemory=\(layout)\nvcpus=\(vcpus.count)\ndevices=\(devices.count)\n"
        for key in provenance.keys.sorted() {
            meta += "\(key)=\(provenance[key]!.split(whereSeparator: \.isNewline).joined(separator: " "))\n"
        }
        section("META", Array(meta.utf8))
        section("CONF", encodeMachine())
        section("VMST", machineState)
        for (index, vcpu) in vcpus.enumerated() {
            section(Self.tag("I", index), vcpu.identity.bytes)
            section(Self.tag("C", index), vcpu.state)
        }
        for (index, device) in devices.enumerated() {
            var writer = StateWriter()
            writer.put(bytes: Array(device.name.utf8))
            writer.put(bytes: device.state)
            section(Self.tag("D", index), writer.bytes)
        }
        return Self.sealed(out)
    }

    /// `sections` (the magic, the version and every section but the last)
    /// with the "SUM " section that ends a state file: the SHA-256 of all
    /// before it, in hex. The snapshot fuzzer seals its inputs so.
    public static func sealed(_ sections: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(sections)
        let sum = Array(hasher.finalize().utf8)
        var out = sections + Array("SUM ".utf8)
        withUnsafeBytes(of: UInt64(sum.count).littleEndian) { out += $0 }
        return out + sum
    }

    private func encodeMachine() -> [UInt8] {
        var out = StateWriter()
        out.put(UInt32(machine.memoryMiB))
        out.put(UInt32(machine.cpus))
        out.put(bytes: Array(machine.compatibility.utf8))
        out.put(UInt32(machine.disks.count))
        for disk in machine.disks {
            out.put(bytes: Array(disk.path.utf8))
            out.put(disk.readOnly)
        }
        out.put(UInt32(machine.networks.count))
        for network in machine.networks {
            out.put(bytes: Array(network.tap.utf8))
            out.put(bytes: network.mac.bytes)
        }
        out.put(machine.entropyDevice)
        out.put(UInt32(machine.hiddenCPUFeatures.count))
        for name in machine.hiddenCPUFeatures { out.put(bytes: Array(name.utf8)) }
        out.put(machine.vsock != nil)
        if let vsock = machine.vsock {
            out.put(vsock.guestCID)
            out.put(bytes: Array(vsock.path.utf8))
        }
        return out.bytes
    }

    private static func decodeMachine(_ bytes: [UInt8]) throws(SnapshotError) -> Machine {
        var input = StateReader(bytes, what: "machine configuration")
        do {
            let memoryMiB = Int(try input.get(UInt32.self))
            let cpus = Int(try input.get(UInt32.self))
            let compatibility = String(decoding: try input.getBytes(limit: 64), as: UTF8.self)
            var disks: [DiskConfiguration] = []
            let diskCount = Int(try input.get(UInt32.self))
            guard diskCount <= 32 else { throw DeviceStateError("\(diskCount) disks") }
            for _ in 0..<diskCount {
                let path = String(decoding: try input.getBytes(limit: 4096), as: UTF8.self)
                disks.append(DiskConfiguration(path: path, readOnly: try input.getBool()))
            }
            var networks: [(tap: String, mac: MACAddress)] = []
            let networkCount = Int(try input.get(UInt32.self))
            guard networkCount <= 32 else { throw DeviceStateError("\(networkCount) networks") }
            for _ in 0..<networkCount {
                let tap = String(decoding: try input.getBytes(limit: 16), as: UTF8.self)
                let bytes = try input.getBytes(limit: 6)
                guard let mac = MACAddress(bytes: bytes) else { throw DeviceStateError("a bad MAC address \(bytes)") }
                networks.append((tap, mac))
            }
            let entropy = try input.getBool()
            let hiddenCount = Int(try input.get(UInt32.self))
            guard hiddenCount <= 16 else { throw DeviceStateError("\(hiddenCount) hidden CPU features") }
            var hidden: [String] = []
            for _ in 0..<hiddenCount { hidden.append(String(decoding: try input.getBytes(limit: 32), as: UTF8.self)) }
            var vsock: VsockConfiguration?
            if try input.getBool() {
                let cid: UInt64 = try input.get()
                vsock = VsockConfiguration(guestCID: cid, path: String(decoding: try input.getBytes(limit: 4096), as: UTF8.self))
                do { try vsock?.validate() } catch { throw DeviceStateError("vsock: \(error)") }
            }
            try input.finish()
            guard MachineConfiguration.memoryRange.contains(memoryMiB), MachineConfiguration.cpuRange.contains(cpus) else {
                throw DeviceStateError("\(memoryMiB) MiB and \(cpus) vCPUs")
            }
            return Machine(memoryMiB: memoryMiB, cpus: cpus, compatibility: compatibility, disks: disks,
                           networks: networks, entropyDevice: entropy, hiddenCPUFeatures: hidden, vsock: vsock)
        } catch {
            throw .invalid("bad machine configuration: \(error)")
        }
    }

    /// Parses and checks a state file; `host` is the kind of host restoring
    /// it, and `architecture` the platform's.
    public static func decode(_ bytes: [UInt8], restoringOn host: HostKind, architecture: String) throws(SnapshotError) -> SnapshotState {
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
        guard meta["architecture"] == architecture else { throw .mismatch("the snapshot's architecture is \(meta["architecture"] ?? "not named"); this machine's is \(architecture)") }
        guard let hostName = meta["host"], let kind = HostKind(rawValue: hostName) else { throw .invalid("no host kind") }
        guard kind == host else { throw .mismatch("snapshot taken on \(kind.rawValue); this host is \(host.rawValue)") }
        var memory: [MemoryRegion] = []
        for item in (meta["memory"] ?? "").split(separator: ",") {
            let parts = item.split(separator: ":")
            guard parts.count == 2, let address = UInt64(parts[0]), let size = Int(parts[1]), size > 0, size % 4096 == 0 else {
                throw .invalid("bad memory layout '\(meta["memory"] ?? "")'")
            }
            memory.append(MemoryRegion(guestAddress: address, size: size))
        }
        guard !memory.isEmpty, let count = Int(meta["vcpus"] ?? ""), MachineConfiguration.cpuRange.contains(count),
              let deviceCount = Int(meta["devices"] ?? ""), (0...64).contains(deviceCount) else {
            throw .invalid("bad memory, vCPU or device count")
        }
        let machine = try decodeMachine(try section("CONF"))
        guard machine.cpus == count, machine.memoryMiB << 20 == memory.reduce(0, { $0 + $1.size }) else {
            throw .invalid("the machine configuration disagrees with the saved memory and vCPUs")
        }
        var vcpus: [VCPU] = []
        for index in 0..<count {
            // Its encoding is the platform's, which checks it on restore
            // (GuestPlatform.mismatch); every CPU has some identity.
            let identity = try section(tag("I", index))
            guard !identity.isEmpty else { throw .invalid("vCPU \(index) has an empty CPU identity section") }
            vcpus.append(VCPU(identity: CPUIdentity(bytes: identity), state: try section(tag("C", index))))
        }
        var devices: [(name: String, state: [UInt8])] = []
        for index in 0..<deviceCount {
            var input = StateReader(try section(tag("D", index)), what: "device \(index)")
            do {
                let name = String(decoding: try input.getBytes(limit: 4096), as: UTF8.self)
                devices.append((name, try input.getBytes(limit: maximumFileSize)))
                try input.finish()
            } catch {
                throw .invalid("\(error)")
            }
        }
        let known = Set(["META", "CONF", "VMST", "SUM "] + (0..<count).flatMap { [tag("I", $0), tag("C", $0)] }
                        + (0..<deviceCount).map { tag("D", $0) })
        if let stray = sections.first(where: { !known.contains($0.tag) }) {
            throw .invalid("unexpected section '\(stray.tag)' (the counts in META say otherwise)")
        }
        var state = SnapshotState(architecture: architecture, hostKind: kind, memory: memory, machine: machine, machineState: try section("VMST"),
                                  vcpus: vcpus, devices: devices)
        for (key, value) in meta where !["architecture", "host", "memory", "vcpus", "devices"].contains(key) {
            state.provenance[key] = value
        }
        return state
    }

    /// "C000", "I001", "D002", ...: one section per vCPU or device.
    static func tag(_ kind: String, _ index: Int) -> String { kind + String(index).leftPadded(3) }

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
