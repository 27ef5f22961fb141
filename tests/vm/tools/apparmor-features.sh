# Print the guest kernel's AppArmor feature set (securityfs), one file per line, for
# tests/vm/tools/apparmor-features.host to turn into fixtures/vm/apparmor-features/.
. /lib.sh
cd /sys/kernel/security/apparmor/features || { fail apparmor-enabled "no securityfs features"; exit $fails; }
find . -type f | while read -r f; do
    echo "AAFEAT $f $(base64 <"$f" | tr -d '\n')"
done
pass features-dumped "$(find . -type f | wc -l) files"
exit $fails
