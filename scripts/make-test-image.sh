#!/usr/bin/env bash
# Builds Skiff's test container image offline: an OCI image layout made with
# umoci from busybox-static, with what `skiff run` must get right:
#   layer 1  busybox and its applets, /etc/passwd and /etc/group with a non-root
#            user (app, 1000:1000, also in group staff), a file to be deleted
#            (/etc/secret.txt), a directory to be replaced (/opt/data)
#   layer 2  a whiteout (.wh.secret.txt), an opaque directory (/opt/data/.wh..wh..opq
#            plus new.txt), a symlink, a hard link, a script
#   config   Entrypoint + Cmd, Env, WorkingDir, User
#
# Cached outside the repository, keyed by this script and the busybox version.
# Output (stdout): `image=DIR:TAG` (an argument for `skiff run`). Progress: stderr.
# Environment: SKIFF_CACHE_DIR (default ${XDG_CACHE_HOME:-~/.cache}/skiff).
set -euo pipefail

cache=${SKIFF_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/skiff}
say() { echo "make-test-image: $*" >&2; }
die() { echo "make-test-image: error: $*" >&2; exit 1; }

need_pkgs=()
command -v umoci >/dev/null || need_pkgs+=(umoci)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
command -v python3 >/dev/null || need_pkgs+=(python3)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing packages: ${need_pkgs[*]} (run as root, or: sudo apt-get install ${need_pkgs[*]})"
  say "installing ${need_pkgs[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >&2
fi

busybox_version=$(/bin/busybox 2>&1 | sed -n 1p)
key=$( { echo "$busybox_version"; umoci --version; cat "$0"; } | sha256sum | cut -c1-16)
layout=$cache/test-image-$key
tag=test
if [ -f "$layout/index.json" ]; then
  echo "image=$layout:$tag"
  exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/test-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
say "building the test image (key $key)"

python3 - "$work" /bin/busybox <<'PY'
import io, subprocess, sys, tarfile

work, busybox = sys.argv[1], sys.argv[2]
MTIME = 1_700_000_000  # fixed, so the layers' digests do not depend on the day

def add(tar, name, kind=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, gid, MTIME
    info.linkname = link
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)

def directory(tar, name, mode=0o755, uid=0, gid=0):
    add(tar, name, tarfile.DIRTYPE, mode=mode, uid=uid, gid=gid)

applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
with tarfile.open(f"{work}/layer1.tar", "w", format=tarfile.PAX_FORMAT) as tar:
    for d in ["bin", "etc", "home", "opt", "opt/data", "root", "tmp", "usr", "usr/bin", "var"]:
        directory(tar, d, mode=0o1777 if d == "tmp" else 0o755)
    directory(tar, "home/app", mode=0o750, uid=1000, gid=1000)
    with open(busybox, "rb") as f:
        add(tar, "bin/busybox", data=f.read(), mode=0o755)
    for applet in applets:
        if applet != "busybox":
            add(tar, f"bin/{applet}", tarfile.SYMTYPE, link="busybox", mode=0o777)
    add(tar, "etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n"
        b"app:x:1000:1000:Skiff test user:/home/app:/bin/sh\n"
        b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    add(tar, "etc/group", data=b"root:x:0:\nstaff:x:50:app\napp:x:1000:\nnogroup:x:65534:\n")
    add(tar, "etc/secret.txt", data=b"this file is deleted by layer 2\n")
    add(tar, "opt/data/old.txt", data=b"hidden by layer 2's opaque directory\n")

with tarfile.open(f"{work}/layer2.tar", "w", format=tarfile.PAX_FORMAT) as tar:
    add(tar, "etc/.wh.secret.txt")
    directory(tar, "opt/data")
    add(tar, "opt/data/.wh..wh..opq")
    add(tar, "opt/data/new.txt", data=b"from layer 2\n")
    directory(tar, "app")
    # Like many images' entrypoints: says what it got, then runs it if it is a command.
    add(tar, "app/entry.sh", mode=0o755, data=b"#!/bin/sh\necho \"entry: $*\"\n"
        b"if [ $# -gt 0 ] && command -v \"$1\" >/dev/null; then exec \"$@\"; fi\n")
    add(tar, "app/entry-again.sh", tarfile.LNKTYPE, link="app/entry.sh")
    add(tar, "usr/bin/data", tarfile.SYMTYPE, link="../../opt/data/new.txt", mode=0o777)
PY

image=$work/layout
umoci init --layout "$image"
umoci new --image "$image:$tag"
history=(--history.created "2023-11-14T22:13:20Z" --history.author skiff)
umoci raw add-layer "${history[@]}" --history.comment "busybox, users, files to delete" --image "$image:$tag" "$work/layer1.tar"
umoci raw add-layer "${history[@]}" --history.comment "whiteout, opaque dir, links" --image "$image:$tag" "$work/layer2.tar"
umoci config "${history[@]}" --image "$image:$tag" --created "2023-11-14T22:13:20Z" \
  --config.entrypoint /app/entry.sh --config.cmd default-argument \
  --config.env FOO=from-image --config.env "GREETING=hello world" \
  --config.env PATH=/usr/local/bin:/usr/bin:/bin \
  --config.workingdir /home/app --config.user app
umoci gc --layout "$image"

rm -rf "$layout"
mv "$image" "$layout"
echo "image=$layout:$tag"
