// CKVM's one compiled part: saving and restoring KVM state for snapshots.
// The structures are used exactly as <linux/kvm.h> defines them; the Swift
// side only moves the resulting bytes (see CKVM.h for the format).
#include "CKVM.h"

#include <string.h>

// Section tags: four ASCII letters, so that a hex dump of a state file reads.
#define TAG(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
enum {
    TAG_REGS = TAG('R', 'E', 'G', 'S'), TAG_SREGS = TAG('S', 'R', 'E', 'G'), TAG_XSAVE = TAG('X', 'S', 'A', 'V'),
    TAG_FPU = TAG('F', 'P', 'U', ' '), TAG_XCRS = TAG('X', 'C', 'R', 'S'), TAG_MSRS = TAG('M', 'S', 'R', 'S'),
    TAG_LAPIC = TAG('L', 'A', 'P', 'C'), TAG_EVENTS = TAG('E', 'V', 'N', 'T'), TAG_MPSTATE = TAG('M', 'P', 'S', 'T'),
    TAG_DEBUGREGS = TAG('D', 'B', 'G', 'R'),
    TAG_PIC_MASTER = TAG('P', 'I', 'C', '0'), TAG_PIC_SLAVE = TAG('P', 'I', 'C', '1'), TAG_IOAPIC = TAG('I', 'O', 'A', 'P'),
    TAG_PIT = TAG('P', 'I', 'T', '2'), TAG_CLOCK = TAG('C', 'L', 'C', 'K'),
};

struct buffer { uint8_t *bytes; size_t length, capacity; };

static int append(struct buffer *b, uint32_t tag, const void *data, uint32_t size) {
    size_t need = b->length + 8 + size;
    if (need > b->capacity) {
        size_t capacity = b->capacity ? b->capacity * 2 : 16384;
        while (capacity < need) capacity *= 2;
        uint8_t *grown = realloc(b->bytes, capacity);
        if (!grown) { errno = ENOMEM; return -1; }
        b->bytes = grown;
        b->capacity = capacity;
    }
    memcpy(b->bytes + b->length, &tag, 4);
    memcpy(b->bytes + b->length + 4, &size, 4);
    memcpy(b->bytes + b->length + 8, data, size);
    b->length = need;
    return 0;
}

/// The section `tag` of `state`, if it is there with exactly `size` bytes (or any size when size is 0).
static const uint8_t *find(const uint8_t *state, size_t length, uint32_t tag, uint32_t size, uint32_t *found_size) {
    size_t offset = 0;
    while (offset + 8 <= length) {
        uint32_t t, s;
        memcpy(&t, state + offset, 4);
        memcpy(&s, state + offset + 4, 4);
        if (s > length - offset - 8) return NULL;
        if (t == tag) {
            if (size != 0 && s != size) return NULL;
            if (found_size) *found_size = s;
            return state + offset + 8;
        }
        offset += 8 + (size_t)s;
    }
    return NULL;
}

#define GET(fd, request, tag, type) do { \
        type value; memset(&value, 0, sizeof value); \
        if (ioctl(fd, request, &value) < 0) { *failed_tag = tag; goto fail; } \
        if (append(&b, tag, &value, sizeof value) < 0) goto fail; \
    } while (0)

