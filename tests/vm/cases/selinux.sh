# SELinux enforced: the base policy plus kakoi's module loaded by the kernel, `kakoi run`
# applying the process label with its MCS categories; the module and MCS decide access.
. /lib.sh
mkdir -p /sys/fs/selinux
mount -t selinuxfs selinuxfs /sys/fs/selinux
if cat /policy.33 >/sys/fs/selinux/load 2>/tmp/err; then pass policy-loaded "base + kakoi_selinux module"; else fail policy-loaded "$(cat /tmp/err)"; fi
equals enforcing 1 "$(cat /sys/fs/selinux/enforce)"
echo 0 >/proc/sys/kernel/printk_ratelimit

# Labelled places (mount contexts; busybox has no chcon).
mkdir -p /vmroot /secret /shared /b
mount -t tmpfs -o mode=0755,context=system_u:object_r:usr_t:s0 vmroot /vmroot
mkdir -p /vmroot/bin /vmroot/usr/bin /vmroot/proc /vmroot/dev /vmroot/sys /vmroot/tmp /vmroot/etc
cp /bin/busybox /vmroot/bin/busybox
/bin/busybox --install -s /vmroot/bin
mount -t tmpfs -o context=system_u:object_r:secret_t:s0 secret /secret
echo key >/secret/key
mount -t tmpfs -o mode=1777 shared /shared
sed 's/s0:c1,c2/s0:c3,c4/' /selinux.kakoi >/b/selinux.kakoi   # same module, other pair

# run POLICY CMD...: exit status of the payload; its output goes to the console (a pipe
# made by the unconfined shell is not the sandbox's to write).
# stdin is not the console: a console on both ends would give the payload a pty (`-t`).
run() { p=$1; shift; kakoi run --policy "$p" -- "$@" </dev/null >/dev/console 2>&1; }

equals label-at-exec "system_u:system_r:kakoi_selinux.process:s0:c1,c2" \
    "$(label_at_exec --policy /selinux.kakoi -- /bin/sleep 2)"

run /selinux.kakoi /bin/sh -c 'head -c 4 /bin/busybox >/dev/null'
equals module-allows-read 0 $?
run /selinux.kakoi /bin/cat /secret/key
rc=$?
if [ $rc -ne 0 ]; then pass module-denies-secret "cat exited $rc"; else fail module-denies-secret "cat read secret_t"; fi
sleep 1
has avc-secret-denied "tcontext=system_u:object_r:secret_t:s0" "$(dmesg | grep 'avc:  denied')"

# MCS: two sandboxes of the same type, categories c1,c2 and c3,c4.
run /selinux.kakoi /bin/sh -c 'echo from-a >/tmp/shared/a'
equals mcs-a-writes 0 $?
run /b/selinux.kakoi /bin/sh -c 'echo from-b >/tmp/shared/b'
equals mcs-b-writes 0 $?
run /selinux.kakoi /bin/cat /tmp/shared/a
equals mcs-a-reads-own 0 $?
# mcs-a-reads-own wrote to the console through the launcher's relay pipe; a pipe of the
# caller's passes through as it is. Both are fifos of an unconfined domain.
equals pipe-output from-a "$(kakoi run --policy /selinux.kakoi -- /bin/cat /tmp/shared/a </dev/null 2>/dev/null | cat)"
# -t: the sandbox's own pty (its devpts instance) under the module.
has tty-under-module "/dev/pts/0" "$(kakoi run -t --policy /selinux.kakoi -- /bin/tty </dev/null 2>/dev/null | cat)"
run /b/selinux.kakoi /bin/cat /tmp/shared/a
rc=$?
if [ $rc -ne 0 ]; then pass mcs-b-cannot-read-a "cat exited $rc"; else fail mcs-b-cannot-read-a "read across categories"; fi
run /selinux.kakoi /bin/cat /tmp/shared/b
rc=$?
if [ $rc -ne 0 ]; then pass mcs-a-cannot-read-b "cat exited $rc"; else fail mcs-a-cannot-read-b "read across categories"; fi
sleep 1
has avc-mcs-denied "scontext=system_u:system_r:kakoi_selinux.process:s0:c3,c4 tcontext=system_u:object_r:tmp_t:s0:c1,c2" "$(dmesg | grep 'avc:  denied')"
[ "$fails" -eq 0 ] || dmesg | grep "avc:" | tail -20 >/dev/console
exit $fails
