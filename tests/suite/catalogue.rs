//! The syscall catalogue against the kernel it describes and the ABIs' real entry points.

use policy_lang::catalogue::{self, Arch, ArgKind};

/// The tracefs events (`sys_enter_NAME`) of the running kernel: its syscalls' entry
/// points. `None` when tracefs cannot be read (not root, no CONFIG_FTRACE_SYSCALLS).
fn live_syscalls() -> Option<Vec<String>> {
    let dir = std::path::Path::new("/sys/kernel/tracing/events/syscalls");
    if !dir.exists() {
        // As root, mount it (a second mount of tracefs is harmless).
        let _ = std::process::Command::new("mount")
            .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
            .status();
    }
    let names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_prefix("sys_enter_")
                .map(str::to_string)
        })
        .collect();
    (!names.is_empty()).then_some(names)
}

/// Every syscall of the machine's kernel (Linux 6.18 here, as the catalogue says) is in
/// the catalogue with an x86_64 number.
#[test]
fn the_catalogue_knows_every_syscall_of_the_running_kernel() {
    let Some(live) = live_syscalls() else {
        assert!(
            std::env::var("CI").is_err(),
            "tracefs is unreadable under CI"
        );
        eprintln!("skipped: tracefs events/syscalls is not readable");
        return;
    };
    // Entry points named unlike their syscall.
    let alias = |n: &str| -> String {
        match n {
            "newfstat" => "fstat",
            "newlstat" => "lstat",
            "newstat" => "stat",
            "newuname" => "uname",
            "sendfile64" => "sendfile",
            "umount" => "umount2",
            n => n,
        }
        .to_string()
    };
    let missing: Vec<String> = live
        .iter()
        .map(|n| alias(n))
        .filter(|n| {
            catalogue::syscall(n)
                .and_then(|d| d.nr(Arch::X86_64))
                .is_none()
        })
        .collect();
    assert!(missing.is_empty(), "unknown to the catalogue: {missing:?}");
    assert!(live.len() > 350, "{} events", live.len());
    assert_eq!(catalogue::KERNEL_VERSION, "6.18");
}

/// The calls whose i386 or x32 entry points take their arguments unlike x86_64's, as the
/// generator found them in the kernel's compat entry points: argument rules use each
/// ABI's own list, or are refused there (E0314).
#[test]
fn compat_abis_use_their_own_argument_lists() {
    let names = |arch: Arch, s: &str| -> Option<Vec<(&'static str, bool)>> {
        catalogue::syscall(s)?
            .args(arch)
            .map(|a| a.iter().map(|a| (a.name, a.kind == ArgKind::Ptr)).collect())
    };
    let shape =
        |arch: Arch, s: &str| names(arch, s).map(|v| v.iter().map(|a| a.1).collect::<Vec<_>>());
    let differ = |arch: Arch| -> Vec<&'static str> {
        catalogue::syscalls()
            .iter()
            .filter(|d| d.nr(arch).is_some() && d.nr(Arch::X86_64).is_some())
            .filter(|d| shape(arch, d.name) != shape(Arch::X86_64, d.name))
            .map(|d| d.name)
            .collect()
    };
    // i386: old_mmap and old_select take one pointer; CLONE_BACKWARDS swaps tls and
    // child_tidptr; 64-bit offsets take two registers (the ia32 wrappers name them);
    // fanotify_mark's 64-bit mask has no plain signature, so no argument rule there.
    assert_eq!(
        differ(Arch::X86),
        [
            "clone",
            "fadvise64",
            "fallocate",
            "fanotify_mark",
            "mmap",
            "pread64",
            "pwrite64",
            "readahead",
            "rt_sigreturn",
            "select",
            "sync_file_range",
        ]
    );
    assert_eq!(names(Arch::X86, "mmap").unwrap(), [("arg", true)]);
    assert_eq!(names(Arch::X86, "select").unwrap(), [("arg", true)]);
    assert_eq!(names(Arch::X86, "mmap2").unwrap().len(), 6);
    assert_eq!(names(Arch::X86, "pread64").unwrap()[3].0, "poslo");
    assert_eq!(names(Arch::X86, "clone").unwrap()[3].0, "tls_val");
    assert_eq!(names(Arch::X86, "fanotify_mark"), None);
    // x32: the preadv family takes the offset as one 64-bit register.
    assert_eq!(
        differ(Arch::X32),
        ["preadv", "preadv2", "pwritev", "pwritev2"]
    );
    assert_eq!(names(Arch::X32, "preadv").unwrap()[3].0, "pos");
    assert_eq!(names(Arch::X86_64, "preadv").unwrap()[3].0, "pos_l");
}

/// The syscalls added since Linux 6.12 are there, on every ABI that has them.
#[test]
fn the_catalogue_has_linux_6_18s_new_syscalls() {
    for (name, nr) in [
        ("setxattrat", 463),
        ("getxattrat", 464),
        ("listxattrat", 465),
        ("removexattrat", 466),
        ("open_tree_attr", 467),
        ("file_getattr", 468),
        ("file_setattr", 469),
    ] {
        let d = catalogue::syscall(name).unwrap_or_else(|| panic!("{name}"));
        for arch in Arch::ALL {
            assert_eq!(
                d.nr(arch),
                Some(nr | arch.nr_offset()),
                "{name} on {arch:?}"
            );
        }
    }
    // 6.19's listns is not a 6.18 syscall.
    assert!(catalogue::syscall("listns").is_none());
}

/// The one rlimit table (names for the resolver, numbers for the launcher's `prlimit`)
/// holds the C library's numbers.
#[test]
fn rlimit_numbers_are_the_kernels() {
    use policy_lang::catalogue::rlimit;
    for (name, want) in [
        ("as", libc::RLIMIT_AS),
        ("core", libc::RLIMIT_CORE),
        ("cpu", libc::RLIMIT_CPU),
        ("data", libc::RLIMIT_DATA),
        ("fsize", libc::RLIMIT_FSIZE),
        ("locks", libc::RLIMIT_LOCKS),
        ("memlock", libc::RLIMIT_MEMLOCK),
        ("msgqueue", libc::RLIMIT_MSGQUEUE),
        ("nice", libc::RLIMIT_NICE),
        ("nofile", libc::RLIMIT_NOFILE),
        ("nproc", libc::RLIMIT_NPROC),
        ("rss", libc::RLIMIT_RSS),
        ("rtprio", libc::RLIMIT_RTPRIO),
        ("rttime", libc::RLIMIT_RTTIME),
        ("sigpending", libc::RLIMIT_SIGPENDING),
        ("stack", libc::RLIMIT_STACK),
    ] {
        assert_eq!(rlimit(name), Some(want), "{name}");
    }
    assert_eq!(policy_lang::catalogue::RLIMITS.len(), 16);
    assert_eq!(rlimit("files"), None);
}
