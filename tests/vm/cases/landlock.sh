# Landlock and seccomp on an older kernel (6.1, Landlock ABI 2): the degradation rule of the
# policy is honoured, what the kernel can enforce is enforced, the seccomp filter holds.
. /lib.sh
out=$(kakoi run --policy /required.kakoi -- /bin/true 2>&1)
rc=$?
equals landlock-required-refused-exit 125 "$rc"
has landlock-required-says-why "incompatible access-rights" "$out"
echo "  required: $out" | tr '\n' ' '; echo

out=$(kakoi run --policy /optional.kakoi -- /bin/sh -c '
    cat /etc/hostname >/dev/null && echo READ-ALLOWED
    cat /etc/passwd 2>&1 >/dev/null
    echo x >/tmp/f && echo WRITE-ALLOWED
    echo x 2>&1 >/dev/shm/f
    grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status
    unshare -U true 2>&1; echo "unshare: $?"' 2>&1)
echo "$out" | sed 's/^/  optional: /'
has landlock-optional-runs "READ-ALLOWED" "$out"
has landlock-denied-read "cat: can't open '/etc/passwd': Permission denied" "$out"
has landlock-allowed-write "WRITE-ALLOWED" "$out"
has landlock-denied-write "can't create /dev/shm/f: Permission denied" "$out"
has seccomp-filter-installed "Seccomp:	2" "$out"
has seccomp-denies-unshare "unshare(0x10000000): Operation not permitted" "$out"
exit $fails