int ckvm_vcpu_save(int system_fd, int vcpu_fd, uint8_t **out, size_t *length, uint32_t *failed_tag) {
    struct buffer b = {0};
    struct kvm_msrs *msrs = NULL;
    struct kvm_msr_list *list = NULL;
    *failed_tag = 0;
    GET(vcpu_fd, KVM_GET_REGS, TAG_REGS, struct kvm_regs);
    GET(vcpu_fd, KVM_GET_SREGS, TAG_SREGS, struct kvm_sregs);
    if (ioctl(system_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0) {
        GET(vcpu_fd, KVM_GET_XSAVE, TAG_XSAVE, struct kvm_xsave);
    } else {
        GET(vcpu_fd, KVM_GET_FPU, TAG_FPU, struct kvm_fpu);
    }
    if (ioctl(system_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0) GET(vcpu_fd, KVM_GET_XCRS, TAG_XCRS, struct kvm_xcrs);

    // Every MSR KVM saves and restores for migration.
    struct kvm_msr_list probe = { .nmsrs = 0 };
    if (ioctl(system_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG) { *failed_tag = TAG_MSRS; goto fail; }
    list = calloc(1, sizeof *list + probe.nmsrs * sizeof(uint32_t));
    msrs = calloc(1, sizeof *msrs + probe.nmsrs * sizeof(struct kvm_msr_entry));
    if (!list || !msrs) { errno = ENOMEM; goto fail; }
    list->nmsrs = probe.nmsrs;
    if (ioctl(system_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) { *failed_tag = TAG_MSRS; goto fail; }
    msrs->nmsrs = list->nmsrs;
    for (uint32_t i = 0; i < list->nmsrs; i++) msrs->entries[i].index = list->indices[i];
    int read = ioctl(vcpu_fd, KVM_GET_MSRS, msrs);
    if (read < 0) { *failed_tag = TAG_MSRS; goto fail; }
    // KVM stops at the first MSR it cannot read: keep the ones it read.
    msrs->nmsrs = (uint32_t)read;
    if (append(&b, TAG_MSRS, msrs, (uint32_t)(sizeof *msrs + (size_t)read * sizeof(struct kvm_msr_entry))) < 0) goto fail;

    GET(vcpu_fd, KVM_GET_LAPIC, TAG_LAPIC, struct kvm_lapic_state);
    GET(vcpu_fd, KVM_GET_VCPU_EVENTS, TAG_EVENTS, struct kvm_vcpu_events);
    GET(vcpu_fd, KVM_GET_MP_STATE, TAG_MPSTATE, struct kvm_mp_state);
    GET(vcpu_fd, KVM_GET_DEBUGREGS, TAG_DEBUGREGS, struct kvm_debugregs);
    free(list);
    free(msrs);
    *out = b.bytes;
    *length = b.length;
    return 0;
fail:
    free(list);
    free(msrs);
    free(b.bytes);
    return -1;
}

#define SET(fd, request, tag, type) do { \
        const uint8_t *section = find(state, length, tag, sizeof(type), NULL); \
        if (!section) { *failed_tag = tag; errno = EINVAL; return -1; } \
        type value; memcpy(&value, section, sizeof value); \
        if (ioctl(fd, request, &value) < 0) { *failed_tag = tag; return -1; } \
    } while (0)

int ckvm_vcpu_restore(int vcpu_fd, const uint8_t *state, size_t length, uint32_t *failed_tag) {
    *failed_tag = 0;
    // The order KVM needs: SREGS before REGS (the mode decides what REGS
    // means), MSRS before LAPIC (the APIC base), the TSC deadline once more
    // after it, events and MP state last.
    SET(vcpu_fd, KVM_SET_SREGS, TAG_SREGS, struct kvm_sregs);
    SET(vcpu_fd, KVM_SET_REGS, TAG_REGS, struct kvm_regs);
    if (find(state, length, TAG_XSAVE, sizeof(struct kvm_xsave), NULL)) {
        SET(vcpu_fd, KVM_SET_XSAVE, TAG_XSAVE, struct kvm_xsave);
    } else {
        SET(vcpu_fd, KVM_SET_FPU, TAG_FPU, struct kvm_fpu);
    }
    if (find(state, length, TAG_XCRS, sizeof(struct kvm_xcrs), NULL)) SET(vcpu_fd, KVM_SET_XCRS, TAG_XCRS, struct kvm_xcrs);
    uint32_t size = 0;
    const uint8_t *section = find(state, length, TAG_MSRS, 0, &size);
    if (!section || size < sizeof(struct kvm_msrs)) { *failed_tag = TAG_MSRS; errno = EINVAL; return -1; }
    struct kvm_msrs header;
    memcpy(&header, section, sizeof header);
    if ((size_t)size != sizeof header + (size_t)header.nmsrs * sizeof(struct kvm_msr_entry)) { *failed_tag = TAG_MSRS; errno = EINVAL; return -1; }
    struct kvm_msrs *msrs = malloc(size);
    if (!msrs) { errno = ENOMEM; return -1; }
    memcpy(msrs, section, size);
    int written = ioctl(vcpu_fd, KVM_SET_MSRS, msrs);
    if (written < 0 || (uint32_t)written != header.nmsrs) { free(msrs); *failed_tag = TAG_MSRS; if (written >= 0) errno = EINVAL; return -1; }
    // KVM ignores a TSC deadline written while the LAPIC timer is not in
    // TSC-deadline mode, and KVM_SET_LAPIC restarts the timer from the
    // deadline it holds: without writing it again after the LAPIC, a restored
    // guest's armed timer never fires (a `sleep 1` never returns).
    struct kvm_msr_entry deadline = { 0 };
    for (uint32_t i = 0; i < header.nmsrs; i++) {
        if (msrs->entries[i].index == 0x6E0 /* IA32_TSC_DEADLINE */) deadline = msrs->entries[i];
    }
    free(msrs);
    SET(vcpu_fd, KVM_SET_LAPIC, TAG_LAPIC, struct kvm_lapic_state);
    if (deadline.index == 0x6E0 && deadline.data != 0) {
        struct kvm_msrs *one = calloc(1, sizeof *one + sizeof deadline);
        if (!one) { errno = ENOMEM; return -1; }
        one->nmsrs = 1;
        one->entries[0] = deadline;
        int set = ioctl(vcpu_fd, KVM_SET_MSRS, one);
        free(one);
        if (set != 1) { *failed_tag = TAG_MSRS; if (set >= 0) errno = EINVAL; return -1; }
    }
    SET(vcpu_fd, KVM_SET_VCPU_EVENTS, TAG_EVENTS, struct kvm_vcpu_events);
    SET(vcpu_fd, KVM_SET_MP_STATE, TAG_MPSTATE, struct kvm_mp_state);
    SET(vcpu_fd, KVM_SET_DEBUGREGS, TAG_DEBUGREGS, struct kvm_debugregs);
    return 0;
}

int ckvm_vm_save(int vm_fd, uint8_t **out, size_t *length, uint32_t *failed_tag) {
    struct buffer b = {0};
    *failed_tag = 0;
    const uint32_t chips[3] = { TAG_PIC_MASTER, TAG_PIC_SLAVE, TAG_IOAPIC };
    for (uint32_t chip = 0; chip < 3; chip++) {
        struct kvm_irqchip value;
        memset(&value, 0, sizeof value);
        value.chip_id = chip;
        if (ioctl(vm_fd, KVM_GET_IRQCHIP, &value) < 0) { *failed_tag = chips[chip]; goto fail; }
        if (append(&b, chips[chip], &value, sizeof value) < 0) goto fail;
    }
    GET(vm_fd, KVM_GET_PIT2, TAG_PIT, struct kvm_pit_state2);
    GET(vm_fd, KVM_GET_CLOCK, TAG_CLOCK, struct kvm_clock_data);
    *out = b.bytes;
    *length = b.length;
    return 0;
fail:
    free(b.bytes);
    return -1;
}

int ckvm_vm_restore(int vm_fd, const uint8_t *state, size_t length, uint32_t *failed_tag) {
    *failed_tag = 0;
    const uint32_t chips[3] = { TAG_PIC_MASTER, TAG_PIC_SLAVE, TAG_IOAPIC };
    for (uint32_t chip = 0; chip < 3; chip++) {
        SET(vm_fd, KVM_SET_IRQCHIP, chips[chip], struct kvm_irqchip);
    }
    SET(vm_fd, KVM_SET_PIT2, TAG_PIT, struct kvm_pit_state2);
    // KVM_SET_CLOCK takes the clock value only; the flags it reported describe the host.
    const uint8_t *section = find(state, length, TAG_CLOCK, sizeof(struct kvm_clock_data), NULL);
    if (!section) { *failed_tag = TAG_CLOCK; errno = EINVAL; return -1; }
    struct kvm_clock_data clock;
    memcpy(&clock, section, sizeof clock);
    clock.flags = 0;
    if (ioctl(vm_fd, KVM_SET_CLOCK, &clock) < 0) { *failed_tag = TAG_CLOCK; return -1; }
    return 0;
}
