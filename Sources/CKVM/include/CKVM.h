// CKVM: the C surface Skiff needs from Linux. <linux/kvm.h> structures are
// used as they are; ioctl request numbers (function-like macros Swift cannot
// import) are re-exported as constants, and ioctl(2), which is variadic, gets
// fixed-arity wrappers. Accessors reach into kvm_run's anonymous unions.
#ifndef CKVM_H
#define CKVM_H

#include <linux/kvm.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <errno.h>
#include <signal.h>
#include <pthread.h>

static const unsigned long CKVM_GET_API_VERSION = KVM_GET_API_VERSION;
static const unsigned long CKVM_CREATE_VM = KVM_CREATE_VM;
static const unsigned long CKVM_CHECK_EXTENSION = KVM_CHECK_EXTENSION;
static const unsigned long CKVM_GET_VCPU_MMAP_SIZE = KVM_GET_VCPU_MMAP_SIZE;
static const unsigned long CKVM_GET_SUPPORTED_CPUID = KVM_GET_SUPPORTED_CPUID;
static const unsigned long CKVM_SET_USER_MEMORY_REGION = KVM_SET_USER_MEMORY_REGION;
static const unsigned long CKVM_SET_TSS_ADDR = KVM_SET_TSS_ADDR;
static const unsigned long CKVM_SET_IDENTITY_MAP_ADDR = KVM_SET_IDENTITY_MAP_ADDR;
static const unsigned long CKVM_CREATE_IRQCHIP = KVM_CREATE_IRQCHIP;
static const unsigned long CKVM_CREATE_PIT2 = KVM_CREATE_PIT2;
static const unsigned long CKVM_REINJECT_CONTROL = KVM_REINJECT_CONTROL;
static const unsigned long CKVM_IRQ_LINE = KVM_IRQ_LINE;
static const unsigned long CKVM_IRQFD = KVM_IRQFD;
static const unsigned long CKVM_IOEVENTFD = KVM_IOEVENTFD;
static const unsigned long CKVM_CREATE_VCPU = KVM_CREATE_VCPU;
static const unsigned long CKVM_RUN = KVM_RUN;
static const unsigned long CKVM_GET_REGS = KVM_GET_REGS;
static const unsigned long CKVM_SET_REGS = KVM_SET_REGS;
static const unsigned long CKVM_GET_SREGS = KVM_GET_SREGS;
static const unsigned long CKVM_SET_SREGS = KVM_SET_SREGS;
static const unsigned long CKVM_SET_CPUID2 = KVM_SET_CPUID2;
static const unsigned long CKVM_SET_MSRS = KVM_SET_MSRS;
static const unsigned long CKVM_SET_FPU = KVM_SET_FPU;
static const unsigned long CKVM_GET_LAPIC = KVM_GET_LAPIC;
static const unsigned long CKVM_SET_LAPIC = KVM_SET_LAPIC;
static const unsigned long CKVM_GET_VCPU_EVENTS = KVM_GET_VCPU_EVENTS;
static const unsigned long CKVM_SET_VCPU_EVENTS = KVM_SET_VCPU_EVENTS;
static const unsigned long CKVM_TRANSLATE = KVM_TRANSLATE;
// Requests the state capture makes (shim.c); named here for the seccomp allow lists.
static const unsigned long CKVM_GET_MSRS = KVM_GET_MSRS;
static const unsigned long CKVM_GET_FPU = KVM_GET_FPU;
static const unsigned long CKVM_GET_XSAVE = KVM_GET_XSAVE;
static const unsigned long CKVM_GET_XCRS = KVM_GET_XCRS;
static const unsigned long CKVM_GET_DEBUGREGS = KVM_GET_DEBUGREGS;
static const unsigned long CKVM_GET_MP_STATE = KVM_GET_MP_STATE;
static const unsigned long CKVM_GET_MSR_INDEX_LIST = KVM_GET_MSR_INDEX_LIST;
static const unsigned long CKVM_GET_CLOCK = KVM_GET_CLOCK;
static const unsigned long CKVM_GET_IRQCHIP = KVM_GET_IRQCHIP;
static const unsigned long CKVM_GET_PIT2 = KVM_GET_PIT2;

/// ioctl(2) with no argument. Returns -1 and leaves errno set on failure.
static inline int ckvm_ioctl(int fd, unsigned long request) {
    return ioctl(fd, request, 0);
}
/// ioctl(2) with an integer argument.
static inline int ckvm_ioctl_value(int fd, unsigned long request, unsigned long value) {
    return ioctl(fd, request, value);
}
/// ioctl(2) with a pointer argument.
static inline int ckvm_ioctl_pointer(int fd, unsigned long request, void *argument) {
    return ioctl(fd, request, argument);
}

// kvm_cpuid2 and kvm_msrs end in flexible arrays: allocate them here.
static inline struct kvm_cpuid2 *ckvm_cpuid2_allocate(uint32_t count) {
    struct kvm_cpuid2 *c = calloc(1, sizeof(struct kvm_cpuid2) + count * sizeof(struct kvm_cpuid_entry2));
    if (c) c->nent = count;
    return c;
}
static inline struct kvm_cpuid_entry2 *ckvm_cpuid2_entries(struct kvm_cpuid2 *c) { return c->entries; }
static inline struct kvm_msrs *ckvm_msrs_allocate(uint32_t count) {
    struct kvm_msrs *m = calloc(1, sizeof(struct kvm_msrs) + count * sizeof(struct kvm_msr_entry));
    if (m) m->nmsrs = count;
    return m;
}
static inline struct kvm_msr_entry *ckvm_msrs_entries(struct kvm_msrs *m) { return m->entries; }

