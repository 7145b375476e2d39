#!/usr/bin/env python3
"""Writes the tiny guest of the start benchmark: an x86_64 ELF executable
whose one loadable segment at 1 MiB holds

    mov al, 0xfe ; out 0xf4, al ; out 0x64, al ; hlt

Those bytes mean the same in 32-bit protected mode and in 64-bit mode, so the
same file boots on QEMU's microvm (through its PVH note, 32-bit entry; QEMU's
isa-debug-exit device at 0xf4 ends QEMU) and on Skiff (64-bit entry, where
0xf4 is nobody's port and 0xfe to the i8042's 0x64 resets the machine).

With --spin the code is `jmp $` instead: a guest that runs until stopped
(the signal tests use it).

usage: make-tiny-guest.py [--spin] OUTPUT
"""
import struct
import sys

LOAD = 0x100000
spin = "--spin" in sys.argv[1:]
output = [a for a in sys.argv[1:] if a != "--spin"][0]
CODE = bytes([0xEB, 0xFE]) if spin else bytes([0xB0, 0xFE, 0xE6, 0xF4, 0xE6, 0x64, 0xF4])

# PVH entry note: name "Xen", type XEN_ELFNOTE_PHYS32_ENTRY (18), a 32-bit address.
name = b"Xen\0"
note = struct.pack("<III", len(name), 4, 18) + name + struct.pack("<I", LOAD)

ehdr_size, phdr_size = 64, 56
phnum = 2
code_offset = 0x1000
note_offset = ehdr_size + phnum * phdr_size
ehdr = struct.pack("<4sBBBBB7xHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0,
                   2, 62, 1, LOAD, ehdr_size, 0, 0, ehdr_size, phdr_size, phnum, 64, 0, 0)
load = struct.pack("<IIQQQQQQ", 1, 5, code_offset, LOAD, LOAD, len(CODE), len(CODE), 0x1000)
pnote = struct.pack("<IIQQQQQQ", 4, 4, note_offset, 0, 0, len(note), len(note), 4)
image = bytearray(ehdr + load + pnote + note)
image += bytes(code_offset - len(image))
image += CODE
with open(output, "wb") as out:
    out.write(image)
