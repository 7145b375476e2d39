import CKVM
import Glibc
import Memory

/// The KVM subsystem, opened through `/dev/kvm`.
public final class KVMSystem: X86Hypervisor {
    /// Why /dev/kvm could not be used, in words a user can act on.
    public enum OpenError: Error, CustomStringConvertible {
        case missing(path: String)
        case permission(path: String)
        case other(path: String, errno: Int32)
        case apiVersion(Int32)
        case capabilityMissing(String)

        public var description: String {
            switch self {
            case let .missing(path):
                return "\(path) does not exist: this machine has no KVM (enable virtualization, or load kvm_intel/kvm_amd)"
            case let .permission(path):
                return "no permission to open \(path): run as root or add yourself to the kvm group"
            case let .other(path, errno):
                return "cannot open \(path): \(String(cString: strerror(errno)))"
            case let .apiVersion(version):
                return "KVM API version \(version) is not the stable version 12"
            case let .capabilityMissing(name):
                return "this KVM lacks a capability Skiff needs: \(name)"
            }
        }
    }

    let fd: Int32
    public let vcpuMmapSize: Int

    /// Capabilities a Skiff VM cannot do without.
    static let requiredCapabilities: [(String, Int32)] = [
        ("KVM_CAP_USER_MEMORY", KVM_CAP_USER_MEMORY),
        ("KVM_CAP_IRQCHIP", KVM_CAP_IRQCHIP),
        ("KVM_CAP_PIT2", KVM_CAP_PIT2),
        ("KVM_CAP_EXT_CPUID", KVM_CAP_EXT_CPUID),
        ("KVM_CAP_SET_TSS_ADDR", KVM_CAP_SET_TSS_ADDR),
        ("KVM_CAP_IMMEDIATE_EXIT", KVM_CAP_IMMEDIATE_EXIT),
    ]

    public init(path: String = "/dev/kvm") throws(OpenError) {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            switch errno {
            case ENOENT, ENODEV, ENXIO: throw .missing(path: path)
            case EACCES, EPERM: throw .permission(path: path)
            default: throw .other(path: path, errno: errno)
            }
        }
        let version = ckvm_ioctl(fd, CKVM_GET_API_VERSION)
        guard version == 12 else { close(fd); throw .apiVersion(version) }
        for (name, capability) in Self.requiredCapabilities
        where ckvm_ioctl_value(fd, CKVM_CHECK_EXTENSION, UInt(capability)) <= 0 {
            close(fd)
            throw .capabilityMissing(name)
        }
        let mmapSize = ckvm_ioctl(fd, CKVM_GET_VCPU_MMAP_SIZE)
        guard mmapSize > 0 else { close(fd); throw .other(path: path, errno: errno) }
        self.fd = fd
        self.vcpuMmapSize = Int(mmapSize)
    }

    deinit { close(fd) }

    /// KVM_CHECK_EXTENSION: 0 when absent, otherwise a capability-specific value.
    public func checkExtension(_ capability: Int32) -> Int32 {
        max(0, ckvm_ioctl_value(fd, CKVM_CHECK_EXTENSION, UInt(capability)))
    }

    /// KVM_GET_SUPPORTED_CPUID: the CPUID leaves this host can give a guest.
    public func supportedCPUID() throws(KVMError) -> [CPUIDEntry] {
        var capacity: UInt32 = 128
        while capacity <= 4096 {
            guard let buffer = ckvm_cpuid2_allocate(capacity) else { throw KVMError("allocate cpuid", errno: ENOMEM) }
            defer { free(buffer) }
            if ckvm_ioctl_pointer(fd, CKVM_GET_SUPPORTED_CPUID, buffer) == 0 {
                let entries = ckvm_cpuid2_entries(buffer)!
                return (0..<Int(buffer.pointee.nent)).map { CPUIDEntry(entries[$0]) }
            }
            guard errno == E2BIG else { throw KVMError("KVM_GET_SUPPORTED_CPUID", errno: errno) }
            capacity *= 2
        }
        throw KVMError("KVM_GET_SUPPORTED_CPUID", errno: E2BIG)
    }

    /// KVM_CREATE_VM, retrying EINTR as the API documents.
    public func createVirtualMachine() throws(KVMError) -> any VirtualMachineHandle {
        let vmfd = try syscallRetrying("KVM_CREATE_VM") { ckvm_ioctl_value(fd, CKVM_CREATE_VM, 0) }
        return VirtualMachine(fd: vmfd, system: self)
    }
}
