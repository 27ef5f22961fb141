//! The live kernel: fork a child, install a compiled program with `seccomp(2)`, make
//! syscalls, and compare what the kernel did with what the policy says. Allowed probes
//! must behave exactly as in an unfiltered child; denied ones must fail with the policy's
//! errno; foreign-ABI entries must kill the child with SIGSYS.
//!
//! Needs no privilege (no_new_privs is set first). x86_64 only.
#![cfg(target_arch = "x86_64")]

use kakoi::seccomp::{self, Backend, Host};
use kakoi::{bpf, cli};
use policy_lang::catalogue::{syscall, Arch};
use policy_lang::ir::{Action, Seccomp};

/// One syscall to make in the child: number and six raw register values.
#[derive(Clone, Copy, Debug)]
struct Probe {
    name: &'static str,
    nr: u32,
    args: [u64; 6],
    /// Made through the i386 entry point (`int 0x80`) instead of `syscall`.
    i386: bool,
}

fn probe(name: &'static str, args: [u64; 6]) -> Probe {
    Probe {
        name,
        nr: syscall(name).unwrap().nr(Arch::X86_64).unwrap(),
        args,
        i386: false,
    }
}

/// A probe through the i386 entry point; arguments are 32-bit registers.
fn probe_i386(name: &'static str, args: [u32; 5]) -> Probe {
    let mut a = [0u64; 6];
    for (d, s) in a.iter_mut().zip(args) {
        *d = u64::from(s);
    }
    Probe {
        name,
        nr: syscall(name).unwrap().nr(Arch::X86).unwrap(),
        args: a,
        i386: true,
    }
}

/// An i386 syscall from this 64-bit process: `int 0x80` with eax = `nr` and ebx, ecx,
/// edx, esi, edi = `a` (ebp, the sixth, is left as it is). Returns -errno on failure.
///
/// # Safety
/// The call must not touch memory this process relies on (probes pass no pointers, or
/// invalid ones).
unsafe fn int80(nr: u32, a: [u64; 6]) -> i64 {
    let mut eax = nr;
    // SAFETY: the caller's contract; rbx is reserved by LLVM, so it is swapped in and out
    // around the call; the compat entry returns in eax and may zero r8-r11.
    unsafe {
        std::arch::asm!(
            "xchg {b}, rbx",
            "int 0x80",
            "xchg {b}, rbx",
            b = inout(reg) a[0] => _,
            inout("eax") eax,
            in("ecx") a[1] as u32,
            in("edx") a[2] as u32,
            in("esi") a[3] as u32,
            in("edi") a[4] as u32,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
        );
    }
    i64::from(eax as i32)
}

/// Probes whose effects stay inside the child even when allowed.
fn probes() -> Vec<Probe> {
    const BAD: u64 = u64::MAX; // -1: an invalid fd or pid
    vec![
        probe("getpid", [0; 6]),
        probe("read", [BAD, 0, 0, 0, 0, 0]),
        probe("write", [BAD, 0, 0, 0, 0, 0]),
        probe("mount", [0; 6]),
        probe("umount2", [0; 6]),
        probe("unshare", [0x1000_0000, 0, 0, 0, 0, 0]), // CLONE_NEWUSER
        probe("setns", [BAD, 0, 0, 0, 0, 0]),
        probe("clone3", [0, 0, 0, 0, 0, 0]),
        probe("bpf", [BAD, 0, 0, 0, 0, 0]),
        probe("keyctl", [BAD, 0, 0, 0, 0, 0]),
        probe("add_key", [0; 6]),
        probe("perf_event_open", [0; 6]),
        probe("kexec_load", [0; 6]),
        probe("open_by_handle_at", [BAD, 0, 0, 0, 0, 0]),
        probe("socket", [2, 2, 0, 0, 0, 0]), // AF_INET, SOCK_DGRAM
        probe("socket", [38, 5, 0, 0, 0, 0]), // AF_ALG
        probe("socket", [40, 1, 0, 0, 0, 0]), // AF_VSOCK
        // AF_ALG with garbage in the high half: the kernel reads an `int` (38); a filter
        // that compares all 64 bits sees a large family and lets it through.
        probe("socket", [0xdead_beef_0000_0026, 5, 0, 0, 0, 0]),
        probe("personality", [0xffff_ffff, 0, 0, 0, 0, 0]),
        probe("personality", [0x0040_0000, 0, 0, 0, 0, 0]), // READ_IMPLIES_EXEC
        probe("io_uring_setup", [0; 6]),
        probe("userfaultfd", [0; 6]),
        probe("ptrace", [BAD, BAD, 0, 0, 0, 0]),
        probe("reboot", [0; 6]),
        probe("swapon", [0; 6]),
    ]
}

