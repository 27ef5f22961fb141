# The harness itself: the guest boots and kakoi runs its default sandbox.
. /lib.sh
out=$(kakoi run -- /bin/sh -c 'grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status' 2>&1)
has default-sandbox-seccomp "Seccomp:	2" "$out"
has default-sandbox-no-new-privs "NoNewPrivs:	1" "$out"
exit $fails
