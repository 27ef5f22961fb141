//! The rule catalogue (`audit.md`'s starter set) and the checks behind it.

use std::collections::BTreeSet;

use policy_lang::catalogue::{self, Arch};
use policy_lang::ir::{Action, NsKind};
use serde::Serialize;

use super::model::*;
use super::sym::Class;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
    /// The input itself is broken (a profile its consumer rejects).
    Error,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
            Severity::Error => "error",
        }
    }
}

/// A rule of the catalogue: one variant per entry of [`RULES`], in its order (a test
/// checks it), so a finding cannot name a rule the catalogue lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleId {
    Scmp001,
    Scmp002,
    Scmp003,
    Scmp004,
    Scmp005,
    Scmp006,
    Scmp007,
    Scmp008,
    Scmp009,
    Scmp010,
    Scmp011,
    Scmp012,
    Scmp013,
    Cap001,
    Cap002,
    Cap003,
    Cap004,
    Oci001,
    Oci002,
    Oci003,
    Oci004,
    Oci005,
    Oci006,
    Aa001,
    Aa002,
    Sel001,
    Res001,
    X001,
}

impl RuleId {
    pub const ALL: [RuleId; 28] = [
        RuleId::Scmp001,
        RuleId::Scmp002,
        RuleId::Scmp003,
        RuleId::Scmp004,
        RuleId::Scmp005,
        RuleId::Scmp006,
        RuleId::Scmp007,
        RuleId::Scmp008,
        RuleId::Scmp009,
        RuleId::Scmp010,
        RuleId::Scmp011,
        RuleId::Scmp012,
        RuleId::Scmp013,
        RuleId::Cap001,
        RuleId::Cap002,
        RuleId::Cap003,
        RuleId::Cap004,
        RuleId::Oci001,
        RuleId::Oci002,
        RuleId::Oci003,
        RuleId::Oci004,
        RuleId::Oci005,
        RuleId::Oci006,
        RuleId::Aa001,
        RuleId::Aa002,
        RuleId::Sel001,
        RuleId::Res001,
        RuleId::X001,
    ];