/// What a child observed for each probe: the raw return value and errno.
type Observed = Vec<(i64, i32)>;

enum ChildEnd {
    Results(Observed),
    Signalled(i32),
}

/// A raw program as the `sock_filter` array `seccomp(2)` takes.
fn sock_filters(prog: &[u8]) -> Vec<libc::sock_filter> {
    bpf::decode(prog)
        .unwrap()
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect()
}

/// Run `probes` in a forked child, under `prog` when given.
fn in_child(prog: Option<&[u8]>, probes: &[Probe]) -> ChildEnd {
    let insns: Vec<libc::sock_filter> = prog.map(sock_filters).unwrap_or_default();
    let mut out = vec![0u8; probes.len() * 12];
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid two-element array for pipe(2) to fill.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child only makes raw syscalls, writes to the pipe and `_exit`s: no
    // allocation, no locks, nothing that is unsafe after fork in a threaded process.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: see above; every pointer passed points into memory prepared before fork.
        unsafe {
            libc::close(fds[0]);
            if !insns.is_empty() {
                let fprog = libc::sock_fprog {
                    len: insns.len() as u16,
                    filter: insns.as_ptr() as *mut _,
                };
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                    || libc::syscall(
                        libc::SYS_seccomp,
                        1, /* SET_MODE_FILTER */
                        0,
                        &fprog as *const _,
                    ) != 0
                {
                    libc::_exit(100);
                }
            }
            for (i, p) in probes.iter().enumerate() {
                let a = p.args;
                let (r, e) = if p.i386 {
                    match int80(p.nr, a) {
                        r @ -4095..=-1 => (-1, -r as i32),
                        r => (r, 0),
                    }
                } else {
                    let r = libc::syscall(i64::from(p.nr), a[0], a[1], a[2], a[3], a[4], a[5]);
                    (r, *libc::__errno_location())
                };
                let slot = out.as_mut_ptr().add(i * 12);
                std::ptr::copy_nonoverlapping(r.to_le_bytes().as_ptr(), slot, 8);
                std::ptr::copy_nonoverlapping(e.to_le_bytes().as_ptr(), slot.add(8), 4);
            }
            libc::write(fds[1], out.as_ptr().cast(), out.len());
            libc::_exit(0);
        }
    }
    // SAFETY: closing our copy of the write end, then reading into `out`, which is large
    // enough for `out.len()` bytes.
    let got = unsafe {
        libc::close(fds[1]);
        let mut got = 0usize;
        loop {
            let n = libc::read(fds[0], out.as_mut_ptr().add(got).cast(), out.len() - got);
            if n <= 0 {
                break;
            }
            got += n as usize;
        }
        libc::close(fds[0]);
        got
    };
    let mut status = 0;
    // SAFETY: waiting for the child we forked.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    if libc::WIFSIGNALED(status) {
        return ChildEnd::Signalled(libc::WTERMSIG(status));
    }
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the child could not install the filter"
    );
    assert_eq!(got, out.len());
    ChildEnd::Results(
        out.chunks_exact(12)
            .map(|c| {
                (
                    i64::from_le_bytes(c[..8].try_into().unwrap()),
                    i32::from_le_bytes(c[8..].try_into().unwrap()),
                )
            })
            .collect(),
    )
}

/// A syscall's outcome: success, or the errno it failed with.
fn outcome((ret, errno): (i64, i32)) -> Option<i32> {
    (ret < 0).then_some(errno)
}

