// Spawns one command and reports what its run cost, as one line on stdout:
//   spawned_ns=T wall_ns=W cpu_ns=C maxrss_kib=R status=S
// T is CLOCK_MONOTONIC just before posix_spawn; the command also gets it in
// SKIFF_SPAWNED_AT, so that `skiff --timings` counts from the spawn, not from
// its own main. This helper is small on purpose: a child's peak RSS
// (ru_maxrss) includes the address space it was forked from, so a benchmark
// spawned from Python would report Python's size.
// usage: measure OUTPUT_FILE COMMAND [ARGS...]   (the command's stdout+stderr go to OUTPUT_FILE)
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: measure OUTPUT_FILE COMMAND [ARGS...]\n"); return 64; }
    int out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) { perror(argv[1]); return 1; }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out, 1);
    posix_spawn_file_actions_adddup2(&actions, out, 2);
    long long spawned = now();
    char stamp[64];
    snprintf(stamp, sizeof stamp, "%lld", spawned);
    setenv("SKIFF_SPAWNED_AT", stamp, 1);
    pid_t pid;
    if (posix_spawn(&pid, argv[2], &actions, NULL, argv + 2, environ) != 0) { perror(argv[2]); return 1; }
    int status;
    struct rusage usage;
    if (wait4(pid, &status, 0, &usage) != pid) { perror("wait4"); return 1; }
    long long wall = now() - spawned;
    long long cpu = (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000000000LL
                  + (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1000LL;
    printf("spawned_ns=%lld wall_ns=%lld cpu_ns=%lld maxrss_kib=%ld status=%d\n", spawned, wall, cpu,
           usage.ru_maxrss, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return 0;
}
