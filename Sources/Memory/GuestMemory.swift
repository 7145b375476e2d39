#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Host

/// An error touching guest physical memory: the address range named lies,
/// at least in part, outside every region of guest RAM.
public enum GuestMemoryError: Error, Equatable, CustomStringConvertible {
    case outOfBounds(address: UInt64, length: Int)
    case allocationFailed(size: Int, errno: Int32)
    case invalidLayout(String)

    public var description: String {
        switch self {
        case let .outOfBounds(address, length):
            return "guest memory access out of bounds: 0x\(String(address, radix: 16)) + \(length) bytes"
        case let .allocationFailed(size, errno):
            return "cannot allocate \(size >> 20) MiB of guest memory: \(String(cString: strerror(errno)))"
        case let .invalidLayout(reason):
            return "invalid guest memory layout: \(reason)"
        }
    }
}

/// Guest physical memory: one or more anonymous mappings, each standing for a
/// contiguous range of guest physical addresses.
///
/// Every access is bounds-checked against a single region (an access may not
/// straddle two), with overflow-checked arithmetic, because addresses and
/// lengths often come from the guest. Device models and tests use this same
/// type: in a test it is just host memory nobody else maps.
///
/// Concurrency: the mappings never move while the object lives; the bytes in
/// them are shared with running vCPUs, so like real RAM they have no lock.
public final class GuestMemory: @unchecked Sendable {
    public struct Region: Sendable {
        public let guestAddress: UInt64
        public let size: Int
        /// Host address of the mapping (an integer so the struct stays Sendable).
        let hostAddress: UInt

