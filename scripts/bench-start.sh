#!/usr/bin/env bash
# The VMM's own start, measured against its floor and a peer (issue 11):
#   skiff boot --kernel tiny.elf --memory 32 --console none     (release build)
#   bench/start/kvm-floor.c: the same KVM objects and exit in ~60 lines of C
#   qemu-system-x86_64 -M microvm on the same tiny guest (where installed)
# Runs alternate (skiff, C, QEMU, skiff, ...), RUNS each after one untimed
# warm-up, each at a random phase of the host's timer tick (below). Each run
# is spawned by bench/start/measure.c, which hands its
# CLOCK_MONOTONIC spawn time to skiff (SKIFF_SPAWNED_AT) and reports wall, CPU
# and peak RSS from wait4. Then, for skiff and QEMU, what that RSS is made of:
# each runs a guest that spins, and after 1 s /proc/PID/smaps_rollup is read
# (private dirty memory is what each further VM costs; clean file pages, the
# executable's text, are shared between VMMs). With --warm-run, then a warm
# `skiff run` of the test image (scripts/make-test-image.sh; restored from its
# ready snapshot, which two untimed runs make sure of), RUNS times: the phases
# of --timings, above all the restored guest's first KVM_RUN (its first
# instruction follows within KVM's entry; no boot marker can time it).
# Prints tables; writes JSON with every run.
# usage: scripts/bench-start.sh [--runs N] [--json PATH] [--warm-run]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=20
json=""
image=""
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    --warm-run) image=$("$repo/scripts/make-test-image.sh" | sed -n 's/^image=//p'); shift ;;
    *) echo "usage: $0 [--runs N] [--json PATH] [--warm-run]" >&2; exit 64 ;;
  esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -Wall -Werror -o "$work/measure" "$repo/bench/start/measure.c"
cc -O2 -Wall -Werror -o "$work/kvm-floor" "$repo/bench/start/kvm-floor.c"
python3 "$repo/bench/start/make-tiny-guest.py" "$work/tiny.elf"
python3 "$repo/bench/start/make-tiny-guest.py" --spin "$work/spin.elf"
(cd "$repo" && swift build -c release --disable-local-rpath --product skiff >&2)
# A freshly linked executable's pages are dirty in the page cache until written
# back, and smaps counts them as the VMM's private dirty memory.
sync
skiff="$repo/.build/release/skiff"
qemu=$(command -v qemu-system-x86_64 || true)