    /// The id as reports print it (`SCMP001`).
    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::Scmp001 => "SCMP001",
            RuleId::Scmp002 => "SCMP002",
            RuleId::Scmp003 => "SCMP003",
            RuleId::Scmp004 => "SCMP004",
            RuleId::Scmp005 => "SCMP005",
            RuleId::Scmp006 => "SCMP006",
            RuleId::Scmp007 => "SCMP007",
            RuleId::Scmp008 => "SCMP008",
            RuleId::Scmp009 => "SCMP009",
            RuleId::Scmp010 => "SCMP010",
            RuleId::Scmp011 => "SCMP011",
            RuleId::Scmp012 => "SCMP012",
            RuleId::Scmp013 => "SCMP013",
            RuleId::Cap001 => "CAP001",
            RuleId::Cap002 => "CAP002",
            RuleId::Cap003 => "CAP003",
            RuleId::Cap004 => "CAP004",
            RuleId::Oci001 => "OCI001",
            RuleId::Oci002 => "OCI002",
            RuleId::Oci003 => "OCI003",
            RuleId::Oci004 => "OCI004",
            RuleId::Oci005 => "OCI005",
            RuleId::Oci006 => "OCI006",
            RuleId::Aa001 => "AA001",
            RuleId::Aa002 => "AA002",
            RuleId::Sel001 => "SEL001",
            RuleId::Res001 => "RES001",
            RuleId::X001 => "X001",
        }
    }

    /// The id `text` names.
    pub fn from_name(text: &str) -> Option<RuleId> {
        RuleId::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RuleId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One rule of the catalogue.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Rule {
    pub id: RuleId,
    pub severity: Severity,
    /// Weight in the exposure score (systemd-analyze style).
    pub weight: u32,
    pub title: &'static str,
    pub rationale: &'static str,
    /// Which layer the rule is about (it applies only when the input describes it).
    #[serde(skip)]
    pub layer: Layer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    Seccomp,
    Caps,
    Oci,
    AppArmor,
    SeLinux,
    Resources,
    Cross,
}

pub const RULES: &[Rule] = &[
    Rule { id: RuleId::Scmp001, severity: Severity::High, weight: 2500, layer: Layer::Seccomp, title: "no seccomp filter, or one whose default lets syscalls through", rationale: "Without a filter every syscall of the kernel is attack surface; an allow/log default makes every syscall not listed reachable, including ones added by future kernels." },
    Rule { id: RuleId::Scmp002, severity: Severity::Critical, weight: 2500, layer: Layer::Seccomp, title: "the filter never checks the architecture, or a foreign one reaches ALLOW", rationale: "Syscall numbers differ per ABI: a filter that does not check seccomp_data.arch decides another ABI's calls by the wrong table (an allowed number there may be a dangerous syscall)." },
    Rule { id: RuleId::Scmp003, severity: Severity::High, weight: 1500, layer: Layer::Seccomp, title: "x86_64 without the x32 guard", rationale: "x32 syscalls share AUDIT_ARCH_X86_64 and differ only by bit 30 of the number: a call denied on x86_64 is reachable again with the x32 bit set." },
    Rule { id: RuleId::Scmp004, severity: Severity::Medium, weight: 700, layer: Layer::Seccomp, title: "extra ABIs (i386, x32) enabled", rationale: "Each ABI is a second syscall table with its own bugs; i386's socketcall and ipc multiplexers also hide arguments from the filter." },
    Rule { id: RuleId::Scmp005, severity: Severity::High, weight: 1000, layer: Layer::Seccomp, title: "allows @module, @raw-io, @reboot, @swap or @clock without the matching capability", rationale: "These calls only do anything with their capability; allowing them without it adds attack surface for nothing, and with it they reach the host (time, modules, devices)." },
    Rule { id: RuleId::Scmp006, severity: Severity::High, weight: 1500, layer: Layer::Seccomp, title: "unfiltered clone, clone3, unshare or setns", rationale: "New user namespaces give a process every capability over new namespaces, which opens large parts of the kernel (netfilter, mounts) to attacks." },
    Rule { id: RuleId::Scmp007, severity: Severity::High, weight: 1500, layer: Layer::Seccomp, title: "allows kernel attack surface (bpf, perf_event_open, keyrings, io_uring, userfaultfd, open_by_handle_at, AF_ALG/AF_VSOCK sockets)", rationale: "These interfaces had a long series of privilege escalations, are not namespaced, or (open_by_handle_at) escape the mount namespace outright (the 'shocker' exploit)." },
    Rule { id: RuleId::Scmp008, severity: Severity::High, weight: 1500, layer: Layer::Seccomp, title: "ptrace or process_vm_* with CAP_SYS_PTRACE or the host pid namespace", rationale: "With SYS_PTRACE or a shared pid namespace, ptrace reaches processes outside the sandbox." },
    Rule { id: RuleId::Scmp009, severity: Severity::High, weight: 1500, layer: Layer::Seccomp, title: "equivalence gap: a syscall is denied but a sibling doing the same is allowed", rationale: "Denying open but allowing openat, or execve but allowing execveat, denies nothing: the program uses the sibling." },
    Rule { id: RuleId::Scmp010, severity: Severity::Medium, weight: 700, layer: Layer::Seccomp, title: "a socket family rule that i386 socketcall bypasses", rationale: "On i386, socket() can be reached through socketcall(), whose arguments are in memory, out of the filter's sight." },
    Rule { id: RuleId::Scmp011, severity: Severity::Info, weight: 0, layer: Layer::Seccomp, title: "clone3 or a newer syscall denied with EPERM instead of ENOSYS", rationale: "libc falls back to an older call on ENOSYS; EPERM makes programs fail (or lose features) instead." },
    Rule { id: RuleId::Scmp012, severity: Severity::Medium, weight: 500, layer: Layer::Seccomp, title: "the filter is too complex to follow exactly", rationale: "The program has more paths than the auditor follows (nested argument branches multiply them); the syscalls it could not follow to the end are reported as conditional, and a filter nobody can follow is one nobody can review. A crafted one can also stall tools that analyse it." },
    Rule { id: RuleId::Scmp013, severity: Severity::Critical, weight: 2500, layer: Layer::Seccomp, title: "a bundle's filter contradicts its own policy.json", rationale: "The filter was replaced or the policy edited after compilation (a changed manifest hides it from the hashes); `kakoi run` refuses such a bundle, other consumers may not." },
    Rule { id: RuleId::Cap001, severity: Severity::Critical, weight: 2500, layer: Layer::Caps, title: "every capability (privileged)", rationale: "A process with every capability is root on the host in all but name." },
    Rule { id: RuleId::Cap002, severity: Severity::High, weight: 1500, layer: Layer::Caps, title: "an effectively-root capability", rationale: "SYS_ADMIN, SYS_MODULE, SYS_RAWIO, SYS_PTRACE, DAC_READ_SEARCH, NET_ADMIN, BPF, PERFMON, SYS_BOOT, MAC_ADMIN, MAC_OVERRIDE, SETFCAP and SYSLOG each lead to full privilege or a sandbox escape." },
    Rule { id: RuleId::Cap003, severity: Severity::Medium, weight: 700, layer: Layer::Caps, title: "capabilities beyond Docker's default set, or NET_RAW", rationale: "Every capability widens what root in the sandbox can do; NET_RAW allows packet spoofing on the sandbox's network." },
    Rule { id: RuleId::Cap004, severity: Severity::Low, weight: 250, layer: Layer::Caps, title: "bounding set not reduced, or inheritable/ambient capabilities set", rationale: "A full bounding set lets setuid and file-capability binaries regain everything; inheritable capabilities survive exec (CVE-2022-29162)." },
    Rule { id: RuleId::Oci001, severity: Severity::High, weight: 1500, layer: Layer::Oci, title: "no_new_privs is off", rationale: "Without no_new_privs, setuid-root and file-capability binaries in the sandbox gain privileges." },
    Rule { id: RuleId::Oci002, severity: Severity::High, weight: 2000, layer: Layer::Oci, title: "host pid, net, ipc, uts or user namespace", rationale: "A shared namespace exposes the host's processes, network, IPC or identity to the sandbox." },
    Rule { id: RuleId::Oci003, severity: Severity::High, weight: 1500, layer: Layer::Oci, title: "/proc or /sys writable or unmasked", rationale: "/proc/sys, /proc/sysrq-trigger, /proc/kcore and /sys reach the host kernel directly." },
    Rule { id: RuleId::Oci004, severity: Severity::High, weight: 1500, layer: Layer::Oci, title: "sensitive host mount or shared propagation", rationale: "Mounting the host's /, /proc, /sys, /dev, /etc or a container-engine socket is an escape; shared propagation leaks mounts both ways." },
    Rule { id: RuleId::Oci005, severity: Severity::Medium, weight: 700, layer: Layer::Oci, title: "writable rootfs, or uid 0 without a user namespace", rationale: "Root in the sandbox is root on the host unless a user namespace maps it away; a writable root lets a compromise persist." },
    Rule { id: RuleId::Oci006, severity: Severity::High, weight: 1000, layer: Layer::Oci, title: "the filter denies calls the runtime makes after loading it (no_new_privs off)", rationale: "Without no_new_privs, runc and crun load the filter before setgroups, setresgid, setresuid and capset, so a filter that denies them stops the container from starting." },
    Rule { id: RuleId::Aa001, severity: Severity::High, weight: 1000, layer: Layer::AppArmor, title: "AppArmor unconfined, in complain mode, or no profile", rationale: "Without an enforced profile the LSM layer adds nothing when the other layers fail." },
    Rule { id: RuleId::Aa002, severity: Severity::Medium, weight: 500, layer: Layer::AppArmor, title: "bare capability/mount/ptrace rules, unconfined exec, or no /proc and /sys write denials", rationale: "Bare rules allow everything of their class; `ux` leaves confinement at exec." },
    Rule { id: RuleId::Sel001, severity: Severity::High, weight: 1000, layer: Layer::SeLinux, title: "SELinux label disabled, spc_t/unconfined_t, or outside the container domain", rationale: "spc_t and unconfined_t are not confined; a missing label runs with the runtime's own." },
    Rule { id: RuleId::Res001, severity: Severity::Medium, weight: 500, layer: Layer::Resources, title: "no pids or memory limit", rationale: "Without a pids limit a fork bomb exhausts the host's process table; without a memory limit one sandbox can push the host into its OOM killer, which may pick another victim." },
    Rule { id: RuleId::X001, severity: Severity::Medium, weight: 700, layer: Layer::Cross, title: "layers disagree: seccomp allows mount, the capabilities hold SYS_ADMIN, and no LSM denies mounts", rationale: "Each layer assumes another blocks the escape; when none does, the sandbox holds only by luck." },
];

pub fn rule(id: RuleId) -> &'static Rule {
    &RULES[id as usize]
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub id: RuleId,
    pub severity: Severity,
    pub message: String,
    pub location: Location,
    pub rationale: &'static str,
    /// The fix, written in the policy language.
    pub fix: String,
}

