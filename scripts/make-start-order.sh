#!/usr/bin/env bash
# Rewrites Sources/skiff/start-path.order: the functions `skiff` calls on its
# start paths, in the order of their first call. The linker lays them out side
# by side (Package.swift: lld's --symbol-ordering-file), so a start maps the
# few hundred KiB of text it runs instead of every 64 KiB window of a 10 MB
# executable that one of those functions happens to sit in (issue 11's peak
# RSS; scripts/bench-start.sh measures it).
#
# Traced, in this order (bench/start/first-calls.c, one INT3 per function):
#   skiff boot --kernel tiny.elf --memory 32 --console none   (bench-start.sh's run)
#   skiff run IMAGE sh -c 'exit 0', warm (the test image, restored from its snapshot)
#
# A stale order file costs memory, never correctness: names it lists that no
# longer exist are ignored, and functions it does not list are laid out as
# usual. Run this after changing what the start path calls, and commit the file.
# usage: scripts/make-start-order.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -Wall -Werror -o "$work/first-calls" "$repo/bench/start/first-calls.c"
python3 "$repo/bench/start/make-tiny-guest.py" "$work/tiny.elf"
(cd "$repo" && swift build -c release --disable-local-rpath --product skiff >&2)
exe=$(realpath "$repo/.build/release/skiff")

# Every function of the executable's .text, as offsets from its load address
# (the tracer's input), and the names at each offset (for the order file).
python3 - "$exe" "$work/functions" "$work/names.json" <<'PY'
import json, subprocess, sys
exe, functions, names_path = sys.argv[1:]
for line in subprocess.run(["readelf", "-SW", exe], capture_output=True, text=True, check=True).stdout.splitlines():
    parts = line.replace("[ ", "[").split()
    if len(parts) > 5 and parts[1] == ".text":
        start, size = int(parts[3], 16), int(parts[5], 16)
names = {}
for line in subprocess.run(["nm", "-S", "--defined-only", exe], capture_output=True, text=True, check=True).stdout.splitlines():
    parts = line.split(None, 3)
    if len(parts) == 4 and parts[2] in "tTwW":
        address, length = int(parts[0], 16), int(parts[1], 16)
        if start <= address < start + size and length > 0:
            names.setdefault(f"{address:x}", {"size": length, "names": []})["names"].append(parts[3])
with open(functions, "w") as f:
    f.writelines(address + "\n" for address in names)
json.dump(names, open(names_path, "w"))
PY

traces=()
"$work/first-calls" "$work/functions" "$work/boot.calls" \
    "$exe" boot --kernel "$work/tiny.elf" --memory 32 --console none
traces+=("$work/boot.calls")
# A warm `skiff run`: the untraced first run builds what is missing (on a
# fresh machine that is the guest kernel, minutes) and saves the image's
# snapshot, so the traced one restores it, as a user's second run does.
image=$("$repo/scripts/make-test-image.sh" | sed -n 's/^image=//p')
"$exe" run "$image" sh -c 'exit 0' >/dev/null
"$work/first-calls" "$work/functions" "$work/run.calls" "$exe" run "$image" sh -c 'exit 0' >/dev/null
traces+=("$work/run.calls")

# Offsets → symbol names, first call first, each name once (lld warns on repeats).
python3 - "$work/names.json" "$repo/Sources/skiff/start-path.order" "${traces[@]}" <<'PY'
import json, sys
names_path, out, traces = sys.argv[1], sys.argv[2], sys.argv[3:]
functions = json.load(open(names_path))
order, listed, seen, total = [], set(), set(), 0
for trace in traces:
    for line in open(trace):
        address = line.strip()
        if address in seen:
            continue
        seen.add(address)
        total += functions[address]["size"]
        for name in functions[address]["names"]:
            if name not in listed:
                listed.add(name)
                order.append(name)
with open(out, "w") as f:
    f.writelines(name + "\n" for name in order)
print(f"make-start-order: {len(seen)} functions ({total // 1024} KiB) → {out}", file=sys.stderr)
PY

# SwiftPM does not know the order file is an input of the link: drop the
# linked executables so that the next build links them with the new order.
rm -f "$repo"/.build/*/release/skiff "$repo"/.build/*/release/skiff-oci "$repo"/.build/*/debug/skiff "$repo"/.build/*/debug/skiff-oci
