#!/usr/bin/env python3
"""Writes the virtio fuzz target's seeds: a Linux-like handshake, queue 0
set up in guest memory, one request made available and notified, for each
device (block read, block write, entropy, network receive and transmit).

usage: make-virtio-seeds.py DIRECTORY
"""
import struct, sys, os

RAM = 16 << 10
def write(reg, value): return struct.pack("<BBI", 0x20, reg, value)
def read(reg): return struct.pack("<BBI", 0x26, reg, 0)
def notify(queue): return struct.pack("<BBI", 0x0A, queue, 0)
def frame(length): return struct.pack("<BBBBBB", 0x0C, 0, length, 0, 0, 0)

def handshake(queues):
    p = write(0x70, 0) + write(0x70, 1) + write(0x70, 3)
    p += write(0x14, 0) + read(0x10) + write(0x14, 1) + read(0x10)
    p += write(0x24, 0) + write(0x20, 0) + write(0x24, 1) + write(0x20, 1)  # VIRTIO_F_VERSION_1
    p += write(0x70, 11) + read(0x70)
    for q, (desc, avail, used) in enumerate(queues):
        p += write(0x30, q) + read(0x34) + write(0x38, 8)
        p += write(0x80, desc) + write(0x84, 0) + write(0x90, avail) + write(0x94, 0) + write(0xA0, used) + write(0xA4, 0)
        p += write(0x44, 1)
    p += write(0x70, 15)
    return p

def memory(chains):
    ram = bytearray(RAM)
    for q, (desc_at, avail_at, descriptors) in enumerate(chains):
        for i, (addr, length, flags, nxt) in enumerate(descriptors):
            struct.pack_into("<QIHH", ram, desc_at + 16 * i, addr, length, flags, nxt)
        struct.pack_into("<HHH", ram, avail_at, 0, 1, 0)
    return bytes(ram)

NEXT, WRITE = 1, 2
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
queues = [(0x1000, 0x1800, 0x1C00), (0x2000, 0x2800, 0x2C00)]
# block read: header (type 0 = IN, sector 1), 512 data bytes, status
blk_read = memory([(0x1000, 0x1800, [(0x3000, 16, NEXT, 1), (0x3100, 512, NEXT | WRITE, 2), (0x3400, 1, WRITE, 0)])])
struct.pack_into("<IIQ", bytearray(blk_read), 0x3000, 0, 0, 1)
ram = bytearray(blk_read); struct.pack_into("<IIQ", ram, 0x3000, 0, 0, 1); blk_read = bytes(ram)
ram = bytearray(blk_read); struct.pack_into("<IIQ", ram, 0x3000, 1, 0, 2); ram[0x3100:0x3300] = b"\xab" * 512
blk_write = bytes(ram).replace(struct.pack("<QIHH", 0x3100, 512, NEXT | WRITE, 2), struct.pack("<QIHH", 0x3100, 512, NEXT, 2))
rng = memory([(0x1000, 0x1800, [(0x3000, 64, WRITE, 0)])])
net = memory([(0x1000, 0x1800, [(0x3000, 1526, WRITE, 0)]), (0x2000, 0x2800, [(0x3800, 12 + 60, 0, 0)])])
seeds = {
    "block-read": b"\x00" + blk_read + handshake(queues[:1]) + notify(0) + read(0x60) + write(0x64, 1),
    "block-write": b"\x00" + blk_write + handshake(queues[:1]) + notify(0),
    "network": b"\x01" + net + handshake(queues) + notify(0) + frame(60) + b"\x5a" * 60 + notify(1),
    "entropy": b"\x02" + rng + handshake(queues[:1]) + notify(0) + read(0x60),
}
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
