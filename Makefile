# kakoi: the two commands of the README, and helpers.
#   make demo   set up, build, compile + check the embedded default policy, and launch a
#               shell command under it (needs root, or user namespaces for rootless)
#   make test   set up, then run the whole test suite, a short fuzzing run of every target
#               and the QEMU enforcement checks (what CI runs)

CARGO ?= cargo
KAKOI := target/static/dist/kakoi

.PHONY: setup build install demo test lint vm-test fuzz fuzz-smoke catalogue bench bench-seccomp launch-order oci-suite

setup:
	@scripts/setup.sh

build: setup
	scripts/build-release.sh

# The release binary in $(PREFIX)/bin, with `kakoi-runtime` (the OCI runtime: runc's
# command line) as a link to it.
PREFIX ?= /usr/local
install: build
	install -D -m 0755 target/static/dist/kakoi $(DESTDIR)$(PREFIX)/bin/kakoi
	ln -sf kakoi $(DESTDIR)$(PREFIX)/bin/kakoi-runtime

# The OCI runtime-tools validation suite, kakoi's runtime and runc side by side.
oci-suite: setup
	scripts/oci-suite.sh

demo: build
	@echo "== kakoi check default"
	$(KAKOI) check default
	@echo "== kakoi compile default -o target/demo-bundle"
	$(KAKOI) compile default -o target/demo-bundle
	@echo "== bundle contents"
	@ls -l target/demo-bundle
	@cat target/demo-bundle/manifest.json
	@echo "== kakoi run --bundle target/demo-bundle (the sandbox, seen from inside)"
	$(KAKOI) run --bundle target/demo-bundle -- /bin/sh -c 'id; hostname; grep -E "^(Cap(Eff|Inh)|NoNewPrivs|Seccomp):" /proc/self/status; cat /proc/self/cgroup | tail -1; ls /'

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

test: lint
	$(CARGO) test --workspace --locked
	scripts/fuzz.sh 15
	tests/vm/run.sh

# cargo-fuzz on every harness of src/fuzzing.rs: `make fuzz-smoke` 15 s each (part of
# `make test`), `make fuzz` FUZZ_SECONDS each (default 600).
FUZZ_SECONDS ?= 600
fuzz-smoke:
	scripts/fuzz.sh 15

fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

# Enforcement in a real kernel (AppArmor, SELinux, cgroup v2, Landlock on 6.1) in QEMU
# guests; part of `make test`.
vm-test: setup
	tests/vm/run.sh

# Regenerate the syscall catalogue from Debian's linux-source package (needs network
# access to the Debian archive and systemd-analyze).
catalogue:
	scripts/gen-catalogue.sh

# Rewrite scripts/launch.order, the functions a launch runs in the order it runs them, which
# the release build places first and together in .text (needs root and tracefs: it traces
# one launch with a uprobe on every function; takes minutes).
launch-order: setup
	scripts/launch-order.py

# kakoi side by side with crun, runc, bubblewrap and unshare, written to bench/REPORT.md
# (needs root; installs the peers).
bench: setup
	bench/run.sh

# Seccomp generators side by side (libseccomp layouts vs kakoi), one run.
bench-seccomp: setup
	$(CARGO) bench --locked --bench seccomp