/// Check every probe against the policy; returns the probes that disagreed.
fn disagreements(s: &Seccomp, prog: &[u8]) -> Vec<String> {
    disagreements_on(s, prog, probes())
}

fn disagreements_on(s: &Seccomp, prog: &[u8], ps: Vec<Probe>) -> Vec<String> {
    let ChildEnd::Results(free) = in_child(None, &ps) else {
        panic!("the unfiltered child was killed")
    };
    let mut bad = Vec::new();
    for (i, p) in ps.iter().enumerate() {
        let abi = if p.i386 { Arch::X86 } else { Arch::X86_64 };
        let want = s.decide(abi.audit_arch(), p.nr, &p.args).action;
        // Each probe alone, so one kill does not hide the others.
        let got = in_child(Some(prog), std::slice::from_ref(p));
        let ok = match (want, &got) {
            // Success values (a pid, an fd) differ between children; failures must match.
            (Action::Allow | Action::Log, ChildEnd::Results(r)) => {
                outcome(r[0]) == outcome(free[i])
            }
            (Action::Errno(e), ChildEnd::Results(r)) => r[0] == (-1, i32::from(e)),
            (Action::KillProcess | Action::KillThread, ChildEnd::Signalled(sig)) => {
                *sig == libc::SIGSYS
            }
            _ => false,
        };
        if !ok {
            let seen = match got {
                ChildEnd::Results(r) => format!("ret {} errno {}", r[0].0, r[0].1),
                ChildEnd::Signalled(s) => format!("signal {s}"),
            };
            bad.push(format!(
                "{} {:x?}: policy {} but {seen}",
                p.name,
                p.args,
                want.to_source()
            ));
        }
    }
    bad
}

/// Policies under test must allow `write` and `exit_group`, which the child needs to
/// report (a policy denying them is still checked by the interpreter-based tests).
#[test]
fn live_kernel_enforces_kakois_programs_as_the_policy_says() {
    for name in [
        "default",
        "strict",
        "web-server",
        "python-batch",
        "fixtures/seccomp/wide-arguments.kakoi",
    ] {
        let p = cli::load(name).unwrap().policy.unwrap();
        let prog = seccomp::compile_checked(&p.seccomp, Host::X86_64, Backend::Kakoi).unwrap();
        let bad = disagreements(&p.seccomp, &prog.bpf);
        assert!(bad.is_empty(), "{name}:\n{}", bad.join("\n"));
    }
}

/// libseccomp's program for the default policy passes every probe except the AF_ALG
/// socket with garbage in the high half of the family, which it lets through: the 64-bit
/// comparison trap of a 32-bit argument that kakoi's generator avoids.
#[test]
fn live_kernel_shows_libseccomps_64_bit_comparison_of_a_32_bit_argument() {
    let p = cli::load("default").unwrap().policy.unwrap();
    let prog = seccomp::compile_checked(&p.seccomp, Host::X86_64, Backend::Libseccomp).unwrap();
    let bad = disagreements(&p.seccomp, &prog.bpf);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].starts_with("socket [deadbeef00000026"), "{bad:?}");
}

/// x32 and i386 entry points of a policy that targets x86_64 only are killed.
#[test]
fn live_kernel_kills_foreign_abi_entries() {
    let p = cli::load("default").unwrap().policy.unwrap();
    let prog = seccomp::compile_checked(&p.seccomp, Host::X86_64, Backend::Kakoi).unwrap();
    // getpid with the x32 bit.
    let x32 = Probe {
        name: "getpid(x32)",
        nr: 0x4000_0027,
        args: [0; 6],
        i386: false,
    };
    assert!(matches!(
        in_child(Some(&prog.bpf), &[x32]),
        ChildEnd::Signalled(libc::SIGSYS)
    ));
    // getpid through the i386 entry point (`int 0x80`, eax = 20).
    let insns = sock_filters(&prog.bpf);
    // SAFETY: as in `in_child`: the child only makes raw syscalls and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: the filter memory was prepared before fork; `int 0x80` with eax = 20 is
        // i386 getpid, which takes no arguments and clobbers only eax.
        unsafe {
            let fprog = libc::sock_fprog {
                len: insns.len() as u16,
                filter: insns.as_ptr() as *mut _,
            };
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            libc::syscall(libc::SYS_seccomp, 1, 0, &fprog as *const _);
            let mut eax: u32 = 20;
            std::arch::asm!("int 0x80", inout("eax") eax);
            libc::_exit(if eax == 0 { 1 } else { 2 });
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS,
        "status {status:#x}"
    );
}

