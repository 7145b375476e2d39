#!/usr/bin/env bash
# Block and network throughput seen from inside a Skiff guest, and what the
# VMM spent on it. Needs root (a network namespace and a TAP in it).
#
#   sudo scripts/bench-io.sh [--disk-mib N] [--net-mib N] [--json PATH]
#
# One boot, in a fresh network namespace:
#   disk read   dd if=/dev/vda of=/dev/null bs=1M       (guest clock: /proc/uptime around dd)
#   disk write  dd if=/dev/zero of=/dev/vda bs=1M conv=fsync
#   net TX      guest dd | nc → a Python receiver on the host side of the TAP (host clock)
#   net RX      the host sends to the guest's nc -l     (host clock)
# and skiff's --timings: bytes each device moved, CPU time of the whole VMM
# process (vCPU threads included) and of the device I/O thread.
set -euo pipefail
cd "$(dirname "$0")/.."

disk_mib=16
net_mib=4
json=""
while [ $# -gt 0 ]; do
    case "$1" in
        --disk-mib) disk_mib="$2"; shift 2 ;;
        --net-mib) net_mib="$2"; shift 2 ;;
        --json) json="$2"; shift 2 ;;
        *) echo "usage: $0 [--disk-mib N] [--net-mib N] [--json PATH]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "bench-io: needs root for the network namespace and TAP" >&2; exit 1; }

scripts/build-guest.sh >/dev/null
swift build -c release --disable-local-rpath --product skiff >/dev/null
skiff=.build/release/skiff

work=$(mktemp -d /tmp/skiff-bench-io.XXXXXX)
ns="skiff-bench-$$"
cleanup() {
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns delete "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

truncate -s "$((disk_mib + 1))M" "$work/disk.img"
ip netns add "$ns"
ip netns exec "$ns" sh -c 'ip link set lo up && ip tuntap add skb0 mode tap && ip addr add 10.0.2.1/24 dev skb0 && ip link set skb0 up'

cat > "$work/peer.py" <<'PY'
import socket, sys, time
net_bytes = int(sys.argv[1])
server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("10.0.2.1", 7000)); server.listen(1); server.settimeout(3600)
connection, _ = server.accept(); received = 0; first = None
while True:
    chunk = connection.recv(1 << 16)
    if not chunk: break
    if first is None: first = time.monotonic()
    received += len(chunk)
elapsed = time.monotonic() - (first or time.monotonic())
connection.close()
print(f"tx {received} {elapsed:.6f}", flush=True)
payload = b"\0" * (1 << 16)
while True:
    try:
        client = socket.create_connection(("10.0.2.15", 7001), timeout=30); break
    except OSError:
        time.sleep(0.2)
start = time.monotonic(); sent = 0
while sent < net_bytes:
    sent += client.send(payload[: min(len(payload), net_bytes - sent)])
client.shutdown(socket.SHUT_WR)
client.recv(1)  # the guest closes once it has read everything
print(f"rx {sent} {time.monotonic() - start:.6f}", flush=True)
PY
ip netns exec "$ns" python3 "$work/peer.py" "$((net_mib << 20))" > "$work/peer.out" 2>&1 &

# busybox dd prints no rate: /proc/uptime before and after, on the guest's clock.
guest_command="echo disk-read-start \$(cat /proc/uptime); dd if=/dev/vda of=/dev/null bs=1M count=$disk_mib 2>/dev/null;"
guest_command+=" echo disk-read-end \$(cat /proc/uptime);"
guest_command+=" dd if=/dev/zero of=/dev/vda bs=1M count=$disk_mib conv=fsync 2>/dev/null;"
guest_command+=" echo disk-write-end \$(cat /proc/uptime);"
guest_command+=" dd if=/dev/zero bs=64k count=$((net_mib * 16)) 2>/dev/null | nc 10.0.2.1 7000;"
guest_command+=" nc -l -p 7001 > /dev/null"

ip netns exec "$ns" "$skiff" boot --memory 256 --timings --timeout 3600 \
    --disk "$work/disk.img" --net tap=skb0,ip=10.0.2.15/24 \
    --append="-- /bin/sh -c \"$guest_command\"" > "$work/console.out" 2> "$work/timings.out" || true
wait || true

python3 - "$work" "$disk_mib" "$net_mib" "$json" <<'PY'
import json, re, sys, os, platform, datetime
work, disk_mib, net_mib, json_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
console = open(os.path.join(work, "console.out"), errors="replace").read()
timings = open(os.path.join(work, "timings.out"), errors="replace").read()
peer = open(os.path.join(work, "peer.out"), errors="replace").read()

def uptime(label):
    m = re.search(label + r" ([\d.]+) ", console)
    return float(m.group(1)) if m else None

def dd_rate(start, end):
    begin, finish = uptime(start), uptime(end)
    return (disk_mib << 20, finish - begin) if begin is not None and finish is not None else None

def peer_rate(label):
    m = re.search(r"^" + label + r" (\d+) ([\d.]+)$", peer, re.M)
    return (int(m.group(1)), float(m.group(2))) if m else None

results = {}
for name, value in [("disk read", dd_rate("disk-read-start", "disk-read-end")),
                    ("disk write", dd_rate("disk-read-end", "disk-write-end")),
                    ("net guest→host", peer_rate("tx")), ("net host→guest", peer_rate("rx"))]:
    if value and value[1] > 0:
        results[name] = {"bytes": value[0], "seconds": value[1], "MBps": value[0] / value[1] / 1e6}
    else:
        results[name] = None
cpu = re.search(r"CPU time: ([\d.]+) s VMM process .*?, ([\d.]+) s device I/O thread", timings)
host_kind = "nested PVM (kvm_pvm)" if os.path.exists("/sys/module/kvm_pvm") else "hardware KVM"
report = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "host": platform.node(), "kvm": host_kind, "cpus": os.cpu_count(),
    "disk_mib": disk_mib, "net_mib": net_mib, "results": results,
    "vmm_process_cpu_seconds": float(cpu.group(1)) if cpu else None,
    "device_io_thread_cpu_seconds": float(cpu.group(2)) if cpu else None,
    "devices": [line.strip() for line in timings.splitlines() if line.strip().startswith("virtio-")],
}
print(f"skiff I/O benchmark, {report['date']}, {host_kind}, {os.cpu_count()} CPUs")
print(f"{'test':<16} {'bytes':>12} {'seconds':>10} {'MB/s':>10}")
for name, value in results.items():
    if value:
        print(f"{name:<16} {value['bytes']:>12} {value['seconds']:>10.3f} {value['MBps']:>10.2f}")
    else:
        print(f"{name:<16} {'failed (see console below)':>34}")
if cpu:
    print(f"VMM CPU time: {cpu.group(1)} s process (vCPU threads included), {cpu.group(2)} s device I/O thread")
for line in report["devices"]:
    print("  " + line)
if "PVM" in host_kind:
    print("note: on this nested PVM host the guest kernel is interpreted; these are baselines, not hardware figures")
if json_path:
    with open(json_path, "w") as out:
        json.dump(report, out, indent=2)
if any(value is None for value in results.values()):
    print("--- console ---\n" + console[-3000:] + "\n--- stderr ---\n" + timings[-3000:] + "\n--- peer ---\n" + peer, file=sys.stderr)
    sys.exit(1)
PY
