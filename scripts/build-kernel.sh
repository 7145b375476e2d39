#!/usr/bin/env bash
# Builds the guest kernel from Debian's linux-source-6.1 with guest/kernel's
# patches and config fragment. Called by build-guest.sh, which owns the cache.
# usage: build-kernel.sh WORK_DIR OUTPUT_DIR   (OUTPUT_DIR gets vmlinux, bzImage, .config)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$1
out=$2
jobs=${SKIFF_JOBS:-$(nproc)}
say() { echo "build-kernel: $*" >&2; }
die() { echo "build-kernel: error: $*" >&2; exit 1; }

rm -rf "$work" && mkdir -p "$work"
tar -C "$work" -xf /usr/src/linux-source-6.1.tar.xz
tree=$work/linux-source-6.1
for p in "$repo"/guest/kernel/*.patch; do
  say "applying $(basename "$p")"
  patch -s -d "$tree" -p1 < "$p"
done
make -s -C "$tree" tinyconfig >&2
(cd "$tree" && ./scripts/kconfig/merge_config.sh -m .config "$repo"/guest/kernel/*.config >/dev/null)
make -s -C "$tree" olddefconfig >&2
# Kconfig drops what it cannot satisfy without a word: check every line we asked for.
missing=0
while IFS= read -r line; do
  case "$line" in
    CONFIG_*=*) grep -qx "$line" "$tree/.config" || { say "config did not take: $line"; missing=1; } ;;
    "# CONFIG_"*" is not set")
      sym=${line#\# }; sym=${sym%% *}
      if grep -q "^$sym=" "$tree/.config"; then say "config did not take: $line"; missing=1; fi ;;
  esac
done < <(cat "$repo"/guest/kernel/*.config)
[ $missing = 0 ] || die "kernel config fragment not satisfied (see above)"
make -s -C "$tree" -j"$jobs" vmlinux bzImage >&2
mkdir -p "$out.tmp"
cp "$tree/vmlinux" "$tree/arch/x86/boot/bzImage" "$tree/.config" "$out.tmp/"
strip --strip-debug "$out.tmp/vmlinux" 2>/dev/null || true
rm -rf "$out" && mv "$out.tmp" "$out"
rm -rf "$work"