        public var host: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: hostAddress)! }
        public var guestEnd: UInt64 { guestAddress + UInt64(size) }
    }

    public let regions: [Region]

    /// Total bytes of guest RAM.
    public var size: Int { regions.reduce(0) { $0 + $1.size } }

    /// Maps `layout` (guest address, size) regions, which must be page-aligned,
    /// non-empty and non-overlapping.
    public init(layout: [(guestAddress: UInt64, size: Int)]) throws {
        let page = UInt64(4096)
        let sorted = layout.sorted { $0.guestAddress < $1.guestAddress }
        var previousEnd: UInt64 = 0
        for (index, region) in sorted.enumerated() {
            guard region.size > 0, region.guestAddress % page == 0, UInt64(region.size) % page == 0 else {
                throw GuestMemoryError.invalidLayout("region \(index) is empty or not page-aligned")
            }
            guard index == 0 || region.guestAddress >= previousEnd else {
                throw GuestMemoryError.invalidLayout("regions overlap at 0x\(String(region.guestAddress, radix: 16))")
            }
            previousEnd = region.guestAddress + UInt64(region.size)
        }
        var mapped: [Region] = []
        for region in sorted {
            let pointer = mmap(nil, region.size, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
            guard let pointer, pointer != MAP_FAILED else {
                let error = errno
                for done in mapped { munmap(done.host, done.size) }
                throw GuestMemoryError.allocationFailed(size: region.size, errno: error)
            }
            mapped.append(Region(guestAddress: region.guestAddress, size: region.size,
                                 hostAddress: UInt(bitPattern: pointer)))
        }
        regions = mapped
    }

    /// Maps `layout` from `fd`, a memory file `write(toFile:)` made for the
    /// same layout (regions back to back, in guest address order): private and
    /// copy-on-write, so pages load lazily, many restores share one page-cache
    /// copy, and the guest's writes never reach the file.
    public init(layout: [(guestAddress: UInt64, size: Int)], mappingFile fd: Int32) throws {
        let sorted = layout.sorted { $0.guestAddress < $1.guestAddress }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw GuestMemoryError.allocationFailed(size: 0, errno: errno) }
        let total = sorted.reduce(0) { $0 + $1.size }
        guard Int(info.st_size) == total else {
            throw GuestMemoryError.invalidLayout("the memory file has \(info.st_size) bytes, the layout \(total)")
        }
        var mapped: [Region] = []
        var offset = 0
        for region in sorted {
            guard region.size > 0, region.guestAddress % 4096 == 0, region.size % 4096 == 0 else {
                for done in mapped { munmap(done.host, done.size) }
                throw GuestMemoryError.invalidLayout("a region is empty or not page-aligned")
            }
            let pointer = mmap(nil, region.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, off_t(offset))
            guard let pointer, pointer != MAP_FAILED else {
                let error = errno
                for done in mapped { munmap(done.host, done.size) }
                throw GuestMemoryError.allocationFailed(size: region.size, errno: error)
            }
            mapped.append(Region(guestAddress: region.guestAddress, size: region.size, hostAddress: UInt(bitPattern: pointer)))
            offset += region.size
        }
        regions = mapped
    }

    /// Writes every region, back to back in guest address order, to `fd` from
    /// offset 0; pages that are all zero are skipped, so the file is sparse
    /// where the guest never wrote. Returns the bytes actually written.
    @discardableResult
    public func write(toFile fd: Int32) throws -> Int {
        let page = 4096
        var offset = 0
        var written = 0
        for region in regions {
            let base = region.host
            var start = 0
            while start < region.size {
                // SAFETY: start + page <= region.size (sizes are page multiples); the mapping lives as long as self.
                let chunk = UnsafeRawBufferPointer(start: base + start, count: page)
                if chunk.contains(where: { $0 != 0 }) {
                    let at = offset + start
                    if let error = transferAll(page, { done in pwrite(fd, base + start + done, page - done, off_t(at + done)) }) {
                        throw GuestMemoryError.allocationFailed(size: page, errno: error)
                    }
                    written += page
                }
                start += page
            }
            offset += region.size
        }
        guard ftruncate(fd, off_t(offset)) == 0 else { throw GuestMemoryError.allocationFailed(size: offset, errno: errno) }
        return written
    }

    /// The layout these regions form (for a snapshot's restore).
    public var layout: [(guestAddress: UInt64, size: Int)] { regions.map { ($0.guestAddress, $0.size) } }

    deinit {
        for region in regions { munmap(region.host, region.size) }
    }

    /// Host pointer for `length` bytes at guest address `address`, all within one region.
    public func pointer(at address: UInt64, length: Int) throws -> UnsafeMutableRawPointer {
        guard length >= 0 else { throw GuestMemoryError.outOfBounds(address: address, length: length) }
        let (end, overflow) = address.addingReportingOverflow(UInt64(length))
        if !overflow {
            for region in regions where address >= region.guestAddress && end <= region.guestEnd {
                return region.host + Int(address - region.guestAddress)
            }
        }
        throw GuestMemoryError.outOfBounds(address: address, length: length)
    }

    /// Whether `length` bytes at `address` are guest RAM.
    public func contains(address: UInt64, length: Int) -> Bool {
        (try? pointer(at: address, length: length)) != nil
    }

    /// A buffer over guest RAM; valid while this object lives.
    public func buffer(at address: UInt64, length: Int) throws -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: try pointer(at: address, length: length), count: length)
    }

    public func read<T: FixedWidthInteger>(_: T.Type = T.self, at address: UInt64) throws -> T {
        T(littleEndian: try pointer(at: address, length: MemoryLayout<T>.size).loadUnaligned(as: T.self))
    }

    public func write<T: FixedWidthInteger>(_ value: T, at address: UInt64) throws {
        try pointer(at: address, length: MemoryLayout<T>.size).storeBytes(of: value.littleEndian, as: T.self)
    }

    public func readBytes(at address: UInt64, count: Int) throws -> [UInt8] {
        let source = try buffer(at: address, length: count)
        return Array(source)
    }

    public func write<Bytes: Collection>(bytes: Bytes, at address: UInt64) throws where Bytes.Element == UInt8 {
        let destination = try buffer(at: address, length: bytes.count)
        destination.copyBytes(from: bytes)
    }

    /// Fills `length` bytes at `address` with `value`.
    public func fill(_ value: UInt8, at address: UInt64, length: Int) throws {
        memset(try pointer(at: address, length: length), Int32(value), length)
    }
}