fn finding(id: RuleId, message: String, location: Location, fix: impl Into<String>) -> Finding {
    let r = rule(id);
    Finding {
        id,
        severity: r.severity,
        message,
        location,
        rationale: r.rationale,
        fix: fix.into(),
    }
}

/// Whether a rule's layer is described by the input (rules of absent layers do not apply).
pub fn applies(r: &Rule, s: &Subject) -> bool {
    // Rules about one kind of input only: a bundle's integrity, and the order in which
    // OCI runtimes load a filter when an OCI config turns no_new_privs off.
    match r.id {
        RuleId::Scmp013 => return s.format == InputFormat::Bundle,
        RuleId::Oci006 => {
            return s.format == InputFormat::Oci
                && matches!(s.no_new_privs, Some((false, _)))
                && s.seccomp().is_some()
        }
        _ => {}
    }
    match r.layer {
        Layer::Seccomp => s.seccomp.is_some(),
        Layer::Caps => s.caps.is_some(),
        Layer::Oci => s.no_new_privs.is_some() || s.namespaces.is_some() || s.mounts.is_some(),
        Layer::AppArmor => s.apparmor.is_some(),
        // A policy without a `selinux` section says nothing about SELinux.
        Layer::SeLinux => match &s.selinux {
            None => false,
            Some((label, _)) => s.format != InputFormat::Policy || label.is_some(),
        },
        Layer::Resources => s.limits.is_some(),
        Layer::Cross => s.seccomp().is_some() && s.caps.is_some(),
    }
}

use catalogue::EFFECTIVELY_ROOT as ROOT_CAPS;

fn allowed(v: &SeccompView, arch: Arch, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter(|n| v.class(arch, n).is_some_and(Class::allows))
        .map(|n| n.to_string())
        .collect()
}

fn group(name: &str) -> Vec<&'static str> {
    catalogue::expand_group(name.trim_start_matches('@'))
        .map(|g| g.into_iter().collect())
        .unwrap_or_default()
}

