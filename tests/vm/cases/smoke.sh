# The harness itself: the guest boots and kakoi runs its default sandbox.
. /lib.sh
out=$(kakoi run -- /bin/sh -c 'grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status' 2>&1)
has default-sandbox-seccomp "Seccomp:	2" "$out"
has default-sandbox-no-new-privs "NoNewPrivs:	1" "$out"
# /proc/sysrq-trigger exists in this kernel (not on the development host): the default
# makes it read-only, as Docker does, and the host's file is untouched.
[ -e /proc/sysrq-trigger ] && pass sysrq-trigger-present || fail sysrq-trigger-present "no /proc/sysrq-trigger in the guest"
out=$(kakoi run -- /bin/sh -c 'echo h > /proc/sysrq-trigger && echo written' 2>&1)
has sysrq-trigger-read-only "Read-only file system" "$out"
lacks sysrq-trigger-not-written "written" "$out"
exit $fails
