#!/usr/bin/env bash
# Builds Skiff's libFuzzer targets and runs each for a bounded time.
#
#   scripts/fuzz.sh [--time SECONDS] [--merge] [TARGET...]
#
# Targets (Fuzz/<name>, seeds in Fuzz/corpus/<name>): kernel, virtio,
# snapshot, image-layout, docker-archive, layer, json (Swift, built by SwiftPM with
# --sanitize fuzzer --sanitize address into .build/fuzz) and run-spec (the
# guest init's C parser, clang -fsanitize=fuzzer,address). Each runs for
# SECONDS (default 30) on a copy of its seeds; new inputs stay in
# .build/fuzz/work/<name> unless --merge minimises them into the seed
# directory. A crash, leak or failed check stops with its reproducer in
# .build/fuzz/artifacts/ and a non-zero exit. CI runs every target briefly.
# SKIFF_FUZZ_FLAGS adds libFuzzer flags (-print_coverage=1 lists the
# functions each run reached, in .build/fuzz/logs/TARGET.log).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=30
merge=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --time) seconds="$2"; shift 2 ;;
    --merge) merge=1; shift ;;
    -h|--help) sed -n 2,15p "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 64 ;;
    *) targets+=("$1"); shift ;;
  esac
done
all=(kernel virtio snapshot image-layout docker-archive layer json run-spec)
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

out=.build/fuzz
mkdir -p "$out/artifacts" "$out/work" "$out/logs"
products=()
for target in "${targets[@]}"; do
  case "$target" in
    run-spec) ;;
    kernel|virtio|snapshot|image-layout|docker-archive|layer|json) products+=("fuzz-$target") ;;
    *) echo "fuzz.sh: no target '$target' (${all[*]})" >&2; exit 64 ;;
  esac
done
clang=$(dirname "$(command -v swift)")/clang
echo "== building ${targets[*]}"
# SwiftPM's --sanitize fuzzer alone left most objects without coverage
# counters here (swift 6.3: the frontend got -sanitize=fuzzer but no
# -sanitize-coverage), so the coverage kind is spelled out; the check below
# refuses a binary libFuzzer cannot see into.
build() { # PRODUCT
  SKIFF_FUZZ=1 swift build --scratch-path "$out" --sanitize fuzzer --sanitize address \
    -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp --product "$1" 2>&1 \
    | { grep -E "error" || true; }
}
instrumented() { # (the output is captured whole: grep -q would end the pipe early)
  local output
  output=$("$out/debug/$1" -runs=1 "Fuzz/corpus/${1#fuzz-}" 2>&1 || true)
  grep -q 'INITED cov:' <<<"$output"
}
for product in "${products[@]}"; do
  build "$product"
  instrumented "$product" || { echo "fuzz.sh: $product has no coverage instrumentation" >&2; exit 1; }
done
if printf '%s\n' "${targets[@]}" | grep -qx run-spec; then
  "$clang" -g -O1 -fsanitize=fuzzer,address -o "$out/fuzz-run-spec" Fuzz/run-spec/run_spec_fuzz.c guest/init/run_spec.c 2>&1 \
    | { grep -v "Cannot export local symbol" || true; }
fi

failed=0
printf '%-15s %10s %8s %6s %6s %7s  %s\n' target runs runs/s cov ft corpus result
for target in "${targets[@]}"; do
  binary="$out/debug/fuzz-$target"
  [ "$target" = run-spec ] && binary="$out/fuzz-run-spec"
  work="$out/work/$target"
  mkdir -p "$work"
  log="$out/logs/$target.log"
  set +e
  "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/$target-" ${SKIFF_FUZZ_FLAGS:-} "$work" "Fuzz/corpus/$target" > "$log" 2>&1
  status=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corpus=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  result=ok
  if [ $status -ne 0 ]; then
    result="FAILED ($(grep -m1 -oE 'ERROR: [A-Za-z]+: [a-z-]+|Fatal error[^\n]*|precondition failure[^\n]*|deadly signal|timeout' "$log" || echo "exit $status")); see $log"
    failed=1
  fi
  printf '%-15s %10s %8s %6s %6s %7s  %s\n' "$target" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corpus:-?}" "$result"
  if [ $merge -eq 1 ] && [ $status -eq 0 ]; then
    "$binary" -merge=1 "Fuzz/corpus/$target" "$work" > "$out/logs/$target.merge.log" 2>&1
  fi
done
exit $failed
