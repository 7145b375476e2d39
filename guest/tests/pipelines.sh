# Shell pipelines under load, run inside a guest (busybox sh). Issue 10: on an
# AMD PVM host guest processes died of SIGSEGV in pipelines, at a TLS load
# right after start-up. Each round runs 7 pipelines of 1 to 4 stages: exec'd
# programs (the crash site) and forked shell stages, readers that exit early,
# a reader blocked on an empty pipe, all inside $(...), each result checked.
# A stage killed by SIGSEGV, SIGILL, SIGBUS or SIGFPE is caught three ways:
# the pipeline's status (pipefail: the rightmost failing stage), the shell's
# own message on stderr ("Segmentation fault", ...), and the kernel's log
# (a "segfault at" or "traps:" line for any process, whichever stage).
# SIGPIPE (141) from a writer whose reader exited early is normal.
#
# usage: sh pipelines.sh ROUNDS
# Prints one summary line and the kernel's lines about crashes and repaired
# segment bases; exits 0 only if nothing crashed or printed a wrong result.

set -o pipefail
rounds=${1:-15}
pipelines=0 crashed=0 wrong=0

# check NAME STATUS ACTUAL EXPECTED
check() {
  pipelines=$((pipelines + 1))
  case $2 in
    0|141) ;;
    132|134|135|136|139) crashed=$((crashed + 1)); echo "crashed: $1: status $2" >&2 ;;
    *) wrong=$((wrong + 1)); echo "failed: $1: status $2" >&2 ;;
  esac
  [ "$3" = "$4" ] || { wrong=$((wrong + 1)); echo "wrong result: $1: '$3', expected '$4'" >&2; }
}

i=0
while [ "$i" -lt "$rounds" ]; do
  i=$((i + 1))
  v=$(echo "hello$i" | cat | cat); check cat-chain $? "$v" "hello$i"
  v=$(seq 1 3000 | tail -n 1); check seq-tail $? "$v" 3000
  v=$(seq 1 3000 | head -n 1); check seq-head $? "$v" 1
  v=$(printf '%s\n' a processor b processor | grep -m1 -c processor); check grep-m1 $? "$v" 1
  v=$(head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \n' | wc -c); check od-tr-wc $? "$v" 128
  v=$( { sleep 0.1; echo late; } | { read -r line; echo "$line"; } ); check late-writer $? "$v" late
  v=$(echo "$i" | { read -r n; echo "n$n"; } | cat); check read-cat $? "$v" "n$i"
done

kernel=$(dmesg 2>/dev/null | grep -E 'segfault at|traps:|skiff: .* base was')
[ -n "$kernel" ] && echo "$kernel" | sed 's/^/kernel: /'
kernel_crashes=$(echo "$kernel" | grep -cE 'segfault at|traps:')
echo "pipelines: $pipelines run, $crashed crashed, $wrong wrong, $kernel_crashes kernel crash reports"
[ "$crashed" = 0 ] && [ "$wrong" = 0 ] && [ "$kernel_crashes" = 0 ]