python3 - "$work" "$skiff" "$runs" "$json" "${qemu:-}" "$image" <<'PY'
import json, os, random, re, statistics, subprocess, sys, time
work, skiff, runs, json_path, qemu, image = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
tiny = os.path.join(work, "tiny.elf")
commands = {
    "skiff": [skiff, "boot", "--kernel", tiny, "--memory", "32", "--console", "none", "--timings"],
    "C floor": [os.path.join(work, "kvm-floor")],
}
if qemu:
    commands["QEMU microvm"] = [qemu, "-M", "microvm", "-accel", "kvm", "-m", "32", "-nodefaults", "-no-user-config",
                                "-display", "none", "-serial", "none", "-kernel", tiny,
                                "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]

def once(name):
    out = os.path.join(work, "out.txt")
    line = subprocess.run([os.path.join(work, "measure"), out] + commands[name], capture_output=True, text=True, check=True).stdout
    run = {k: int(v) for k, v in re.findall(r"(\w+)=(-?\d+)", line)}
    text = open(out, errors="replace").read()
    first = stopped = main = None
    if name == "skiff":
        m = re.search(r"main entered\s+([0-9.]+) ms", text)
        main = float(m.group(1)) if m else None           # what the loader and the Swift runtime cost
        m = re.search(r"first guest instruction\s+([0-9.]+) ms", text)
        first = float(m.group(1)) if m else None          # ms since spawn (SKIFF_SPAWNED_AT)
        m = re.search(r"VM stopped\s+([0-9.]+) ms", text)
        stopped = float(m.group(1)) if m else None
    elif name == "C floor":
        m = re.search(r"first_instruction_ns=(\d+)", text)
        first = (int(m.group(1)) - run["spawned_ns"]) / 1e6 if m else None
        stopped = first                                   # its guest's first instruction is its exit
    ok = run["status"] == 0 or (name == "QEMU microvm" and run["status"] == ((0xfe << 1) | 1) & 0xff)
    if not ok:
        sys.exit(f"{name} exited {run['status']}:\n{text}")
    return {"spawned_ns": run["spawned_ns"], "wall_ms": run["wall_ns"] / 1e6, "cpu_ms": run["cpu_ns"] / 1e6, "maxrss_mib": run["maxrss_kib"] / 1024,
            "first_instruction_ms": first, "stopped_ms": stopped, "main_ms": main,
            "teardown_ms": run["wall_ns"] / 1e6 - stopped if stopped is not None else None}

# Every wall ends with SRCU grace periods, whose phases advance on timer
# ticks (docs/vm-teardown.md), so an exit ends just after a tick. Started
# back to back, each run would start at the same phase of the tick as the
# last (the harness's own fork and exec after it) and every run of a program
# would cross the same number of tick boundaries: its wall would move by a
# whole tick with where that fixed phase happens to sit, not with what the
# program does. A random wait of 0-20 ms before each spawn (20 ms is a whole
# number of ticks at HZ 100, 250, 300 and 1000) starts each run at a uniform
# phase, as starts that are not chained to one another come.
seed = int(time.time_ns() % 1_000_000_007)
phase = random.Random(seed)
def spaced(name):
    time.sleep(phase.uniform(0, 0.020))
    return once(name)

results = {name: [] for name in commands}
for name in commands: spaced(name)                    # warm-up, untimed
for _ in range(runs):
    for name in commands: results[name].append(spaced(name))

def median(name, key):
    values = [r[key] for r in results[name] if r[key] is not None]
    return statistics.median(values) if values else None

floor_wall = median("C floor", "wall_ms")
print(f"start benchmark: {runs} alternated runs each, medians; tiny guest, 32 MiB, 1 vCPU")
print(f"{'':14}{'spawn→1st instr':>16}{'wall':>10}{'CPU':>10}{'peak RSS':>11}{'wall/C':>8}")
summary = {}
for name in commands:
    first = median(name, "first_instruction_ms")
    wall = median(name, "wall_ms")
    row = {"first_instruction_ms": first, "wall_ms": wall, "cpu_ms": median(name, "cpu_ms"),
           "maxrss_mib": median(name, "maxrss_mib"), "wall_vs_c_floor": wall / floor_wall}
    summary[name] = row
    f = f"{first:.2f} ms" if first is not None else "n/a"
    print(f"{name:14}{f:>16}{wall:>8.2f}ms{row['cpu_ms']:>8.2f}ms{row['maxrss_mib']:>8.1f}MiB{row['wall_vs_c_floor']:>8.2f}")
    row["stopped_ms"], row["teardown_ms"] = median(name, "stopped_ms"), median(name, "teardown_ms")
    row["main_ms"] = median(name, "main_ms")
    row["wall_mean_ms"] = statistics.mean(r["wall_ms"] for r in results[name])
print(f"skiff's main ran {summary['skiff']['main_ms']:.2f} ms after its spawn (the loader and the Swift runtime)")
print(f"mean walls: skiff {summary['skiff']['wall_mean_ms']:.2f} ms, C floor {summary['C floor']['wall_mean_ms']:.2f} ms "
      f"({summary['skiff']['wall_mean_ms'] / summary['C floor']['wall_mean_ms']:.2f}x); runs spaced at random, seed {seed}")
# Most of every wall is the exit: turning the PIT's tick reinjection off and
# destroying the VM wait for SRCU grace periods, which end on timer ticks
# (docs/vm-teardown.md): the walls fall into modes some 4 ms apart; the
# random spacing above keeps a program from sitting in one mode by phase.
print(f"\n{'':14}{'spawn→VM stopped':>17}{'after':>10}   (wall = both; after: the exit, mostly the kernel destroying the VM)")
for name in ("skiff", "C floor"):
    row = summary[name]
    print(f"{name:14}{row['stopped_ms']:>15.2f}ms{row['teardown_ms']:>8.2f}ms")
# Steady state: what the resident memory of a running VMM is made of.
def composition(name):
    argv = [a if a != tiny else os.path.join(work, "spin.elf") for a in commands[name]]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    fields = {}
    try:
        for line in open(f"/proc/{process.pid}/smaps_rollup"):
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1]) / 1024
    finally:
        process.kill()
        process.wait()
    return {key: fields.get(key, 0.0) for key in ("Rss", "Private_Dirty", "Private_Clean", "Shared_Clean", "Anonymous")}