// kvm_run exit payloads (anonymous unions).
static inline uint32_t ckvm_run_exit_reason(const struct kvm_run *r) { return r->exit_reason; }
static inline void ckvm_run_set_immediate_exit(struct kvm_run *r, uint8_t v) {
    __atomic_store_n(&r->immediate_exit, v, __ATOMIC_SEQ_CST);
}
static inline uint8_t ckvm_run_io_direction(const struct kvm_run *r) { return r->io.direction; }
static inline uint8_t ckvm_run_io_size(const struct kvm_run *r) { return r->io.size; }
static inline uint16_t ckvm_run_io_port(const struct kvm_run *r) { return r->io.port; }
static inline uint32_t ckvm_run_io_count(const struct kvm_run *r) { return r->io.count; }
static inline uint64_t ckvm_run_io_data_offset(const struct kvm_run *r) { return r->io.data_offset; }
static inline uint64_t ckvm_run_mmio_address(const struct kvm_run *r) { return r->mmio.phys_addr; }
static inline uint8_t *ckvm_run_mmio_data(struct kvm_run *r) { return r->mmio.data; }
static inline uint32_t ckvm_run_mmio_length(const struct kvm_run *r) { return r->mmio.len; }
static inline uint8_t ckvm_run_mmio_is_write(const struct kvm_run *r) { return r->mmio.is_write; }
static inline uint64_t ckvm_run_fail_entry_reason(const struct kvm_run *r) {
    return r->fail_entry.hardware_entry_failure_reason;
}
static inline uint32_t ckvm_run_system_event_type(const struct kvm_run *r) { return r->system_event.type; }
static inline uint32_t ckvm_run_internal_suberror(const struct kvm_run *r) { return r->internal.suberror; }
/// Instruction bytes KVM reports with an emulation failure, if it did (copied into out[0..15]).
static inline uint8_t ckvm_run_emulation_instruction(const struct kvm_run *r, uint8_t out[16]) {
#ifdef KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES
    if (r->internal.suberror != KVM_INTERNAL_ERROR_EMULATION) return 0;
    if (!(r->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) return 0;
    uint8_t n = r->emulation_failure.insn_size;
    if (n > 15) n = 15;
    for (uint8_t i = 0; i < n; i++) out[i] = r->emulation_failure.insn_bytes[i];
    return n;
#else
    (void)r; (void)out;
    return 0;
/// Snapshot state, as a byte string of sections: each is a 4-byte tag, a
/// 4-byte length and the raw <linux/kvm.h> structure, little-endian as the host
/// is. `ckvm_*_save` fill a malloc'd buffer (free it); `ckvm_*_restore` set the
/// sections in the order KVM needs and fail (-1, errno) on anything missing,
/// unknown or the wrong size. The system fd is /dev/kvm's (for the MSR list).
/// On failure *failed_tag names the section whose ioctl failed (0 if none).
int ckvm_vcpu_save(int system_fd, int vcpu_fd, uint8_t **out, size_t *length, uint32_t *failed_tag);
int ckvm_vcpu_restore(int vcpu_fd, const uint8_t *state, size_t length, uint32_t *failed_tag);
int ckvm_vm_save(int vm_fd, uint8_t **out, size_t *length, uint32_t *failed_tag);
int ckvm_vm_restore(int vm_fd, const uint8_t *state, size_t length, uint32_t *failed_tag);

#endif
}

/// Installs a handler for `signal` that does nothing and does not restart
/// system calls: sending it to a vCPU thread makes KVM_RUN return EINTR.
static inline int ckvm_install_kick_handler(int signal);

static void ckvm_kick_handler(int signal) { (void)signal; }
static inline int ckvm_install_kick_handler(int signal) {
    struct sigaction sa = {0};
    sa.sa_handler = ckvm_kick_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    return sigaction(signal, &sa, NULL);
}
static inline int ckvm_kick_signal(void) { return SIGRTMIN + 1; }
/// Unblocks the kick signal in the calling thread. A thread inherits its
/// creator's signal mask, and runtimes (Dispatch, test runners) block signals
/// in theirs: a vCPU thread with the kick blocked would sleep in a halted
/// KVM_RUN for ever.
static inline int ckvm_unblock_kick_signal(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, ckvm_kick_signal());
    return pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/// Snapshot state, as a byte string of sections: each is a 4-byte tag, a
/// 4-byte length and the raw <linux/kvm.h> structure, little-endian as the host
/// is. `ckvm_*_save` fill a malloc'd buffer (free it); `ckvm_*_restore` set the
/// sections in the order KVM needs and fail (-1, errno) on anything missing,
/// unknown or the wrong size. The system fd is /dev/kvm's (for the MSR list).
/// On failure *failed_tag names the section whose ioctl failed (0 if none).
int ckvm_vcpu_save(int system_fd, int vcpu_fd, uint8_t **out, size_t *length, uint32_t *failed_tag);
int ckvm_vcpu_restore(int vcpu_fd, const uint8_t *state, size_t length, uint32_t *failed_tag);
int ckvm_vm_save(int vm_fd, uint8_t **out, size_t *length, uint32_t *failed_tag);
int ckvm_vm_restore(int vm_fd, const uint8_t *state, size_t length, uint32_t *failed_tag);

#endif