fn seccomp_rules(s: &Subject, out: &mut Vec<Finding>) {
    let Some(sc) = &s.seccomp else { return };
    let Some(v) = sc else {
        out.push(finding(
            RuleId::Scmp001,
            "no seccomp filter".into(),
            Location::file(&s.name),
            "seccomp {\n    default errno(EPERM)\n    allow @container-default\n}",
        ));
        return;
    };
    let native = Arch::X86_64;
    // SCMP001: the default.
    if v.default.allows() {
        out.push(finding(
            RuleId::Scmp001,
            format!("syscalls not listed get `{}`", v.default.text()),
            v.location.clone(),
            "seccomp {\n    default errno(EPERM)\n}",
        ));
    }
    // SCMP002: the arch check. A native number with a made-up arch must not get through.
    let probe_nr = catalogue::syscall("getpid")
        .and_then(|d| d.nr(native))
        .unwrap_or(39);
    let foreign: Vec<&str> = [
        (0x1234_5678u32, "an unknown arch"),
        (0x4000_0028, "arm"),
        (0x8000_0016, "s390x"),
    ]
    .iter()
    .filter(|(arch, _)| super::sym::classify(&v.prog, *arch, probe_nr).allows())
    .map(|(_, n)| *n)
    .collect();
    if !foreign.is_empty() {
        out.push(finding(
            RuleId::Scmp002,
            format!(
                "syscall {probe_nr} from {} reaches ALLOW: the architecture is not checked",
                foreign.join(", ")
            ),
            v.location.clone(),
            "seccomp {\n    arches [x86_64]\n    bad-arch kill-process\n}",
        ));
    }
    // SCMP003: a denied x86_64 call reachable with the x32 bit.
    let mut x32_gaps = Vec::new();
    for (name, class) in &v.tables[&native] {
        if class.allows() {
            continue;
        }
        let Some(nr) = catalogue::syscall(name).and_then(|d| d.nr(native)) else {
            continue;
        };
        if super::sym::classify(&v.prog, native.audit_arch(), nr | 0x4000_0000).allows() {
            x32_gaps.push(*name);
        }
    }
    if !x32_gaps.is_empty() {
        out.push(finding(
            RuleId::Scmp003,
            format!(
                "denied on x86_64 but allowed with the x32 bit: {}",
                summary(&x32_gaps)
            ),
            v.location.clone(),
            "seccomp {\n    arches [x86_64]    # x32 numbers are then a foreign ABI\n}",
        ));
    }
    // SCMP004: extra ABIs.
    let extra: Vec<&str> = [Arch::X86, Arch::X32]
        .into_iter()
        .filter(|a| v.abi_enabled(*a))
        .map(|a| a.name())
        .collect();
    if !extra.is_empty() {
        // For JSON profiles, point at the ABI list rather than the default action.
        let mut loc = v.location.clone();
        if let Some(p) = &loc.pointer {
            loc.pointer = Some(p.replace("/defaultAction", "/archMap"));
        }
        out.push(finding(
            RuleId::Scmp004,
            format!("ABIs besides x86_64 are allowed: {}", extra.join(", ")),
            loc,
            "seccomp {\n    arches [x86_64]\n}",
        ));
    }
    // SCMP005: privileged groups without the capability.
    let held = s.caps.as_ref().map(CapView::held);
    for (g, cap) in [
        ("@module", "SYS_MODULE"),
        ("@raw-io", "SYS_RAWIO"),
        ("@reboot", "SYS_BOOT"),
        ("@swap", "SYS_ADMIN"),
        ("@clock", "SYS_TIME"),
    ] {
        // adjtimex and clock_adjtime only read the clock without CAP_SYS_TIME (modes 0),
        // which is why Docker allows them.
        let names: Vec<&str> = group(g)
            .into_iter()
            .filter(|n| !matches!(*n, "adjtimex" | "clock_adjtime" | "clock_adjtime64"))
            .collect();
        let hit = allowed(v, native, &names);
        if hit.is_empty() {
            continue;
        }
        let has = held.as_ref().map(|h| h.contains(cap));
        if has == Some(true) {
            continue;
        }
        let why = if has.is_none() {
            "capabilities unknown to this input"
        } else {
            "the capabilities lack it"
        };
        out.push(finding(
            RuleId::Scmp005,
            format!(
                "{g} calls allowed without CAP_{cap} ({why}): {}",
                summary(&hit)
            ),
            v.locate(&hit[0]),
            format!("seccomp {{\n    deny {g}\n}}"),
        ));
    }
    // SCMP006: namespace creation unfiltered.
    let ns_calls = allowed_outright(v, native, &["clone", "clone3", "unshare", "setns"]);
    if !ns_calls.is_empty() {
        let sys_admin = held.as_ref().is_some_and(|h| h.contains("SYS_ADMIN"));
        out.push(finding(
            RuleId::Scmp006,
            format!(
                "allowed with any flags: {}{}",
                ns_calls.join(", "),
                if sys_admin { " (and SYS_ADMIN is held)" } else { "" }
            ),
            v.locate(&ns_calls[0]),
            "seccomp {\n    allow clone if clone_flags & (CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP) == 0\n    errno(ENOSYS) clone3\n    deny [unshare, setns]\n}",
        ));
    }
    // SCMP007: attack surface.
    let surface = [
        "bpf",
        "perf_event_open",
        "kcmp",
        "open_by_handle_at",
        "add_key",
        "keyctl",
        "request_key",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "userfaultfd",
    ];
    let mut hit = allowed(v, native, &surface);
    for (family, name) in [(38u64, "socket(AF_ALG)"), (40, "socket(AF_VSOCK)")] {
        if v.run("socket", [family, 1, 0, 0, 0, 0])
            .is_some_and(super::sym::lets_through)
        {
            hit.push(name.to_string());
        }
    }
    if !hit.is_empty() {
        out.push(finding(
            RuleId::Scmp007,
            format!("allowed: {}", hit.join(", ")),
            v.locate(hit[0].split('(').next().unwrap_or("")),
            "seccomp {\n    deny [bpf, perf_event_open, kcmp, open_by_handle_at, add_key, keyctl, request_key, io_uring_setup, io_uring_enter, io_uring_register, userfaultfd]\n    allow socket if family != AF_ALG && family != AF_VSOCK\n}",
        ));
    }
    // SCMP008: ptrace with the means to reach outside.
    let ptrace = allowed(
        v,
        native,
        &["ptrace", "process_vm_readv", "process_vm_writev"],
    );
    if !ptrace.is_empty() {
        let cap = held.as_ref().is_some_and(|h| h.contains("SYS_PTRACE"));
        let host_pid = s
            .namespaces
            .as_ref()
            .is_some_and(|(n, _)| n.get(&NsKind::Pid) == Some(&false));
        if cap || host_pid {
            out.push(finding(
                RuleId::Scmp008,
                format!(
                    "{} allowed with {}",
                    ptrace.join(", "),
                    if cap {
                        "CAP_SYS_PTRACE"
                    } else {
                        "the host pid namespace"
                    }
                ),
                v.locate(&ptrace[0]),
                "seccomp {\n    deny [ptrace, process_vm_readv, process_vm_writev]\n}",
            ));
        }
    }
    // SCMP009: equivalence gaps.
    let families: &[&[&str]] = &[
        &["execve", "execveat"],
        &["open", "openat", "openat2", "creat"],
        &["fork", "vfork", "clone", "clone3"],
        &["write", "pwrite64", "writev", "pwritev", "pwritev2"],
        &["rename", "renameat", "renameat2"],
        &["unlink", "unlinkat", "rmdir"],
        &["chmod", "fchmod", "fchmodat", "fchmodat2"],
        &["chown", "fchown", "lchown", "fchownat"],
        &["kill", "tkill", "tgkill", "pidfd_send_signal"],
        &["setuid", "setreuid", "setresuid"],
        &["mount", "fsmount", "move_mount", "open_tree"],
        &["init_module", "finit_module"],
        &["kexec_load", "kexec_file_load"],
    ];
    for fam in families {
        let t = &v.tables[&native];
        // Only explicit denials count: an allow-list leaving a sibling to its default is
        // not a gap, and ENOSYS is a fallback, not a denial (clone3 -> clone).
        let denied: Vec<&str> = fam
            .iter()
            .filter(|n| matches!(t.get(**n), Some(c @ Class::Deny(a)) if *a != Action::Errno(38) && *c != v.default))
            .copied()
            .collect();
        let open: Vec<&str> = fam
            .iter()
            .filter(|n| t.get(**n).is_some_and(Class::allows))
            .copied()
            .collect();
        if !denied.is_empty() && !open.is_empty() {
            out.push(finding(
                RuleId::Scmp009,
                format!(
                    "{} denied but {} allowed",
                    denied.join(", "),
                    open.join(", ")
                ),
                v.locate(open[0]),
                format!("seccomp {{\n    deny [{}]\n}}", open.join(", ")),
            ));
        }
    }
    // SCMP010: socket family rules bypassed through socketcall.
    if v.abi_enabled(Arch::X86) {
        let socket = v.class(Arch::X86, "socket");
        let socketcall = v.class(Arch::X86, "socketcall");
        if matches!(socket, Some(Class::Conditional) | Some(Class::Deny(_)))
            && socketcall == Some(&Class::Allow)
        {
            out.push(finding(
                RuleId::Scmp010,
                "i386 `socket` is filtered but `socketcall` is allowed with any arguments".into(),
                v.locate("socketcall"),
                "seccomp {\n    deny socketcall if call == SYS_SOCKET\n}",
            ));
        }
    }
    // SCMP012: the exploration ran out of budget.
    if v.too_complex {
        out.push(finding(
            RuleId::Scmp012,
            format!(
                "following every path would take more than {} instructions; syscalls not followed to the end are reported as conditional",
                super::sym::Budget::PROGRAM
            ),
            v.location.clone(),
            "seccomp {\n    # decide each syscall with a few argument comparisons, not nested trees\n}",
        ));
    }
    // SCMP011: EPERM where ENOSYS lets libc fall back.
    if let Some(Class::Deny(Action::Errno(1))) = v.class(native, "clone3") {
        out.push(finding(
            RuleId::Scmp011,
            "clone3 gets EPERM; libc only falls back to clone on ENOSYS".into(),
            v.locate("clone3"),
            "seccomp {\n    errno(ENOSYS) clone3\n}",
        ));
    }
}

