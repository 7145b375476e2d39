#!/usr/bin/env bash
# The VMM's own start, measured against its floor and a peer (issue 11):
#   skiff boot --kernel tiny.elf --memory 32 --console none     (release build)
#   bench/start/kvm-floor.c: the same KVM objects in ~60 lines of C
#   qemu-system-x86_64 -M microvm on the same tiny guest (where installed)
# Runs alternate (skiff, C, QEMU, skiff, ...), RUNS each after one untimed
# warm-up. Each run is spawned by bench/start/measure.c, which hands its
# CLOCK_MONOTONIC spawn time to skiff (SKIFF_SPAWNED_AT) and reports wall, CPU
# and peak RSS from wait4. Then, for skiff and QEMU, what that RSS is made of:
# each runs a guest that spins, and after 1 s /proc/PID/smaps_rollup is read
# (private dirty memory is what each further VM costs; clean file pages, the
# executable's text, are shared between VMMs). Prints tables; writes JSON
# with every run.
# usage: scripts/bench-start.sh [--runs N] [--json PATH]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=20
json=""
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--json PATH]" >&2; exit 64 ;;
  esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -Wall -Werror -o "$work/measure" "$repo/bench/start/measure.c"
cc -O2 -Wall -Werror -o "$work/kvm-floor" "$repo/bench/start/kvm-floor.c"
python3 "$repo/bench/start/make-tiny-guest.py" "$work/tiny.elf"
python3 "$repo/bench/start/make-tiny-guest.py" --spin "$work/spin.elf"
(cd "$repo" && swift build -c release --product skiff >&2)
# A freshly linked executable's pages are dirty in the page cache until written
# back, and smaps counts them as the VMM's private dirty memory.
sync
skiff="$repo/.build/release/skiff"
qemu=$(command -v qemu-system-x86_64 || true)

python3 - "$work" "$skiff" "$runs" "$json" "${qemu:-}" <<'PY'
import json, os, re, statistics, subprocess, sys, time
work, skiff, runs, json_path, qemu = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
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
    first = None
    if name == "skiff":
        m = re.search(r"first guest instruction\s+([0-9.]+) ms", text)
        first = float(m.group(1)) if m else None          # ms since spawn (SKIFF_SPAWNED_AT)
    elif name == "C floor":
        m = re.search(r"first_instruction_ns=(\d+)", text)
        first = (int(m.group(1)) - run["spawned_ns"]) / 1e6 if m else None
    ok = run["status"] == 0 or (name == "QEMU microvm" and run["status"] == ((0xfe << 1) | 1) & 0xff)
    if not ok:
        sys.exit(f"{name} exited {run['status']}:\n{text}")
    return {"wall_ms": run["wall_ns"] / 1e6, "cpu_ms": run["cpu_ns"] / 1e6, "maxrss_mib": run["maxrss_kib"] / 1024,
            "first_instruction_ms": first}

results = {name: [] for name in commands}
for name in commands: once(name)                      # warm-up, untimed
for _ in range(runs):
    for name in commands: results[name].append(once(name))

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

if json_path:
    host = open("/proc/cpuinfo").read()
    model = re.search(r"model name\s*:\s*(.*)", host)
    with open(json_path, "w") as out:
        json.dump({"command": "scripts/bench-start.sh --runs %d" % runs, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "host": {"cpu": model.group(1) if model else "?", "kvm": "nested PVM (kvm_pvm)" if os.path.exists("/sys/module/kvm_pvm") else "hardware KVM"},
                   "summary": summary, "runs": results,
                   "resident_memory_mib": {"summary": memory_summary, "samples": memory}}, out, indent=2, sort_keys=True)
PY
