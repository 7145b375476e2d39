// Which of an executable's functions a run calls, in the order of their first
// call: the input to the linker's symbol ordering file (scripts/make-start-order.sh).
//
// Why: a process's resident text is not the code it runs but every 64 KiB
// window of the executable that code touched (the kernel maps pages around
// each fault). Skiff's start path touches a few hundred KiB of functions spread
// over 10 MB of text, so it maps megabytes. Laying the functions a start calls
// side by side is the cure, and this tool says which ones they are.
//
// How: the command is started under ptrace and stopped right after exec. An
// INT3 byte is written over the first byte of every function listed in
// FUNCTIONS (offsets from the executable's load address, one hex number per
// line). When one fires, its offset is recorded, the original byte restored,
// and the thread continues at the function's first instruction, so each
// function traps once and the run keeps its own speed afterwards. Threads
// are followed (PTRACE_O_TRACECLONE); they share the address space, so one
// restored byte serves them all.
//
// usage: first-calls FUNCTIONS OUTPUT COMMAND [ARGS...]
//   OUTPUT gets the offsets of the functions called, in first-call order.
//   Exit status: the command's (128+N if a signal N ended it).
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

struct probe { uint64_t offset; uint8_t original; uint8_t armed; };

static struct probe *probes;
static size_t probe_count;

static int by_offset(const void *a, const void *b) {
    uint64_t x = ((const struct probe *)a)->offset, y = ((const struct probe *)b)->offset;
    return x < y ? -1 : x > y;
}

static struct probe *find(uint64_t offset) {
    struct probe key = { .offset = offset };
    return bsearch(&key, probes, probe_count, sizeof *probes, by_offset);
}

// The load address of the executable the child now runs: the start of its
// first mapping, the one at file offset 0.
static uint64_t load_address(pid_t pid) {
    char path[64], exe[4096], line[4400];
    snprintf(path, sizeof path, "/proc/%d/exe", pid);
    ssize_t n = readlink(path, exe, sizeof exe - 1);
    if (n < 0) { perror("readlink"); exit(1); }
    exe[n] = 0;
    snprintf(path, sizeof path, "/proc/%d/maps", pid);
    FILE *maps = fopen(path, "r");
    if (!maps) { perror(path); exit(1); }
    while (fgets(line, sizeof line, maps)) {
        unsigned long long start, offset;
        char file[4096] = "";
        if (sscanf(line, "%llx-%*x %*s %llx %*s %*s %4095s", &start, &offset, file) >= 2
            && offset == 0 && strcmp(file, exe) == 0) {
            fclose(maps);
            return start;
        }
    }
    fprintf(stderr, "first-calls: %s is not mapped in %d\n", exe, pid);
    exit(1);
}

// Rewrites one byte of the child's text (PTRACE_POKETEXT writes words).
static void poke_byte(pid_t pid, uint64_t address, uint8_t value, uint8_t *previous) {
    errno = 0;
    long word = ptrace(PTRACE_PEEKTEXT, pid, (void *)address, 0);
    if (errno) { perror("PTRACE_PEEKTEXT"); exit(1); }
    if (previous) *previous = (uint8_t)word;
    word = (word & ~0xffL) | value;
    if (ptrace(PTRACE_POKETEXT, pid, (void *)address, (void *)word) < 0) { perror("PTRACE_POKETEXT"); exit(1); }
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: first-calls FUNCTIONS OUTPUT COMMAND [ARGS...]\n"); return 64; }
    FILE *list = fopen(argv[1], "r");
    if (!list) { perror(argv[1]); return 1; }
    size_t capacity = 1 << 16;
    probes = calloc(capacity, sizeof *probes);
    unsigned long long value;
    while (fscanf(list, "%llx", &value) == 1) {
        if (probe_count == capacity) probes = realloc(probes, (capacity *= 2) * sizeof *probes);
        probes[probe_count++] = (struct probe){ .offset = value };
    }
    fclose(list);
    qsort(probes, probe_count, sizeof *probes, by_offset);
    FILE *out = fopen(argv[2], "w");
    if (!out) { perror(argv[2]); return 1; }

    pid_t child = fork();
    if (child < 0) { perror("fork"); return 1; }
    if (child == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        execvp(argv[3], argv + 3);
        perror(argv[3]);
        _exit(127);
    }
    int status;
    waitpid(child, &status, 0);
    ptrace(PTRACE_SETOPTIONS, child, 0,
           PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL);
    ptrace(PTRACE_CONT, child, 0, 0);
    waitpid(child, &status, 0);
    if (!(WIFSTOPPED(status) && status >> 8 == (SIGTRAP | (PTRACE_EVENT_EXEC << 8)))) {
        fprintf(stderr, "first-calls: %s did not start\n", argv[3]);
        return 1;
    }
    uint64_t base = load_address(child);
    for (size_t i = 0; i < probe_count; i++) {
        poke_byte(child, base + probes[i].offset, 0xcc, &probes[i].original);
        probes[i].armed = 1;
    }
    ptrace(PTRACE_CONT, child, 0, 0);

    size_t hits = 0;
    int exit_status = 0;
    for (;;) {
        pid_t tid = waitpid(-1, &status, __WALL);
        if (tid < 0) { if (errno == EINTR) continue; break; }
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
            if (tid == child) exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            continue;
        }
        if (!WIFSTOPPED(status)) continue;
        int signal = WSTOPSIG(status);
        int deliver = 0;
        if (status >> 16) {
            deliver = 0;                       // a clone or exec event
        } else if (signal == SIGTRAP) {
            struct user_regs_struct regs;
            ptrace(PTRACE_GETREGS, tid, 0, &regs);
            struct probe *probe = regs.rip > base ? find(regs.rip - 1 - base) : NULL;
            if (probe) {
                // Another thread may have hit this probe first and restored
                // the byte already; this one only goes back to the function's start.
                if (probe->armed) {
                    poke_byte(tid, regs.rip - 1, probe->original, NULL);
                    probe->armed = 0;
                    fprintf(out, "%llx\n", (unsigned long long)probe->offset);
                    hits++;
                }
                regs.rip -= 1;
                ptrace(PTRACE_SETREGS, tid, 0, &regs);
            } else {
                deliver = SIGTRAP;
            }
        } else if (signal == SIGSTOP) {
            deliver = 0;                       // a new thread's first stop
        } else {
            deliver = signal;
        }
        ptrace(PTRACE_CONT, tid, 0, (void *)(long)deliver);
    }
    fclose(out);
    fprintf(stderr, "first-calls: %zu of %zu functions called\n", hits, probe_count);
    return exit_status;
}