/// Syscalls allowed whatever their arguments.
fn allowed_outright(v: &SeccompView, arch: Arch, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter(|n| v.class(arch, n) == Some(&Class::Allow))
        .map(|n| n.to_string())
        .collect()
}

fn summary<S: AsRef<str>>(names: &[S]) -> String {
    let shown: Vec<&str> = names.iter().take(8).map(AsRef::as_ref).collect();
    if names.len() > 8 {
        format!("{} and {} more", shown.join(", "), names.len() - 8)
    } else {
        shown.join(", ")
    }
}

fn caps_rules(s: &Subject, out: &mut Vec<Finding>) {
    let Some(c) = &s.caps else { return };
    let held = c.held();
    let all: BTreeSet<String> = catalogue::capabilities()
        .iter()
        .map(|c| c.to_string())
        .collect();
    if all.is_subset(&held) {
        out.push(finding(
            RuleId::Cap001,
            "the process holds every capability".into(),
            c.location.clone(),
            "capabilities {\n    drop all\n}",
        ));
    }
    let root: Vec<&str> = ROOT_CAPS
        .iter()
        .filter(|r| held.contains(**r))
        .copied()
        .collect();
    if !root.is_empty() {
        out.push(finding(
            RuleId::Cap002,
            format!("effectively-root capabilities held: {}", root.join(", ")),
            c.location.clone(),
            format!("capabilities {{\n    drop [{}]\n}}", root.join(", ")),
        ));
    }
    let mut extra: Vec<&str> = held
        .iter()
        .map(String::as_str)
        .filter(|c| !DOCKER_CAPS.contains(c) && !ROOT_CAPS.contains(c))
        .collect();
    if held.contains("NET_RAW") {
        extra.push("NET_RAW");
    }
    if !extra.is_empty() {
        out.push(finding(
            RuleId::Cap003,
            format!(
                "capabilities beyond Docker's default or NET_RAW: {}",
                extra.join(", ")
            ),
            c.location.clone(),
            format!("capabilities {{\n    drop [{}]\n}}", extra.join(", ")),
        ));
    }
    let mut low = Vec::new();
    if c.bounding.len() == all.len() {
        low.push("the bounding set is not reduced".to_string());
    }
    if !c.inheritable.is_empty() {
        low.push(format!(
            "inheritable: {}",
            c.inheritable.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if !c.ambient.is_empty() {
        low.push(format!(
            "ambient: {}",
            c.ambient.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if !low.is_empty() {
        out.push(finding(
            RuleId::Cap004,
            low.join("; "),
            c.location.clone(),
            "capabilities {\n    inheritable []\n    ambient []\n}",
        ));
    }
}

fn tamper_rules(s: &Subject, out: &mut Vec<Finding>) {
    if let Some((why, loc)) = &s.tampered {
        out.push(finding(
            RuleId::Scmp013,
            why.clone(),
            loc.clone(),
            "# recompile the bundle from its policy: kakoi compile POLICY -o DIR (and sign it: --sign KEY)",
        ));
    }
}

fn oci_rules(s: &Subject, out: &mut Vec<Finding>) {
    // OCI006: runc/crun with noNewPrivileges false install the filter while still
    // privileged (installing one then needs no NNP) and only then change credentials.
    if let (InputFormat::Oci, Some((false, loc)), Some(v)) =
        (s.format, &s.no_new_privs, s.seccomp())
    {
        let native = Arch::X86_64;
        let denied: Vec<&str> = ["setgroups", "setresgid", "setresuid", "capset"]
            .into_iter()
            .filter(|n| v.class(native, n).is_some_and(|c| !c.allows()))
            .collect();
        if !denied.is_empty() {
            out.push(finding(
                RuleId::Oci006,
                format!(
                    "no_new_privs is off and the filter denies {}, which runc and crun call after loading it: the container will not start",
                    denied.join(", ")
                ),
                loc.clone(),
                format!(
                    "process {{\n    no-new-privs on\n}}\n# or allow them: seccomp {{ allow [{}] }}",
                    denied.join(", ")
                ),
            ));
        }
    }
    if let Some((false, loc)) = &s.no_new_privs {
        out.push(finding(
            RuleId::Oci001,
            "no_new_privs is off".into(),
            loc.clone(),
            "process {\n    no-new-privs on\n}",
        ));
    }
    if let Some((ns, loc)) = &s.namespaces {
        let host: Vec<&str> = [
            NsKind::Pid,
            NsKind::Net,
            NsKind::Ipc,
            NsKind::Uts,
            NsKind::User,
        ]
        .into_iter()
        .filter(|k| ns.get(k) == Some(&false))
        .map(NsKind::name)
        .collect();
        // The user namespace alone is OCI005's concern (uid 0 without one).
        let serious: Vec<&str> = host.iter().copied().filter(|k| *k != "user").collect();
        if !serious.is_empty() {
            out.push(finding(
                RuleId::Oci002,
                format!("host namespaces: {}", serious.join(", ")),
                loc.clone(),
                format!(
                    "namespaces {{\n{}}}",
                    serious
                        .iter()
                        .map(|k| format!("    {k} on\n"))
                        .collect::<String>()
                ),
            ));
        }
    }
    let masked = s.masked.as_ref();
    let readonly = s.readonly.as_ref();
    if let (Some((m, mloc)), Some((r, _))) = (masked, readonly) {
        let mut gaps = Vec::new();
        if m.is_empty() {
            gaps.push("no masked paths".to_string());
        }
        if r.is_empty() {
            gaps.push("no read-only paths".to_string());
        }
        for p in ["/proc/kcore", "/proc/keys", "/proc/timer_list"] {
            if !m.is_empty() && !m.iter().any(|x| x == p) {
                gaps.push(format!("{p} not masked"));
            }
        }
        for p in ["/proc/sys", "/proc/sysrq-trigger"] {
            if !r.is_empty() && !r.iter().any(|x| x == p) && !m.iter().any(|x| x == p) {
                gaps.push(format!("{p} writable"));
            }
        }
        if let Some(ms) = &s.mounts {
            for mv in ms {
                if mv.destination == "/sys" && !mv.options.iter().any(|o| o == "ro") {
                    gaps.push("/sys mounted read-write".into());
                }
            }
        }
        if !gaps.is_empty() {
            out.push(finding(
                RuleId::Oci003,
                gaps.join("; "),
                mloc.clone(),
                "filesystem {\n    mask [\"/proc/kcore\", \"/proc/keys\", \"/proc/timer_list\"]\n    readonly [\"/proc/sys\", \"/proc/sysrq-trigger\"]\n}",
            ));
        }
    }
    if let Some(ms) = &s.mounts {
        const SENSITIVE: &[&str] = &[
            "/",
            "/proc",
            "/sys",
            "/dev",
            "/etc",
            "/var/run/docker.sock",
            "/run/docker.sock",
            "/run/containerd/containerd.sock",
            "/var/run/crio/crio.sock",
            "/run/podman/podman.sock",
        ];
        for mv in ms {
            let bind = mv.kind == "bind" || mv.options.iter().any(|o| o == "bind" || o == "rbind");
            let shared = mv.options.iter().any(|o| o == "shared" || o == "rshared");
            let src = match mv.source.trim_end_matches('/') {
                "" => "/",
                s => s,
            };
            let sensitive = bind && SENSITIVE.contains(&src);
            if sensitive || shared {
                let mut what = Vec::new();
                if sensitive {
                    what.push(format!(
                        "host {} is mounted at {}",
                        mv.source, mv.destination
                    ));
                }
                if shared {
                    what.push(format!("{} has shared propagation", mv.destination));
                }
                out.push(finding(
                    RuleId::Oci004,
                    what.join("; "),
                    mv.location.clone(),
                    "filesystem {\n    # bind only the data the workload needs, read-only\n    bind \"/srv/app-data\" -> \"/data\"\n}",
                ));
            }
        }
    }
    let userns = s
        .namespaces
        .as_ref()
        .is_some_and(|(n, _)| n.get(&NsKind::User) == Some(&true));
    let mut med = Vec::new();
    let mut loc = None;
    if let Some((false, l)) = &s.rootfs_readonly {
        med.push("the root file system is writable".to_string());
        loc = Some(l.clone());
    }
    if let Some((0, l)) = &s.uid {
        if !userns {
            med.push("runs as uid 0 without a user namespace".to_string());
            loc.get_or_insert(l.clone());
        }
    }
    if let Some(l) = loc {
        out.push(finding(
            RuleId::Oci005,
            med.join("; "),
            l,
            "identity {\n    user 1000\n}\nnamespaces {\n    user on\n}",
        ));
    }
}

fn lsm_rules(s: &Subject, out: &mut Vec<Finding>) {
    if let Some(a) = &s.apparmor {
        if a.profile.is_none() {
            out.push(finding(
                RuleId::Aa001,
                "no AppArmor profile (unconfined)".into(),
                a.location.clone(),
                "apparmor optional {\n    profile \"kakoi-app\"\n}",
            ));
        } else if a.complain {
            out.push(finding(
                RuleId::Aa001,
                format!(
                    "profile `{}` is in complain mode",
                    a.profile.as_deref().unwrap_or("")
                ),
                a.location.clone(),
                "apparmor {\n    mode enforce\n}",
            ));
        }
        if !a.lines.is_empty() {
            for (n, l) in &a.lines {
                let t = l.trim();
                let rule = t.trim_start_matches("audit ").trim_start_matches("allow ");
                let bare =
                    ["capability,", "mount,", "ptrace,", "umount,", "pivot_root,"].contains(&rule);
                let ux = !t.starts_with('#')
                    && (t.ends_with("ux,")
                        || t.contains(" ux ")
                        || t.contains(" Ux,")
                        || t.contains("unconfined"));
                if (bare || ux) && !t.starts_with("deny") {
                    let loc = if *n > 0 {
                        Location::line(&a.location.file, *n)
                    } else {
                        a.location.clone()
                    };
                    out.push(finding(
                        RuleId::Aa002,
                        format!("`{t}` allows everything of its class"),
                        loc,
                        "apparmor {\n    rule [\"deny mount,\"]\n}",
                    ));
                }
            }
            let text: String = a
                .lines
                .iter()
                .map(|(_, l)| l.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            if !text.contains("deny @{PROC}/sys")
                && !text.contains("deny /proc/sys")
                && !text.contains("deny @{PROC}/sys/**")
            {
                out.push(finding(
                    RuleId::Aa002,
                    "no write denial for /proc/sys (Docker's profile has one)".into(),
                    a.location.clone(),
                    "apparmor {\n    rule [\"deny @{PROC}/sys/** wklx,\"]\n}",
                ));
            }
        }
    }
    if let Some((label, loc)) = &s.selinux {
        match label {
            None if s.format != InputFormat::Policy => out.push(finding(
                RuleId::Sel001,
                "no SELinux label".into(),
                loc.clone(),
                "selinux optional {\n    type container_t\n    level random\n}",
            )),
            Some(l)
                if ["spc_t", "unconfined_t"]
                    .iter()
                    .any(|t| l.split(':').nth(2) == Some(*t)) =>
            {
                out.push(finding(
                    RuleId::Sel001,
                    format!("label `{l}` is not confined"),
                    loc.clone(),
                    "selinux {\n    type container_t\n}",
                ))
            }
            _ => {}
        }
    }
}

fn cross_rules(s: &Subject, out: &mut Vec<Finding>) {
    let (Some(v), Some(c)) = (s.seccomp(), &s.caps) else {
        return;
    };
    let mount_ok = v.class(Arch::X86_64, "mount").is_some_and(Class::allows);
    let sys_admin = c.held().contains("SYS_ADMIN");
    let aa_denies = s.apparmor.as_ref().is_some_and(|a| {
        a.lines
            .iter()
            .any(|(_, l)| l.trim().starts_with("deny mount"))
    });
    if mount_ok && sys_admin && !aa_denies {
        out.push(finding(
            RuleId::X001,
            "mount is allowed by seccomp, SYS_ADMIN is held, and no AppArmor rule denies mounts"
                .into(),
            v.locate("mount"),
            "seccomp {\n    deny [mount, umount2]\n}",
        ));
    }
}

fn resource_rules(s: &Subject, out: &mut Vec<Finding>) {
    let Some(l) = &s.limits else { return };
    let mut missing = Vec::new();
    let mut fix = Vec::new();
    if l.pids.is_none() {
        missing.push("no pids limit");
        fix.push("    pids 1024");
    }
    if l.memory.is_none() {
        missing.push("no memory limit");
        fix.push("    memory 512M");
    }
    if !missing.is_empty() {
        out.push(finding(
            RuleId::Res001,
            missing.join("; "),
            l.location.clone(),
            format!("resources {{\n{}\n}}", fix.join("\n")),
        ));
    }
}

/// Every finding for a subject, sorted by severity (highest first), then id.
pub fn check(s: &Subject) -> Vec<Finding> {
    let mut out = Vec::new();
    seccomp_rules(s, &mut out);
    caps_rules(s, &mut out);
    if matches!(
        s.format,
        InputFormat::Oci | InputFormat::Policy | InputFormat::Bundle | InputFormat::Process
    ) {
        oci_rules(s, &mut out);
        tamper_rules(s, &mut out);
    }
    lsm_rules(s, &mut out);
    resource_rules(s, &mut out);
    cross_rules(s, &mut out);
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.id.as_str().cmp(b.id.as_str()))
            .then(a.location.cmp(&b.location))
    });
    out
}

/// The exposure score, 0.0 (nothing found) to 10.0, in the spirit of
/// `systemd-analyze security`: each rule that applies to the input adds its weight to the
/// total; each rule that fires adds it to the exposed part.
pub fn score(s: &Subject, findings: &[Finding]) -> f64 {
    let mut fired: BTreeSet<RuleId> = findings.iter().map(|f| f.id).collect();
    // No filter at all: every seccomp concern is open, not only SCMP001.
    if matches!(s.seccomp, Some(None)) && fired.contains(&RuleId::Scmp001) {
        fired.extend(
            RULES
                .iter()
                .filter(|r| r.layer == Layer::Seccomp)
                .map(|r| r.id),
        );
    }
    let mut total = 0u64;
    let mut exposed = 0u64;
    for r in RULES {
        if r.weight == 0 || !applies(r, s) {
            continue;
        }
        total += u64::from(r.weight);
        if fired.contains(&r.id) {
            exposed += u64::from(r.weight);
        }
    }
    if total == 0 {
        return 0.0;
    }
    (100.0 * exposed as f64 / total as f64).ceil() / 10.0
}

/// systemd's bands for an exposure score.
pub fn band(score: f64) -> &'static str {
    match score {
        s if s <= 0.0 => "PERFECT",
        s if s < 1.0 => "SAFE",
        s if s < 5.0 => "OK",
        s if s < 7.5 => "MEDIUM",
        s if s < 9.0 => "EXPOSED",
        s if s < 10.0 => "UNSAFE",
        _ => "DANGEROUS",
    }
}

#[cfg(test)]
mod id_tests {
    use super::*;

    #[test]
    fn every_rule_id_is_its_catalogue_entry() {
        assert_eq!(RULES.len(), RuleId::ALL.len());
        for (i, r) in RULES.iter().enumerate() {
            assert_eq!(r.id as usize, i, "{}", r.id);
            assert_eq!(rule(r.id).id, r.id);
            assert_eq!(RuleId::from_name(r.id.as_str()), Some(r.id));
        }
    }
}