/// Which i386 probes the policy denies.
fn denied_on_i386(s: &Seccomp, ps: &[Probe]) -> Vec<bool> {
    ps.iter()
        .map(|p| s.decide(Arch::X86.audit_arch(), p.nr, &p.args).action != Action::Allow)
        .collect()
}

/// Both backends' programs, loaded into the live kernel, do what the policy says.
fn both_backends_agree_live(s: &Seccomp, ps: &dyn Fn() -> Vec<Probe>) {
    for backend in [Backend::Kakoi, Backend::Libseccomp] {
        let prog = seccomp::compile_checked(s, Host::X86_64, backend).unwrap();
        let bad = disagreements_on(s, &prog.bpf, ps());
        assert!(bad.is_empty(), "{backend:?}:\n{}", bad.join("\n"));
    }
}

/// What the probes do without a filter.
fn unfiltered(ps: &[Probe]) -> Observed {
    let ChildEnd::Results(free) = in_child(None, ps) else {
        panic!("the unfiltered child was killed")
    };
    free
}

/// i386's multiplexers, through `int 0x80`: rules on socket and SysV IPC calls decide the
/// same calls made through `socketcall` and `ipc` (with `ipc`'s version bits), and the
/// direct i386 entries, as the policy says, with both backends. Unfiltered, the probes
/// fail with EFAULT, EINVAL or EBADF (NULL argument blocks, id -1); denials with EACCES.
#[test]
fn live_kernel_applies_rules_to_i386_multiplexed_calls() {
    const SYS_SOCKET: u32 = 1;
    const SYS_BIND: u32 = 2;
    const SYS_CONNECT: u32 = 3;
    const SEMOP: u32 = 1;
    const SEMCTL: u32 = 3;
    const SHMCTL: u32 = 24;
    const VERSION1: u32 = 1 << 16;
    const NONE: u32 = u32::MAX; // -1: no such id
    let ps = || {
        vec![
            probe_i386("socketcall", [SYS_SOCKET, 0, 0, 0, 0]),
            probe_i386("socketcall", [SYS_BIND, 0, 0, 0, 0]),
            probe_i386("socketcall", [SYS_CONNECT, 0, 0, 0, 0]),
            probe_i386("socketcall", [SYS_CONNECT | VERSION1, 0, 0, 0, 0]),
            probe_i386("socket", [2, 2, 0, 0, 0]),
            probe_i386("connect", [NONE, 0, 0, 0, 0]),
            probe_i386("bind", [NONE, 0, 0, 0, 0]),
            probe_i386("ipc", [SHMCTL, NONE, 2, 0, 0]),
            probe_i386("ipc", [SHMCTL | VERSION1, NONE, 2, 0, 0]),
            probe_i386("ipc", [SHMCTL | 0xffff_0000, NONE, 2, 0, 0]),
            probe_i386("ipc", [SEMOP, NONE, 1, 0, 0]),
            probe_i386("ipc", [SEMCTL, NONE, 0, 2, 0]),
            probe_i386("shmctl", [NONE, 2, 0, 0, 0]),
            probe_i386("semctl", [NONE, 0, 2, 0, 0]),
        ]
    };
    let p = cli::load("fixtures/seccomp/i386-multiplexers.kakoi")
        .unwrap()
        .policy
        .unwrap();
    let s = &p.seccomp;
    // The policy's own meaning, spelled out: what the kernel must then do.
    assert_eq!(
        denied_on_i386(s, &ps()),
        [true, false, true, false, true, true, false, true, true, true, true, false, true, false],
        "denied probes"
    );
    both_backends_agree_live(s, &ps);
    // Unfiltered, the kernel runs every one of them (the direct socket succeeds, the rest
    // fail on their arguments): EACCES above came from the filters.
    let free = unfiltered(&ps());
    assert!(free.iter().all(|(_, e)| *e != libc::EACCES), "{free:?}");
    assert!(free[4].0 >= 0 && free[0] == (-1, libc::EFAULT), "{free:?}");
}

