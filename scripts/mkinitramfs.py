#!/usr/bin/env python3
"""Writes an uncompressed initramfs (cpio "newc") without needing root.

Device nodes such as /dev/console are written as archive entries, so no mknod
is needed on the host. Uncompressed on purpose: on a host that interprets the
guest kernel (see shared/docs/kvm-on-this-host.md) gunzip costs seconds.

usage: mkinitramfs.py OUT --file /GUEST=HOST ... [--busybox-links HOST_BUSYBOX]
"""
import argparse
import os
import subprocess
import sys

DIRS = ["/bin", "/sbin", "/usr", "/usr/bin", "/usr/sbin", "/dev", "/proc", "/sys",
        "/tmp", "/mnt", "/root", "/etc", "/run"]


class Writer:
    def __init__(self, out):
        self.out = out
        self.ino = 1
        self.size = 0

    def _write(self, data):
        self.out.write(data)
        self.size += len(data)

    def _pad(self):
        if self.size % 4:
            self._write(b"\0" * (4 - self.size % 4))

    def entry(self, name, mode, data=b"", rdev=(0, 0), nlink=1):
        name_bytes = name.lstrip("/").encode() + b"\0"
        fields = [self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1],
                  len(name_bytes), 0]
        self.ino += 1
        self._write(b"070701" + b"".join(b"%08x" % f for f in fields))
        self._write(name_bytes)
        self._pad()
        self._write(data)
        self._pad()

    def trailer(self):
        self.entry("TRAILER!!!", 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--file", action="append", default=[], help="/guest/path=host/path")
    ap.add_argument("--busybox-links", help="add a symlink for every applet of this busybox")
    args = ap.parse_args()

    files = {}
    for spec in args.file:
        guest, _, host = spec.partition("=")
        if not guest.startswith("/") or not host:
            sys.exit(f"mkinitramfs: bad --file {spec!r} (want /guest/path=host/path)")
        files[guest] = host

    links = {}
    if args.busybox_links:
        listing = subprocess.run([args.busybox_links, "--list-full"], check=True,
                                 capture_output=True, text=True).stdout.split()
        for path in listing:
            guest = "/" + path
            if "/" in path and guest not in files:
                links[guest] = "/bin/busybox"

    with open(args.out, "wb") as out:
        w = Writer(out)
        for d in DIRS:
            w.entry(d, 0o040755, nlink=2)
        w.entry("/dev/console", 0o020600, rdev=(5, 1))
        w.entry("/dev/null", 0o020666, rdev=(1, 3))
        w.entry("/dev/port", 0o020600, rdev=(1, 4))  # boot markers, before /dev is mounted
        for guest, host in sorted(files.items()):
            with open(host, "rb") as f:
                data = f.read()
            w.entry(guest, 0o100755 if os.access(host, os.X_OK) else 0o100644, data)
        for guest, target in sorted(links.items()):
            w.entry(guest, 0o120777, target.encode())
        w.trailer()


if __name__ == "__main__":
    main()
