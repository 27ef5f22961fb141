# cgroup v2 with controllers (this development host has none on v2): limits written,
# a fork bomb stopped at pids.max, a memory hog OOM-killed inside its cgroup and reported,
# CLONE_INTO_CGROUP used, nothing left behind.
. /lib.sh
mount -t cgroup2 none /sys/fs/cgroup
echo "+memory +pids +cpu" >/sys/fs/cgroup/cgroup.subtree_control
has v2-controllers "memory" "$(cat /sys/fs/cgroup/cgroup.subtree_control)"

# Limits, read from the host side while the payload sleeps.
KAKOI_TRACE=1 kakoi run --policy /cgroup.kakoi -- /bin/sleep 3 >/tmp/trace 2>&1 &
sleep 1.5
cg=$(ls -d /sys/fs/cgroup/kakoi-* 2>/dev/null | head -1)
equals memory.max 33554432 "$(cat "$cg/memory.max" 2>&1)"
equals pids.max 16 "$(cat "$cg/pids.max" 2>&1)"
equals cpu.max "50000 100000" "$(cat "$cg/cpu.max" 2>&1)"
procs=$(cat "$cg/cgroup.procs" 2>/dev/null | wc -l)
if [ "$procs" -ge 1 ]; then pass payload-in-cgroup "$procs process(es) in $cg"; else fail payload-in-cgroup "empty: $cg"; fi
wait
has clone-into-cgroup "with CLONE_INTO_CGROUP /sys/fs/cgroup/kakoi-" "$(cat /tmp/trace)"
lacks no-cgroup-warning "warning" "$(cat /tmp/trace)"

# A fork bomb (bounded: 40 sleepers) stops at pids.max.
out=$(kakoi run --policy /cgroup.kakoi -- /bin/sh -c 'n=0; for i in $(seq 40); do sleep 2 & n=$((n+1)); done 2>&1; echo forked-done' 2>&1)
has fork-bomb-stopped "can't fork" "$out"

# A memory hog: dd's 64 MiB buffer under memory.max 32M.
out=$(kakoi run --policy /cgroup.kakoi -- /bin/dd if=/dev/zero of=/dev/null bs=64M count=4 2>&1)
rc=$?
equals oom-exit-status 137 "$rc"
has oom-reported "the OOM killer killed" "$out"
has oom-in-kernel-log "Memory cgroup out of memory" "$(dmesg)"

left=$(ls -d /sys/fs/cgroup/kakoi-* 2>/dev/null)
equals cgroups-removed "" "$left"
exit $fails
