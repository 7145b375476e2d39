#!/usr/bin/env bash
# The project's test command (README; .ci/run calls it).
#
# Builds the guest first (cached outside the repo, so a second run is quick),
# then runs every test tier: unit tests, KVM tests with tiny hand-made guests,
# and the end-to-end boots of the real guest kernel (slow on a PVM host).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

echo "== building the guest kernel and init (cached)"
scripts/build-guest.sh

echo "== swift test"
# Boots are slow on an interpreting host; run suites one at a time so two boots
# never compete for the two cores.
swift test --no-parallel 2>&1 | tee /tmp/skiff-test.log
status=${PIPESTATUS[0]}
exit "$status"