/// i386's old `mmap` through `int 0x80`: a rule on its `prot` would read edx, not the
/// struct the kernel reads, so it is refused (E0314); the policy denies old_mmap on x86
/// and checks W^X on `mmap2`, and the kernel does as it says.
#[test]
fn live_kernel_i386_old_mmap_is_decided_by_the_whole_call() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.kakoi");
    std::fs::write(
        &bad,
        "seccomp {\n    arches [x86_64, x86]\n    allow mmap if prot == 3\n}\n",
    )
    .unwrap();
    let refused = cli::load(bad.to_str().unwrap()).unwrap();
    assert!(refused.policy.is_none());
    assert!(refused.diagnostics.iter().any(|d| d.code == "E0314"));
    const RW: u32 = 3;
    const RWX: u32 = 7;
    const ANON: u32 = 0x22; // MAP_PRIVATE | MAP_ANONYMOUS
    let ps = || {
        vec![
            probe_i386("mmap", [0, 0, 0, 0, 0]),
            probe_i386("mmap2", [0, 4096, RWX, ANON, u32::MAX]),
            probe_i386("mmap2", [0, 4096, RW, ANON, u32::MAX]),
        ]
    };
    let p = cli::load("fixtures/seccomp/i386-mmap.kakoi")
        .unwrap()
        .policy
        .unwrap();
    let s = &p.seccomp;
    assert_eq!(denied_on_i386(s, &ps()), [true, true, false]);
    both_backends_agree_live(s, &ps);
    // Unfiltered: old_mmap fails on the NULL block (EFAULT), the RWX mapping succeeds.
    let free = unfiltered(&ps());
    assert_eq!(free[0], (-1, libc::EFAULT), "{free:?}");
    assert!(free[1].0 != -1, "{free:?}");
}

/// Docker's profile imported whole (`acknowledge socketcall`, as runc means it): on i386
/// the family test holds for the direct `socket` call, while `socketcall` stays open; the
/// kernel does as the imported policy says, with both backends.
#[test]
fn live_kernel_imported_docker_profile_leaves_socketcall_open_as_runc_does() {
    let Some(docker) = crate::util::shared_data("docker-default-seccomp.json") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("docker.kakoi");
    let o = crate::util::kakoi()
        .arg("import")
        .arg(&docker)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", crate::util::stderr(&o));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("arches [x86_64, x86, x32]"), "{text}");
    assert!(text.contains("    acknowledge socketcall\n"), "{text}");
    let p = cli::load(out.to_str().unwrap()).unwrap().policy.unwrap();
    const AF_INET: u32 = 2;
    const AF_VSOCK: u32 = 40;
    const SOCK_DGRAM: u32 = 2;
    const SYS_SOCKET: u32 = 1;
    let ps = || {
        vec![
            probe_i386("socket", [AF_VSOCK, SOCK_DGRAM, 0, 0, 0]),
            probe_i386("socket", [AF_INET, SOCK_DGRAM, 0, 0, 0]),
            probe_i386("socketcall", [SYS_SOCKET, 0, 0, 0, 0]),
        ]
    };
    assert_eq!(denied_on_i386(&p.seccomp, &ps()), [true, false, false]);
    let prog = seccomp::compile_checked(&p.seccomp, Host::X86_64, Backend::Kakoi).unwrap();
    let bad = disagreements_on(&p.seccomp, &prog.bpf, ps());
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    // libseccomp cannot check the direct i386 call's arguments (it files them under the
    // multiplexer), and says so rather than compile something else.
    let e = seccomp::compile_checked(&p.seccomp, Host::X86_64, Backend::Libseccomp).unwrap_err();
    assert!(e.to_string().contains("i386's direct `socket`"), "{e}");
    // Unfiltered, socketcall fails on its NULL argument block: it reached the kernel.
    assert_eq!(unfiltered(&ps())[2], (-1, libc::EFAULT));
}
