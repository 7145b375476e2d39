#!/usr/bin/env bash
# The project's test command (README; .ci/run calls it).
#
# Builds the guest first (cached outside the repo, so a second run is quick),
# then runs every test tier: unit tests, KVM tests with tiny hand-made guests,
# and the end-to-end boots of the real guest kernel (slow on a PVM host).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== building the guest kernel and init (cached in ${SKIFF_CACHE_DIR:-~/.cache/skiff})"
scripts/build-guest.sh

echo "== building the test container image (cached likewise; installs umoci if missing)"
scripts/make-test-image.sh

echo "== swift build (the end-to-end tests run the skiff executable)"
swift build

echo "== swift test"
# One test at a time: a guest boot wants both cores of a small machine.
swift test --no-parallel

echo "== fuzz targets, briefly (scripts/fuzz.sh; long runs are done by hand)"
exec scripts/fuzz.sh --time "${SKIFF_FUZZ_SECONDS:-15}"
