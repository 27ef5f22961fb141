# AppArmor enforced: kakoi's profile loaded into the kernel and applied by `kakoi run` at
# exec. The same checks under a deliberately wrong profile must fail.
. /lib.sh
aa=/sys/kernel/security/apparmor
# Without auditd the kernel prints audit records through printk, whose rate limit (10 per
# 5 s) the profile loads alone would use up.
echo 0 >/proc/sys/kernel/printk_ratelimit
equals apparmor-enabled Y "$(cat /sys/module/apparmor/parameters/enabled)"
for f in /*.bin; do
    name=$(basename "$f" .bin)
    if cat "$f" >"$aa/.replace" 2>/tmp/err; then pass "load-$name" "kernel accepted $f"; else fail "load-$name" "$(cat /tmp/err)"; fi
done
has profiles-listed "kakoi-vm (enforce)" "$(cat $aa/profiles)"

# checks BUNDLE PROFILE: the label, an allowed read, a denied read, a denied capability.
checks() {
    b=$1; prof=$2; tag=$3
    equals "$tag-label-at-exec" "$prof (enforce)" "$(label_at_exec --bundle "$b" -- /bin/sleep 2)"
    out=$(kakoi run --bundle "$b" -- /bin/sh -c '
        cat /etc/hostname >/dev/null && echo READ-ALLOWED
        cat /etc/shadow >/dev/null 2>/tmp/e && echo SHADOW-READ || echo "SHADOW: $(cat /tmp/e)"
        touch /tmp/f && chown 65534 /tmp/f 2>/tmp/e && echo CHOWN-DONE || echo "CHOWN: $(cat /tmp/e)"' 2>&1)
    has "$tag-allowed-read" "READ-ALLOWED" "$out"
    has "$tag-denied-read-eacces" "SHADOW: cat: can't open '/etc/shadow': Permission denied" "$out"
    has "$tag-denied-capability" "CHOWN: chown: /tmp/f: Operation not permitted" "$out"
}
checks /apparmor kakoi-vm aa
sleep 1 # kauditd prints the denials asynchronously
has aa-kernel-logs-file-denial 'apparmor="DENIED" operation="open" profile="kakoi-vm" name="/etc/shadow"' "$(dmesg)"
has aa-kernel-logs-capability-denial 'apparmor="DENIED" operation="capable" profile="kakoi-vm"' "$(dmesg)"

# The shipped web-server policy, launched under its kernel-loaded profile.
mkdir -p /srv/www /var/log/www /usr/sbin
echo hello >/srv/www/index.html
chown -R 33:33 /var/log/www
equals web-server-label-at-exec "kakoi-web-server (enforce)" \
    "$(label_at_exec --policy /web-server-guest.kakoi -- /usr/bin/busybox sleep 2)"
out=$(kakoi run --policy /web-server-guest.kakoi -- /usr/bin/busybox cat /srv/www/index.html 2>&1)
has web-server-reads-docroot "hello" "$out"

# Negative control: under the wrong profile the same checks must fail.
before=$fails
checks /apparmor-wrong kakoi-vm-wrong wrong >/tmp/wrong
after=$fails
fails=$before
cat /tmp/wrong | sed 's/^CHECK /  (control) /'
if grep -q "wrong-denied-read-eacces FAIL" /tmp/wrong && grep -q "wrong-label-at-exec PASS" /tmp/wrong; then
    pass negative-control "a profile allowing /etc/shadow makes the denied-read check fail ($((after - before)) checks failed)"
else
    fail negative-control "the checks passed under a wrong profile"
fi
exit $fails
