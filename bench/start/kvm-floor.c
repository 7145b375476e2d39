// The floor for a VMM's start: the same KVM objects Skiff creates for a tiny
// guest (a VM with the in-kernel irqchip and PIT, 32 MiB of guest memory, one
// vCPU), then the guest runs `mov al, 0xfe; out 0x64, al` in real mode and the
// program exits at that port write, after turning the PIT's tick reinjection
// off as Skiff does once its guest stopped (destroying the VM then waits for
// no normal SRCU grace period: docs/vm-teardown.md). No device models, no
// threads, no checks beyond what a correct program needs: what a VMM cannot
// go below.
// Prints first_instruction_ns=T (CLOCK_MONOTONIC at the guest's first exit).
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) { perror(what); exit(1); }

int main(void) {
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) die("/dev/kvm");
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) die("KVM_CREATE_VM");
    size_t size = 32 << 20;
    unsigned char *memory = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (memory == MAP_FAILED) die("mmap");
    const unsigned char code[] = { 0xB0, 0xFE, 0xE6, 0x64, 0xF4 };
    memcpy(memory + 0x1000, code, sizeof code);
    struct kvm_userspace_memory_region region = { .slot = 0, .guest_phys_addr = 0, .memory_size = size,
                                                  .userspace_addr = (unsigned long)memory };
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) die("KVM_SET_USER_MEMORY_REGION");
    // The memory slot before the irqchip and PIT, as Skiff orders them: on the
    // nested PVM host a slot added after them takes about 7 ms (86 µs before).
    if (ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000UL) < 0) die("KVM_SET_TSS_ADDR");
    if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) die("KVM_CREATE_IRQCHIP");
    struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
    if (ioctl(vm, KVM_CREATE_PIT2, &pit) < 0) die("KVM_CREATE_PIT2");
    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0) die("KVM_CREATE_VCPU");
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) die("mmap kvm_run");
    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) die("KVM_GET_SREGS");
    sregs.cs.base = 0; sregs.cs.selector = 0;
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) die("KVM_SET_SREGS");
    struct kvm_regs regs = { .rip = 0x1000, .rflags = 0x2 };
    if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");
    for (;;) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) die("KVM_RUN");
        if (run->exit_reason == KVM_EXIT_IO && run->io.port == 0x64) {
            struct timespec t;
            clock_gettime(CLOCK_MONOTONIC, &t);
            printf("first_instruction_ns=%lld\n", (long long)t.tv_sec * 1000000000LL + t.tv_nsec);
            struct kvm_reinject_control off = { .pit_reinject = 0 };
            if (ioctl(vm, KVM_REINJECT_CONTROL, &off) < 0) die("KVM_REINJECT_CONTROL");
            return 0;
        }
        if (run->exit_reason != KVM_EXIT_IO) { fprintf(stderr, "unexpected exit %u\n", run->exit_reason); return 1; }
    }
}
