#!/bin/sh
# Regenerate the committed seed corpora in fuzz/seeds/<target>/ from the project's own
# policies, fixtures and compiled bundles, and from ../shared/data (Docker's profile).
# Run from the repository root after `cargo build`: fuzz/make-seeds.sh
set -eu
kakoi=${KAKOI:-target/debug/kakoi}
seeds=fuzz/seeds
rm -rf "$seeds"
mkdir -p "$seeds/policy_text" "$seeds/policy_gen" "$seeds/seccomp_json" "$seeds/bpf_program" \
    "$seeds/apparmor_text" "$seeds/bundle_files"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Policy text: every shipped policy and every fixture, valid, invalid and warning.
for f in profiles/*.kakoi fixtures/*/*.kakoi; do
    cp "$f" "$seeds/policy_text/$(echo "$f" | tr / _)"
done

# Generator input: a few fixed byte strings (the generator reads zeros past the end).
printf '' > "$seeds/policy_gen/empty"
printf '\001\002\003\004\005\006\007\010\011\012\013\014\015\016\017\020' > "$seeds/policy_gen/counting"
head -c 256 /dev/zero | tr '\0' '\377' > "$seeds/policy_gen/ones"

# Seccomp JSON: the audit fixtures, Docker's real default, and kakoi's own output.
cp fixtures/audit/*seccomp*.json fixtures/audit/*config.json "$seeds/seccomp_json/"
[ -f ../shared/data/docker-default-seccomp.json ] &&
    cp ../shared/data/docker-default-seccomp.json "$seeds/seccomp_json/docker-default.json"

# BPF, JSON and bundles compiled from the shipped policies by both backends. A BPF seed
# starts with the 16 bytes of a concrete syscall (arch index, nr, argument).
for p in profiles/*.kakoi; do
    n=$(basename "$p" .kakoi)
    for b in kakoi libseccomp; do
        "$kakoi" compile --backend "$b" -o "$tmp/$n-$b" "$p" >/dev/null 2>&1 || continue
        { printf '\000\000\000\000\073\000\000\000\000\000\000\000\000\000\000\000'
          cat "$tmp/$n-$b/seccomp.x86_64.bpf"; } > "$seeds/bpf_program/$n-$b"
        cp "$tmp/$n-$b/seccomp.json.x86_64" "$seeds/seccomp_json/$n-$b.json" 2>/dev/null ||
            cp "$tmp/$n-$b/seccomp.x86_64.json" "$seeds/seccomp_json/$n-$b.json"
        # manifest \0\0 policy.json \0\0 filter; an odd first byte means "rebuild the
        # manifest", so one seed of each kind.
        { cat "$tmp/$n-$b/manifest.json"; printf '\000\000'; cat "$tmp/$n-$b/policy.json"
          printf '\000\000'; cat "$tmp/$n-$b/seccomp.x86_64.bpf"; } > "$seeds/bundle_files/$n-$b"
    done
    { printf '{'; printf '\000\000'; cat "$tmp/$n-kakoi/policy.json"; printf '\000\000'
      cat "$tmp/$n-kakoi/seccomp.x86_64.bpf"; } > "$seeds/bundle_files/$n-consistent"
    "$kakoi" compile --emit apparmor "$p" > "$seeds/apparmor_text/$n.apparmor" 2>/dev/null || true
done
cp fixtures/audit/*.apparmor "$seeds/apparmor_text/"
find "$seeds" -type f -empty ! -name empty -delete
find "$seeds" -type f | wc -l
