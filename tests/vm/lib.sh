# Helpers for the guest's cases (sourced by /case.sh as /lib.sh). Every check prints one
# line `CHECK name PASS|FAIL detail`; `fails` counts the failures and is the exit code.
fails=0
pass() { echo "CHECK $1 PASS ${2:-}"; }
fail() { echo "CHECK $1 FAIL ${2:-}"; fails=$((fails + 1)); }
# has NAME TEXT OUTPUT: OUTPUT contains the line fragment TEXT.
has() {
    if printf '%s\n' "$3" | grep -qF -- "$2"; then pass "$1" "$2"; else fail "$1" "missing \`$2\` in: $(printf '%s' "$3" | tr '\n' ' ' | cut -c1-600)"; fi
}
# lacks NAME TEXT OUTPUT: OUTPUT does not contain TEXT.
lacks() {
    if printf '%s\n' "$3" | grep -qF -- "$2"; then fail "$1" "found \`$2\` in: $(printf '%s' "$3" | tr '\n' ' ' | cut -c1-600)"; else pass "$1" "no \`$2\`"; fi
}
# equals NAME WANT GOT
equals() {
    if [ "$2" = "$3" ]; then pass "$1" "$3"; else fail "$1" "want \`$2\`, got \`$3\`"; fi
}
# label_at_exec KAKOI_RUN_ARGS...: the LSM label (attr/current) of the payload of
# `kakoi run KAKOI_RUN_ARGS`, read from outside while it runs; its command must last a
# couple of seconds. The launcher's direct child is the sandbox's init (unlabelled); the
# payload is the init's child.
label_at_exec() {
    kakoi run "$@" </dev/null >/dev/null 2>&1 &
    launcher=$!
    sleep 1
    init=
    for p in /proc/[0-9]*; do
        if [ "$(cut -d' ' -f4 "$p/stat" 2>/dev/null)" = "$launcher" ]; then
            init=${p#/proc/}
            break
        fi
    done
    for p in /proc/[0-9]*; do
        if [ -n "$init" ] && [ "$(cut -d' ' -f4 "$p/stat" 2>/dev/null)" = "$init" ]; then
            tr -d '\0' <"$p/attr/current" 2>&1
            break
        fi
    done
    wait "$launcher"
}
