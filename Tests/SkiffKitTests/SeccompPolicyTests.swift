import CSystem
import Glibc
import Hypervisor
import Seccomp
import Testing
@testable import SkiffKit

/// The VMM's allow lists take the hypervisor's requests from the hypervisor
/// (`HypervisorSystemCalls`) and admit each kind only on the threads that do
/// that work: a vCPU runs, any of several threads raises an interrupt line,
/// the snapshot coordinator reads the VM's state, main tears down.
@Suite struct SeccompPolicyTests {
    static let calls = HypervisorSystemCalls(vcpuRequests: [0x1001], interruptRequests: [0x2002], machineStateRequests: [0x3003],
                                             teardownRequests: [0x4004], kickSignal: 40)

    /// The ioctl requests `thread`'s list admits, of the fake hypervisor's.
    func hypervisorRequests(_ thread: VMMSeccompPolicy.Thread) -> Set<UInt32> {
        var admitted: Set<UInt32> = []
        for rule in VMMSeccompPolicy.filter(for: thread, hypervisor: Self.calls).rules where rule.number == Int32(SYS_ioctl) {
            guard case let .oneOf(argument: 1, values)? = rule.condition else { continue }
            admitted.formUnion(values.filter { (0x1000..<0x5000).contains($0) })
        }
        return admitted
    }

    @Test func theHypervisorsRequestsAreAdmittedWhereItsWorkIsDone() {
        #expect(hypervisorRequests(.vcpu) == [0x1001, 0x2002])
        #expect(hypervisorRequests(.deviceLoop) == [0x2002])
        #expect(hypervisorRequests(.signals) == [0x2002])
        #expect(hypervisorRequests(.control) == [0x2002])
        #expect(hypervisorRequests(.coordinator) == [0x3003])
        #expect(hypervisorRequests(.main) == [0x4004])
        for thread in VMMSeccompPolicy.Thread.allCases {
            let kick = VMMSeccompPolicy.filter(for: thread, hypervisor: Self.calls).rules.first { $0.number == Int32(SYS_tgkill) && $0.why.contains("vCPU") }
            guard case let .oneOf(argument: 2, signals)? = kick?.condition else { Issue.record("\(thread): no kick"); continue }
            #expect(signals.contains(40), "\(thread) may kick a vCPU with the hypervisor's signal")
        }
    }
}
