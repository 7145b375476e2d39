#!/usr/bin/env bash
# Snapshots measured (issue 13), in one run on this machine:
#  1. Restore against a cold start, alternated RUNS times after a warm-up:
#     skiff boot --kernel tiny.elf --memory 32 --console none     (spawn → first guest instruction)
#     skiff restore DIR --console none -- /bin/true                (the 128 MiB Linux guest saved at ready:
#        spawn → guest resumed, → first VM exit, → workload started, → exit)
#  2. CLONES `skiff run` of the test image at once from its ready snapshot,
#     each with its own exit code: every status must be its own.
#  3. CLONES idle restores at once: PSS and RSS of each VMM process.
# Each timed run is spawned by bench/start/measure.c (spawn time handed over in
# SKIFF_SPAWNED_AT; wall, CPU and peak RSS from wait4). Prints a table; writes
# JSON with every run.
# usage: scripts/bench-snapshot.sh [--runs N] [--clones N] [--json PATH]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=10
clones=20
json=""
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --clones) clones=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--clones N] [--json PATH]" >&2; exit 64 ;;
  esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -Wall -Werror -o "$work/measure" "$repo/bench/start/measure.c"
python3 "$repo/bench/start/make-tiny-guest.py" "$work/tiny.elf"
(cd "$repo" && swift build -c release --disable-local-rpath --product skiff >&2)
skiff="$repo/.build/release/skiff"
image=$(bash "$repo/scripts/make-test-image.sh" | sed -n 's/^image=//p')
export SKIFF_IMAGE_DIR="$work/images"

echo "bench-snapshot: booting the guest to take the snapshots (a cold boot each; slow on a PVM host)" >&2
"$skiff" boot --memory 128 --console none --snapshot-at ready --snapshot-to "$work/ready" >&2
"$skiff" run "$image" true >&2

python3 - "$work" "$skiff" "$runs" "$clones" "$json" "$image" <<'PY'
import json, os, re, statistics, subprocess, sys, time
work, skiff, runs, clones, json_path, image = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
commands = {
    "cold tiny guest": [skiff, "boot", "--kernel", os.path.join(work, "tiny.elf"), "--memory", "32", "--console", "none", "--timings"],
    "restore (128 MiB Linux at ready)": [skiff, "restore", os.path.join(work, "ready"), "--console", "none", "--timings", "--", "/bin/true"],
}
rows = {"cold tiny guest": ["first guest instruction"],
        "restore (128 MiB Linux at ready)": ["VMM setup done", "first exit after restore", "hand-over taken", "workload started"]}

def once(name):
    out = os.path.join(work, "out.txt")
    line = subprocess.run([os.path.join(work, "measure"), out] + commands[name], capture_output=True, text=True, check=True).stdout
    run = {k: int(v) for k, v in re.findall(r"(\w+)=(-?\d+)", line)}
    text = open(out, errors="replace").read()
    if run["status"] != 0:
        sys.exit(f"{name} exited {run['status']}:\n{text}")
    result = {"wall_ms": run["wall_ns"] / 1e6, "cpu_ms": run["cpu_ns"] / 1e6, "maxrss_mib": run["maxrss_kib"] / 1024}
    for label in rows[name]:
        m = re.search(re.escape(label) + r"\s+([0-9.]+) ms", text)
        result[label] = float(m.group(1)) if m else None       # ms since spawn
    return result

results = {name: [] for name in commands}
for name in commands: once(name)                                # warm-up, untimed
for _ in range(runs):
    for name in commands: results[name].append(once(name))

def median(name, key):
    values = [r[key] for r in results[name] if r.get(key) is not None]
    return statistics.median(values) if values else None

print(f"snapshot benchmark: {runs} alternated runs each, medians (ms since spawn)")
summary = {}
for name in commands:
    row = {key: median(name, key) for key in rows[name] + ["wall_ms", "cpu_ms", "maxrss_mib"]}
    summary[name] = row
    parts = ", ".join(f"{k} {v:.2f}" for k, v in row.items() if v is not None)
    print(f"  {name}: {parts}")
cold_first = summary["cold tiny guest"]["first guest instruction"]
resumed = summary["restore (128 MiB Linux at ready)"]["VMM setup done"]
first_exit = summary["restore (128 MiB Linux at ready)"]["first exit after restore"]
print(f"  restore → guest resumed {resumed:.2f} ms vs cold tiny → first instruction {cold_first:.2f} ms "
      f"({'within' if resumed <= cold_first else 'over'} the target); first VM exit after restore {first_exit:.2f} ms")

# Clones at once, each with its own exit code.
procs = [subprocess.Popen([skiff, "run", image, "sh", "-c", f"exit {n}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
         for n in range(1, clones + 1)]
started = time.monotonic()
statuses = [p.wait() for p in procs]
elapsed = time.monotonic() - started
right = sum(1 for n, s in zip(range(1, clones + 1), statuses) if s == n)
print(f"  {clones} skiff run restores at once: {right}/{clones} exited with their own status, all done in {elapsed:.1f} s")

# Idle clones at once: PSS of each VMM process.
idle = [subprocess.Popen([skiff, "run", image, "sh", "-c", "echo ready; exec sleep 100000"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True) for _ in range(clones)]
for p in idle:
    while True:
        line = p.stdout.readline()
        if not line:
            sys.exit("an idle clone ended before it printed ready")
        if line.strip() == "ready":
            break
time.sleep(1)  # let the guests settle into their idle loop
def rollup(pid):
    text = open(f"/proc/{pid}/smaps_rollup").read()
    field = lambda name: int(re.search(rf"^{name}:\s+(\d+) kB", text, re.M).group(1)) / 1024
    return field("Pss"), field("Rss")
memory = [rollup(p.pid) for p in idle]
for p in idle:
    p.kill(); p.wait()
pss = [m[0] for m in memory]; rss = [m[1] for m in memory]
print(f"  {clones} idle restores at once: PSS median {statistics.median(pss):.1f} MiB (max {max(pss):.1f}), "
      f"RSS median {statistics.median(rss):.1f} MiB")
if json_path:
    host = open("/proc/cpuinfo").read()
    model = re.search(r"model name\s*:\s*(.*)", host)
    with open(json_path, "w") as out:
        json.dump({"command": f"scripts/bench-snapshot.sh --runs {runs} --clones {clones}",
                   "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "host": {"cpu": model.group(1) if model else "?",
                            "kvm": "nested PVM (kvm_pvm)" if os.path.exists("/sys/module/kvm_pvm") else "hardware KVM"},
                   "summary": summary, "runs": results,
                   "clones": {"count": clones, "own_status": right, "seconds": elapsed, "statuses": statuses,
                              "idle_pss_mib": pss, "idle_rss_mib": rss}}, out, indent=2, sort_keys=True)
PY
