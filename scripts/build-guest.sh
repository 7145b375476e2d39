#!/usr/bin/env bash
# Builds Skiff's guest: the microVM kernel (vmlinux + bzImage) from Debian's
# linux-source-6.1 with guest/kernel/*.config and *.patch, and the initramfs
# holding guest/init (PID 1) and a static busybox.
#
# Results live in a cache outside the repository, keyed by every input (source
# package version, config fragment, patches, init source, this script), so a
# second run prints the cached paths at once and a fresh machine still works.
#
# Output (stdout): `kernel=PATH`, `bzimage=PATH`, `initrd=PATH`. Progress goes to stderr.
# Environment: SKIFF_CACHE_DIR (default ${XDG_CACHE_HOME:-~/.cache}/skiff),
#              SKIFF_JOBS (default: nproc).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${SKIFF_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/skiff}
jobs=${SKIFF_JOBS:-$(nproc)}
say() { echo "build-guest: $*" >&2; }
die() { echo "build-guest: error: $*" >&2; exit 1; }

# --- packages -----------------------------------------------------------------
need_pkgs=()
[ -f /usr/src/linux-source-6.1.tar.xz ] || need_pkgs+=(linux-source-6.1)
command -v musl-gcc >/dev/null || need_pkgs+=(musl-tools)
[ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 || need_pkgs+=(busybox-static)
for tool in flex bison bc make gcc python3 xz; do
  command -v "$tool" >/dev/null || need_pkgs+=("$tool")
done
[ -f /usr/include/libelf.h ] || need_pkgs+=(libelf-dev)
command -v cpio >/dev/null || need_pkgs+=(cpio)   # the tests pack a foreign initramfs with it
[ -f /usr/include/openssl/ssl.h ] || need_pkgs+=(libssl-dev)
# Skiff itself links libarchive (image layers) and Nettle (SHA-256) and runs
# mkfs.ext4 (root disks); the device tests make ext4 images (debugfs) and a
# netns with a TAP (ip).
[ -f /usr/include/archive.h ] || need_pkgs+=(libarchive-dev)
[ -f /usr/include/nettle/sha2.h ] || need_pkgs+=(nettle-dev)
[ -x /usr/sbin/mkfs.ext4 ] || [ -x /sbin/mkfs.ext4 ] || need_pkgs+=(e2fsprogs)
[ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || [ -x /usr/bin/ip ] || need_pkgs+=(iproute2)
# `skiff bench` compares against real OCI runtimes (crun, or runc where crun
# refuses the host's cgroup layout).
command -v runc >/dev/null || need_pkgs+=(runc)
command -v crun >/dev/null || need_pkgs+=(crun)
# The OCI-runtime tests drive skiff-oci through podman (and its conmon).
command -v podman >/dev/null || need_pkgs+=(podman)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing packages: ${need_pkgs[*]} (run as root, or: sudo apt-get install ${need_pkgs[*]})"
  say "installing ${need_pkgs[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >&2
fi

# One build at a time per cache (a test run and a `skiff boot` may race here).
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

src_version=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || echo unknown)

# --- kernel -------------------------------------------------------------------
# Keyed by what decides the kernel's bytes: the source package, the config
# fragment, the patches and the recipe (scripts/build-kernel.sh).
kernel_key=$( { echo "$src_version"; cat "$repo"/guest/kernel/*.config "$repo"/guest/kernel/*.patch "$repo/scripts/build-kernel.sh"; } | sha256sum | cut -c1-16)
kernel_dir=$cache/kernel-$kernel_key
if [ ! -f "$kernel_dir/vmlinux" ]; then
  say "building the guest kernel (linux-source $src_version, key $kernel_key); 5-8 minutes on 2 cores"
  SKIFF_JOBS=$jobs bash "$repo/scripts/build-kernel.sh" "$cache/kernel-build" "$kernel_dir"
  say "kernel ready: $kernel_dir"
fi

# --- init and initramfs -------------------------------------------------------
busybox_version=$(/bin/busybox 2>&1 | sed -n 1p)  # sed reads it all: head could SIGPIPE busybox under pipefail
initrd_key=$( { echo "$busybox_version"; musl-gcc --version 2>&1 | sed -n 1p; cat "$repo"/guest/init/*.c "$repo"/guest/init/*.h "$repo"/scripts/mkinitramfs.py; } 2>/dev/null | sha256sum | cut -c1-16)
initrd_dir=$cache/initrd-$initrd_key
if [ ! -f "$initrd_dir/initramfs.cpio" ]; then
  say "building the guest init and initramfs (key $initrd_key)"
  mkdir -p "$initrd_dir.tmp"
  musl-gcc -static -Os -Wall -Wextra -Werror -o "$initrd_dir.tmp/init" "$repo"/guest/init/*.c
  strip "$initrd_dir.tmp/init"
  size=$(stat -c %s "$initrd_dir.tmp/init")
  [ "$size" -lt 102400 ] || die "guest init is $size bytes; the target is under 100 KiB"
  python3 "$repo/scripts/mkinitramfs.py" "$initrd_dir.tmp/initramfs.cpio" \
    --file /init="$initrd_dir.tmp/init" \
    --file /bin/busybox=/bin/busybox \
    --busybox-links /bin/busybox
  rm -rf "$initrd_dir" && mv "$initrd_dir.tmp" "$initrd_dir"
fi

result="kernel=$kernel_dir/vmlinux
bzimage=$kernel_dir/bzImage
initrd=$initrd_dir/initramfs.cpio"

# For `skiff`'s start path: the same paths under a key of the repository's own
# inputs (relative path, newline, contents, for each file in byte order), which
# skiff computes in-process (GuestArtifacts.sourceKey), so that a warm start
# runs no script. The system packages' versions are part of the keys above but
# not of this one: after upgrading them, run this script again.
source_key=$(cd "$repo" && LC_ALL=C; for f in guest/kernel/*.config guest/kernel/*.patch guest/init/*.c guest/init/*.h \
    scripts/build-guest.sh scripts/build-kernel.sh scripts/mkinitramfs.py; do printf '%s\n' "$f"; cat "$f"; done | sha256sum | cut -c1-16)
printf '%s\n' "$result" > "$cache/guest-$source_key.paths.tmp" && mv "$cache/guest-$source_key.paths.tmp" "$cache/guest-$source_key.paths"
echo "$result"