memory = {name: [] for name in commands if name != "C floor"}
for _ in range(5):
    for name in memory: memory[name].append(composition(name))
print(f"\nresident memory of a running VMM (spinning guest, 32 MiB; median of 5, MiB)")
print(f"{'':14}{'RSS':>8}{'private dirty':>15}{'private clean':>15}{'shared clean':>14}")
memory_summary = {}
for name, samples in memory.items():
    row = {key: statistics.median(s[key] for s in samples) for key in samples[0]}
    memory_summary[name] = row
    print(f"{name:14}{row['Rss']:>8.1f}{row['Private_Dirty']:>15.1f}{row['Private_Clean']:>15.1f}{row['Shared_Clean']:>14.1f}")

# A warm `skiff run`: every --timings row, ms since spawn.
warm, warm_summary = [], {}
if image:
    argv = [skiff, "run", "--timings", image, "sh", "-c", "exit 0"]
    for _ in range(2): subprocess.run(argv, capture_output=True)   # the disk and the ready snapshot exist
    for _ in range(runs):
        out = os.path.join(work, "out.txt")
        line = subprocess.run([os.path.join(work, "measure"), out] + argv, capture_output=True, text=True, check=True).stdout
        run = {k: int(v) for k, v in re.findall(r"(\w+)=(-?\d+)", line)}
        text = open(out, errors="replace").read()
        if run["status"] != 0 or "guest: restored" not in text:
            sys.exit(f"warm skiff run: status {run['status']}, not restored:\n{text}")
        phases = {label.strip(): float(ms) for label, ms in re.findall(r"^  ([a-zA-Z(][^\n]*?)\s+([0-9.]+) ms$", text, re.M)}
        warm.append({"phases_ms": phases, "wall_ms": run["wall_ns"] / 1e6, "maxrss_mib": run["maxrss_kib"] / 1024})
    print(f"\nwarm skiff run (restored from the image's ready snapshot; {runs} runs, medians, ms since spawn)")
    for label in ["main entered", "image opened", "root disk ready (cached)", "machine setup started", "VMM setup done",
                  "guest entered (first KVM_RUN)", "first exit after restore", "workload started", "VM stopped"]:
        values = [r["phases_ms"][label] for r in warm if label in r["phases_ms"]]
        if values:
            warm_summary[label] = statistics.median(values)
            print(f"  {label:32}{warm_summary[label]:>10.2f}")
    warm_summary["wall_ms"] = statistics.median(r["wall_ms"] for r in warm)
    warm_summary["maxrss_mib"] = statistics.median(r["maxrss_mib"] for r in warm)
    print(f"  {'wall':32}{warm_summary['wall_ms']:>10.2f}\n  {'peak RSS (MiB)':32}{warm_summary['maxrss_mib']:>10.1f}")

if json_path:
    host = open("/proc/cpuinfo").read()
    model = re.search(r"model name\s*:\s*(.*)", host)
    with open(json_path, "w") as out:
        json.dump({"command": "scripts/bench-start.sh --runs %d%s" % (runs, " --warm-run" if image else ""), "phase_seed": seed, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "host": {"cpu": model.group(1) if model else "?", "kvm": "nested PVM (kvm_pvm)" if os.path.exists("/sys/module/kvm_pvm") else "hardware KVM"},
                   "summary": summary, "runs": results,
                   "resident_memory_mib": {"summary": memory_summary, "samples": memory},
                   "warm_run": {"image": image, "summary": warm_summary, "runs": warm} if image else None}, out, indent=2, sort_keys=True)
PY
