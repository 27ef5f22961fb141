//! The sandbox's file system, built in the child's new mount namespace (design steps 7–9).
//!
//! Everything is fd-based: host sources are opened `O_PATH` before the first mount, new
//! file systems come from `fsopen`/`fsmount`, copies of host trees from
//! `open_tree(OPEN_TREE_CLONE)`, and each is attached with `move_mount` onto a destination
//! fd resolved *inside* the new root with `openat2(RESOLVE_IN_ROOT)`, so a symlink planted
//! in the rootfs cannot redirect a mount to the host (CVE-2021-30465).

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use policy_lang::ir::{
    Filesystem, Namespaces, NetMode, NsKind, NsMode, Policy, Propagation, Rootfs,
};

use super::error::{At, Hint, StepError};
use super::sys;

/// What the new root is built from: the policy's file system, with what the launch
/// settled for it (the namespaces it makes, SELinux on the host). A step of the plan.
#[derive(Clone, Debug)]
pub struct Root {
    pub fs: Filesystem,
    /// The namespaces the launch makes (a rootless launch adds a user namespace).
    pub ns: Namespaces,
    pub hostname: Option<String>,
    pub network: NetMode,
    /// SELinux is active: device nodes are bound from the host (they keep their labels).
    pub selinux: bool,
    /// Mount the IPC namespace's mqueue file system on /dev/mqueue (an OCI config asks).
    pub mqueue: bool,
}

impl Root {
    pub fn of(p: &Policy, ns: &Namespaces, selinux: bool) -> Root {
        Root {
            fs: p.filesystem.clone(),
            ns: ns.clone(),
            hostname: p.process.hostname.clone(),
            network: p.network.mode.clone(),
            selinux,
            mqueue: false,
        }
    }
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// Host directories a `rootfs host` sandbox sees, read-only (symlinks are recreated).
const HOST_DIRS: &[&str] = &[
    "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc",
];

/// The device nodes of the minimal /dev, with Linux's fixed numbers (major, minor; see
/// the kernel's Documentation/admin-guide/devices.txt), as runc and crun make them.
const DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

fn c(s: &str) -> CString {
    // Policy paths were checked for NUL bytes when they were parsed.
    CString::new(s).unwrap_or_default()
}

fn open_host(root: BorrowedFd, path: &str, extra: libc::c_int) -> std::io::Result<OwnedFd> {
    sys::openat2(root, &c(path), libc::O_PATH | extra, 0, 0)
}

/// Host objects opened before any mount hides them.
struct Sources {
    host_root: OwnedFd,
    rootfs: Option<OwnedFd>,
    host_dirs: Vec<(&'static str, HostEntry)>,
    binds: Vec<(OwnedFd, bool)>,
    overlays: Vec<OverlaySources>,
}

/// Per overlay: lower fds, upper and work fds (none: a tmpfs upper layer).
type OverlaySources = (Vec<OwnedFd>, Option<(OwnedFd, OwnedFd)>);

enum HostEntry {
    Dir(OwnedFd),
    Link(CString),
}

fn fd_path(fd: &OwnedFd) -> String {
    use std::os::fd::AsRawFd;
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn is_dir(fd: BorrowedFd) -> bool {
    sys::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

fn open_sources(p: &Root) -> Result<Sources, StepError> {
    let fs = &p.fs;
    let host_root = sys::open_root().at("open the host root")?;
    let r = host_root.as_fd();
    let rootfs = match &fs.rootfs {
        Rootfs::Dir { path, .. } => Some(
            open_host(r, path, libc::O_DIRECTORY)
                .at(format!("open rootfs {path}"))
                .hint("the rootfs must be an existing directory")?,
        ),
        Rootfs::Host => None,
    };
    let mut host_dirs = Vec::new();
    // An overlay on / is the whole root (an image's layers): the host's /usr over it would
    // run the host's programs with the image's /etc.
    let overlay_root = fs.overlays.iter().any(|o| o.target == "/");
    if matches!(fs.rootfs, Rootfs::Host) && !overlay_root {
        for d in HOST_DIRS {
            let path = format!("/{d}");
            match std::fs::read_link(&path) {
                Ok(t) => host_dirs.push((*d, HostEntry::Link(c(&t.to_string_lossy())))),
                // Not on this host (lib32, libx32…).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => {
                    if let Ok(fd) = open_host(r, &path, libc::O_DIRECTORY | libc::O_NOFOLLOW) {
                        host_dirs.push((*d, HostEntry::Dir(fd)));
                    }
                }
            }
        }
    }
    let mut binds = Vec::new();
    for b in &fs.binds {
        let fd = open_host(r, &b.source, 0)
            .at(format!("open bind source {}", b.source))
            .hint("bind sources are host paths and must exist")?;
        let dir = is_dir(fd.as_fd());
        binds.push((fd, dir));
    }
    let mut overlays = Vec::new();
    for o in &fs.overlays {
        let mut lowers = Vec::new();
        for l in &o.lower {
            lowers.push(
                open_host(r, l, libc::O_DIRECTORY)
                    .at(format!("open overlay layer {l}"))
                    .hint("overlay layers are host directories and must exist")?,
            );
        }
        let upper = match &o.upper {
            Some(u) => {
                let work = o.work.clone().unwrap_or_else(|| format!("{u}.work"));
                let _ = std::fs::create_dir_all(u);
                let _ = std::fs::create_dir_all(&work);
                let uf =
                    open_host(r, u, libc::O_DIRECTORY).at(format!("open overlay upper {u}"))?;
                let wf = open_host(r, &work, libc::O_DIRECTORY)
                    .at(format!("open overlay work dir {work}"))?;
                Some((uf, wf))
            }
            None => None,
        };
        overlays.push((lowers, upper));
    }
    Ok(Sources {
        host_root,
        rootfs,
        host_dirs,
        binds,
        overlays,
    })
}

/// Open (creating directories as needed) `path` inside `root`, resolved as if `root` were
/// `/`: `..` and absolute symlinks cannot leave it. `file`: the last component is a file.
fn make_in_root(root: BorrowedFd, path: &str, file: bool) -> std::io::Result<OwnedFd> {
    make_in_root_at(root, path, file, 0)
}

fn make_in_root_at(
    root: BorrowedFd,
    path: &str,
    file: bool,
    depth: u32,
) -> std::io::Result<OwnedFd> {
    if depth > 40 {
        return Err(std::io::Error::from_raw_os_error(libc::ELOOP));
    }
    let how = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    // Most destinations exist: one lookup.
    match sys::openat2(root, &c(path), libc::O_PATH, 0, how) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        r => return r,
    }
    // Walk down from the root; each directory is opened from the root with the prefix
    // (so symlinks met on the way stay inside it) and is the parent of the next step.
    let comps: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut prefix = String::new();
    let mut parent: Option<OwnedFd> = None;
    for (i, comp) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        let parent_prefix = prefix.clone();
        prefix.push('/');
        prefix.push_str(comp);
        // The whole path was just looked up and is missing: no second lookup for it.
        let lookup = if last {
            Err(std::io::Error::from_raw_os_error(libc::ENOENT))
        } else {
            sys::openat2(root, &c(&prefix), libc::O_PATH, 0, how)
        };
        let opened = match lookup {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let dir = parent.as_ref().map_or(root, |p| p.as_fd());
                // A dangling symlink: create what it points to, still inside the root.
                if let Ok(t) = sys::readlinkat(dir, &c(comp)) {
                    let rest = comps[i + 1..].join("/");
                    let base = if t.starts_with('/') {
                        t
                    } else {
                        format!("{parent_prefix}/{t}")
                    };
                    return make_in_root_at(root, &format!("{base}/{rest}"), file, depth + 1);
                }
                if last && file {
                    // Create an empty file to mount over.
                    drop(sys::openat2(
                        dir,
                        &c(comp),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW,
                        0o644,
                        0,
                    )?);
                } else {
                    sys::mkdirat(dir, &c(comp), 0o755)?;
                }
                sys::openat2(root, &c(&prefix), libc::O_PATH, 0, how)?
            }
            r => r?,
        };
        if last {
            return Ok(opened);
        }
        parent = Some(opened);
    }
    sys::openat2(root, c"/", libc::O_PATH | libc::O_DIRECTORY, 0, how)
}

/// Attach a detached mount on a destination inside the root. `fresh`: the root is kakoi's
/// own new tmpfs, where nothing exists that kakoi did not make, so a directory right below
/// it is made and mounted on by name ([`mount_on_new_dir`]); otherwise, or when it exists,
/// the destination is looked up inside the root ([`make_in_root`]).
fn attach(
    mnt: OwnedFd,
    root: BorrowedFd,
    target: &str,
    file: bool,
    fresh: bool,
) -> std::io::Result<()> {
    let name = target.trim_start_matches('/');
    if fresh
        && !file
        && !name.is_empty()
        && !name.contains('/')
        && mount_on_new_dir(&mnt, root, name)?
    {
        return Ok(());
    }
    let dest = make_in_root(root, target, file)?;
    sys::move_mount_fd(mnt.as_fd(), dest.as_fd())
}

/// Make the directory `name` in `dir` and mount `mnt` on it by name: two system calls. Only
/// for a directory no one else can write to (kakoi's own new tmpfs and /dev), where the
/// name just made cannot have been swapped for a symlink. False when `name` exists.
fn mount_on_new_dir(mnt: &OwnedFd, dir: BorrowedFd, name: &str) -> std::io::Result<bool> {
    match sys::mkdirat(dir, &c(name), 0o755) {
        Ok(()) => sys::move_mount_at(mnt.as_fd(), dir, &c(name)).map(|()| true),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A recursive copy of a host tree, with attributes set on the detached copy.
fn clone_tree(src: BorrowedFd, attrs: u64) -> std::io::Result<OwnedFd> {
    let t = sys::open_tree(
        src,
        c"",
        sys::OPEN_TREE_CLONE | libc::AT_RECURSIVE as u32 | libc::AT_EMPTY_PATH as u32,
    )?;
    if attrs != 0 {
        sys::mount_setattr(t.as_fd(), true, attrs, 0, None)?;
    }
    Ok(t)
}

/// A copy of the one mount `src` is on, rooted at `src` (submounts left out), with
/// attributes set and cleared on the detached copy.
fn clone_one(src: BorrowedFd, set: u64, clear: u64) -> std::io::Result<OwnedFd> {
    let t = sys::open_tree(src, c"", sys::OPEN_TREE_CLONE | libc::AT_EMPTY_PATH as u32)?;
    sys::mount_setattr(t.as_fd(), false, set, clear, None)?;
    Ok(t)
}

fn size_opt(n: u64) -> String {
    n.to_string()
}

/// Build the new root and pivot into it. The caller is the child, in its own mount
/// namespace (and user namespace, when rootless).
/// `idmapped`: the parent's idmapped copies of the `idmap` binds, in policy order.
/// `join_net` joins the network namespace the parent makes meanwhile (for a root launch
/// without a user namespace). It runs just before /sys is mounted (a fresh sysfs shows the
/// mounter's network namespace), as late as that can be: after the pivot and the protection
/// of every other path, so that the namespace is ready without a wait.
pub fn build(
    p: &Root,
    address: Option<&str>,
    idmapped: Vec<OwnedFd>,
    join_net: Option<impl FnOnce() -> Result<(), StepError>>,
) -> Result<(), StepError> {
    let mut idmapped = idmapped.into_iter();
    let fs = &p.fs;
    let src = open_sources(p)?;
    // Private by default: nothing mounted here reaches the host, and nothing the host
    // mounts later under a path bound here reaches the sandbox (such a mount would come
    // with the host's flags: writable, with devices and set-user-ID files). Copies made
    // below with open_tree take the propagation of what they copy.
    let propagation = propagation_flag(fs.propagation);
    sys::mount(None, c"/", None, libc::MS_REC | propagation, None)
        .at("make / private")
        .hint("mounts must not propagate between the sandbox and the host")?;

    // The new root is mounted on /tmp (in this namespace only). When an overlay has a
    // tmpfs upper layer, a staging tmpfs there holds the new root (/tmp/root) and the
    // layers (/tmp/ovN).
    let tmp = open_host(
        src.host_root.as_fd(),
        "/tmp",
        libc::O_DIRECTORY | libc::O_NOFOLLOW,
    )
    .at("open /tmp for staging")?;
    let staged = fs.overlays.iter().any(|o| o.upper.is_none());
    let (stage, slot_path) = if staged {
        let mnt = sys::fs_mount(
            c"tmpfs",
            &[("mode", Some("0755"))],
            sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
        )
        .at("create the staging tmpfs")?;
        sys::move_mount_fd(mnt.as_fd(), tmp.as_fd()).at("mount the staging tmpfs")?;
        let stage = open_host(src.host_root.as_fd(), "/tmp", libc::O_DIRECTORY)
            .at("open the staging tmpfs")?;
        sys::mkdirat(stage.as_fd(), c"root", 0o755).at("create the new root")?;
        (stage, "/tmp/root")
    } else {
        (tmp, "/tmp")
    };

    // The root itself.
    let root_overlay = fs.overlays.iter().position(|o| o.target == "/");
    let root_mnt = if let Some(i) = root_overlay {
        overlay(&src, i, &fs.overlays[i].lower, stage.as_fd())?
    } else {
        match &src.rootfs {
            // A writable rootfs is a host directory: files the sandbox makes there must
            // not become set-user-ID programs for the host's users.
            Some(fd) => clone_tree(
                fd.as_fd(),
                sys::MOUNT_ATTR_NODEV
                    | match &fs.rootfs {
                        Rootfs::Dir {
                            readonly: false, ..
                        } => sys::MOUNT_ATTR_NOSUID,
                        _ => 0,
                    },
            )
            .at("bind the rootfs")?,
            None => sys::fs_mount(
                c"tmpfs",
                &[("mode", Some("0755"))],
                sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
            )
            .at("create the root tmpfs")?,
        }
    };
    let slot = open_host(stage.as_fd(), slot_path, libc::O_DIRECTORY).at("open the new root")?;
    sys::move_mount_fd(root_mnt.as_fd(), slot.as_fd()).at("mount the new root")?;
    let root = open_host(stage.as_fd(), slot_path, libc::O_DIRECTORY).at("open the new root")?;
    let root = root.as_fd();
    // The root is a fresh tmpfs of its own: /dev and the masks' empty directory come from
    // it, with no tmpfs of their own (each file system instance is made at launch and torn
    // down when the payload exits), and mount points are made in it without a lookup.
    let own_root = src.rootfs.is_none() && root_overlay.is_none();

    for (name, e) in &src.host_dirs {
        match e {
            HostEntry::Link(t) => match sys::symlinkat(t, root, &c(name)) {
                Err(e) if e.raw_os_error() != Some(libc::EEXIST) => {
                    return Err(e).at(format!("symlink /{name}"));
                }
                _ => {}
            },
            HostEntry::Dir(fd) => {
                let t = clone_tree(fd.as_fd(), sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NODEV)
                    .at(format!("bind host /{name}"))?;
                attach(t, root, name, false, own_root).at(format!("bind host /{name}"))?;
            }
        }
    }
    // Overlays, binds and tmpfs, parents before children (a tmpfs on /tmp must not hide a
    // bind on /tmp/data); at the same depth in the policy's order.
    enum Item {
        Overlay(usize),
        Bind(usize),
        Tmpfs(usize),
    }
    let depth = |t: &str| t.split('/').filter(|c| !c.is_empty()).count();
    let mut items: Vec<(usize, Item)> = Vec::new();
    for (i, o) in fs.overlays.iter().enumerate() {
        if Some(i) != root_overlay {
            items.push((depth(&o.target), Item::Overlay(i)));
        }
    }
    items.extend(
        fs.binds
            .iter()
            .enumerate()
            .map(|(i, b)| (depth(&b.target), Item::Bind(i))),
    );
    items.extend(
        fs.tmpfs
            .iter()
            .enumerate()
            .map(|(i, t)| (depth(&t.target), Item::Tmpfs(i))),
    );
    items.sort_by_key(|(d, _)| *d);
    // The parent sent the idmapped binds in the policy's order.
    let mut idmapped_fds: Vec<Option<OwnedFd>> = fs
        .binds
        .iter()
        .map(|b| if b.idmap { idmapped.next() } else { None })
        .collect();
    for (_, item) in items {
        match item {
            Item::Overlay(i) => {
                let o = &fs.overlays[i];
                let m = overlay(&src, i, &o.lower, stage.as_fd())?;
                attach(m, root, &o.target, false, own_root)
                    .at(format!("mount overlay on {}", o.target))?;
            }
            Item::Bind(i) => {
                let b = &fs.binds[i];
                let (fd, dir) = &src.binds[i];
                // nodev unless the source is a device itself: the payload may hold
                // CAP_MKNOD, and a node it makes in a writable bind must not open a host
                // disk.
                let device = sys::fstat(fd.as_fd()).is_ok_and(|st| {
                    matches!(st.st_mode & libc::S_IFMT, libc::S_IFCHR | libc::S_IFBLK)
                });
                // nosuid unless the policy says `suid`: a set-user-ID-root file the
                // sandbox makes in a writable bind is one every host user can run.
                let attrs = if b.readonly {
                    sys::MOUNT_ATTR_RDONLY
                } else {
                    0
                } | if device { 0 } else { sys::MOUNT_ATTR_NODEV }
                    | if b.suid { 0 } else { sys::MOUNT_ATTR_NOSUID };
                let t = if b.idmap {
                    idmapped_fds[i].take().ok_or_else(|| {
                        StepError::new(
                            format!("idmap bind {}", b.source),
                            "the parent sent no mount",
                        )
                    })?
                } else {
                    clone_tree(fd.as_fd(), attrs).at(format!("bind {}", b.source))?
                };
                attach(t, root, &b.target, !dir, own_root)
                    .at(format!("bind {} -> {}", b.source, b.target))
                    .hint("the destination is resolved inside the new root")?;
            }
            Item::Tmpfs(i) => {
                let t = &fs.tmpfs[i];
                let mut opts = vec![];
                let size = t.size.map(size_opt);
                if let Some(s) = &size {
                    opts.push(("size", Some(s.as_str())));
                }
                let mode = t.mode.map(|m| format!("{m:o}"));
                if let Some(m) = &mode {
                    opts.push(("mode", Some(m.as_str())));
                }
                let m = sys::fs_mount(
                    c"tmpfs",
                    &opts,
                    sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
                )
                .at(format!("tmpfs on {}", t.target))?;
                attach(m, root, &t.target, false, own_root).at(format!("tmpfs on {}", t.target))?;
            }
        }
    }
    if own_root && matches!(fs.rootfs, Rootfs::Host) {
        etc_files(p, address, &src, root)?;
    }
    let empty = special_mounts(p, &src, root, own_root)?;
    // Without a namespace to join, /sys is mounted here, before the pivot: in a user
    // namespace the kernel mounts a fresh sysfs only while a full one is visible in the
    // mount namespace (the host's, until the old root is detached), and the host's /sys
    // can still be copied when a fresh one is refused (the host's network namespace).
    if join_net.is_none() {
        mount_sys(
            root,
            own_root,
            Some(|| {
                open_host(src.host_root.as_fd(), "/sys", libc::O_DIRECTORY).at("open host /sys")
            }),
        )?;
    }

    // pivot_root(".", "."): the old root ends up under the new one and is detached at once.
    sys::fchdir(root).at("chdir into the new root")?;
    sys::pivot_root(c".", c".")
        .at("pivot_root")
        .hint("the new root must be a mount point in this mount namespace")?;
    sys::mount(None, c".", None, libc::MS_REC | propagation, None)
        .at("make the old root private")?;
    sys::umount2(c".", libc::MNT_DETACH).at("detach the old root")?;
    sys::mount(None, c"/", None, libc::MS_REC | propagation, None).at("make / private")?;
    std::env::set_current_dir("/").at("chdir /")?;
    after_pivot(p, join_net, empty, own_root)
}

/// The sandbox's own `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf`, over the
/// host's (container engines generate them too): the host's name and its local resolver
/// settings are not the sandbox's business. Written to the root tmpfs's `sys` directory,
/// which sysfs covers later, so the files are reachable only through these binds, which
/// are read-only. With `network { mode host }` the sandbox shares the host's network and
/// keeps its `hosts` and `resolv.conf`.
fn etc_files(
    p: &Root,
    address: Option<&str>,
    src: &Sources,
    root: BorrowedFd,
) -> Result<(), StepError> {
    let hostname = match (&p.hostname, p.ns.get(NsKind::Uts)) {
        (Some(h), NsMode::New) => h.clone(),
        _ => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into()),
    };
    let mut files = vec![("hostname", format!("{hostname}\n"))];
    let shares_host_net =
        p.ns.get(NsKind::Net) != &NsMode::New || matches!(p.network, NetMode::Host);
    if !shares_host_net {
        let mut hosts =
            String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        match address {
            Some(a) => {
                let ip = a.split('/').next().unwrap_or(a);
                hosts.push_str(&format!("{ip}\t{hostname}\n"));
            }
            _ => hosts.push_str(&format!("127.0.1.1\t{hostname}\n")),
        }
        files.push(("hosts", hosts));
        let resolv = match &p.network {
            NetMode::None => "# kakoi: this sandbox has no network\n".to_string(),
            _ => sandbox_resolv_conf(
                &open_host(src.host_root.as_fd(), "/etc/resolv.conf", 0)
                    .ok()
                    .and_then(|fd| std::fs::read_to_string(fd_path(&fd)).ok())
                    .unwrap_or_default(),
            ),
        };
        files.push(("resolv.conf", resolv));
    }
    // The directory sysfs is mounted on later (see `mount_sys`).
    sys::mkdirat(root, c"sys", 0o755).at("create /sys in the new root")?;
    let dir = sys::openat2(
        root,
        c"sys",
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        RESOLVE_NO_SYMLINKS,
    )
    .at("open /sys in the new root")?;
    for (name, text) in files {
        let f = sys::openat2(
            dir.as_fd(),
            &c(name),
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
            0o644,
            RESOLVE_NO_SYMLINKS,
        )
        .at(format!("write the sandbox's /etc/{name}"))?;
        std::io::Write::write_all(&mut std::fs::File::from(f), text.as_bytes())
            .at(format!("write the sandbox's /etc/{name}"))?;
        let file = sys::openat2(dir.as_fd(), &c(name), libc::O_PATH, 0, RESOLVE_NO_SYMLINKS)
            .at(format!("open the sandbox's /etc/{name}"))?;
        let t = sys::open_tree(
            file.as_fd(),
            c"",
            sys::OPEN_TREE_CLONE | libc::AT_EMPTY_PATH as u32,
        )
        .at(format!("bind /etc/{name}"))?;
        sys::mount_setattr(
            t.as_fd(),
            false,
            sys::MOUNT_ATTR_RDONLY
                | sys::MOUNT_ATTR_NOSUID
                | sys::MOUNT_ATTR_NODEV
                | sys::MOUNT_ATTR_NOEXEC,
            0,
            None,
        )
        .at(format!("bind /etc/{name}"))?;
        // The host's /etc/resolv.conf may be a symlink (to /run/systemd/resolve/…): the
        // target is looked up, or made, inside the new root.
        // A file the host's /etc does not have cannot be made in it (read-only): then
        // there is nothing of the host's to hide.
        match attach(t, root, &format!("/etc/{name}"), true, false) {
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => {}
            r => r.at(format!("bind /etc/{name}"))?,
        }
    }
    Ok(())
}

/// The host's resolver settings without its loopback name servers (a local resolver such
/// as systemd-resolved's 127.0.0.53 is not reachable from the sandbox's own loopback).
fn sandbox_resolv_conf(host: &str) -> String {
    let mut out = String::from("# kakoi: the host's resolv.conf without loopback name servers\n");
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words.next().unwrap_or("");
            if addr.starts_with("127.") || addr == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("# no name server the sandbox can reach\n");
    }
    out
}

/// Whether `name` matches `pattern`, whose `*` matches any run of characters.
fn glob_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => {
            let Some(tail) = name.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|&i| tail.is_char_boundary(i))
                .any(|i| glob_match(rest, &tail[i..]))
        }
    }
}

/// The `mount(2)` propagation flag for the policy's propagation.
fn propagation_flag(p: Propagation) -> libc::c_ulong {
    match p {
        Propagation::Private => libc::MS_PRIVATE,
        Propagation::Slave => libc::MS_SLAVE,
    }
}

/// An overlay mount for overlay `i` (upper on the host or a tmpfs in the staging area).
fn overlay(
    src: &Sources,
    i: usize,
    lower: &[String],
    stage: BorrowedFd,
) -> Result<OwnedFd, StepError> {
    let (lowers, upper) = &src.overlays[i];
    let lowerdir: Vec<String> = lowers.iter().map(fd_path).collect();
    // An upper layer on the host is nosuid, as a writable bind is.
    let nosuid = if upper.is_some() {
        sys::MOUNT_ATTR_NOSUID
    } else {
        0
    };
    let (up, work) = match upper {
        Some((u, w)) => (fd_path(u), fd_path(w)),
        None => {
            let base = format!("ov{i}");
            sys::mkdirat(stage, &c(&base), 0o755).at("create the overlay tmpfs layer")?;
            for d in ["upper", "work"] {
                sys::mkdirat(stage, &c(&format!("{base}/{d}")), 0o755)
                    .at("create the overlay tmpfs layer")?;
            }
            (format!("/tmp/{base}/upper"), format!("/tmp/{base}/work"))
        }
    };
    let lowerdir = lowerdir.join(":");
    sys::fs_mount(
        c"overlay",
        &[
            ("lowerdir", Some(&lowerdir)),
            ("upperdir", Some(&up)),
            ("workdir", Some(&work)),
        ],
        sys::MOUNT_ATTR_NODEV | nosuid,
    )
    .at(format!("mount overlay (lower {})", lower.join(":")))
    .hint("overlayfs needs the upper and work directories on the same file system")
}

const HINT_LINK: &str = "a symlinked /proc or /sys in the rootfs is refused (CVE-2023-27561)";

/// The directory `name` right below the root, made if missing; a symlinked destination for
/// /proc or /sys is refused (CVE-2023-27561). `fresh`: the root is kakoi's own new tmpfs,
/// where it is missing, so it is made first.
fn plain_dir(root: BorrowedFd, name: &str, fresh: bool) -> std::io::Result<OwnedFd> {
    let open = || {
        sys::openat2(
            root,
            &c(name),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            RESOLVE_NO_SYMLINKS | RESOLVE_IN_ROOT,
        )
    };
    let made = fresh && sys::mkdirat(root, &c(name), 0o755).is_ok();
    match open() {
        Err(e) if !made && e.raw_os_error() == Some(libc::ENOENT) => {
            sys::mkdirat(root, &c(name), 0o755)?;
            open()
        }
        r => r,
    }
}

/// /proc, /dev and its nodes, /dev/pts, /dev/shm. `own_root`: the new root is kakoi's own
/// tmpfs. Returns then the masks' empty directory: the root's /proc directory, opened before
/// /proc covers it (empty, and unreachable by path once covered).
fn special_mounts(
    p: &Root,
    src: &Sources,
    root: BorrowedFd,
    own_root: bool,
) -> Result<Option<OwnedFd>, StepError> {
    // /proc: a fresh instance needs a pid namespace of our own.
    let proc_dir = plain_dir(root, "proc", own_root)
        .at("open /proc in the new root")
        .hint(HINT_LINK)?;
    let empty = if own_root {
        Some(proc_dir.try_clone().at("open the empty /proc directory")?)
    } else {
        None
    };
    let fresh = sys::fs_mount(
        c"proc",
        &[],
        sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC,
    );
    let proc_mnt = match fresh {
        Ok(m) => m,
        Err(_) if p.ns.get(NsKind::Pid) != &NsMode::New => {
            let host = open_host(src.host_root.as_fd(), "/proc", libc::O_DIRECTORY)
                .at("open host /proc")?;
            clone_tree(host.as_fd(), 0).at("bind host /proc")?
        }
        Err(e) => return Err(e).at("mount /proc"),
    };
    sys::move_mount_fd(proc_mnt.as_fd(), proc_dir.as_fd()).at("mount /proc")?;

    // /dev: the usual nodes, a private devpts, /dev/shm. On kakoi's own root tmpfs it is
    // the root's /dev directory as a mount of its own (devices allowed there, nowhere else);
    // on a rootfs directory a tmpfs, so as not to write into it.
    let dev_dir = plain_dir(root, "dev", own_root).at("open /dev in the new root")?;
    let dev = if own_root {
        clone_one(
            dev_dir.as_fd(),
            sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC,
            sys::MOUNT_ATTR_NODEV,
        )
    } else {
        sys::fs_mount(
            c"tmpfs",
            &[("mode", Some("0755")), ("size", Some("65536"))],
            sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC,
        )
    }
    .at("mount /dev")?;
    sys::move_mount_fd(dev.as_fd(), dev_dir.as_fd()).at("mount /dev")?;
    // Device nodes: made with mknod when the launcher holds CAP_MKNOD over the host (no
    // user namespace), else bound from the host's /dev. The mount's own descriptor is the
    // directory they are made in.
    // With SELinux the host's nodes keep their labels (devnull_t…); nodes made on this
    // tmpfs would carry the tmpfs's type, which no container module grants.
    let mut bind_devices = p.ns.get(NsKind::User) != &NsMode::Host || p.selinux;
    // Mode 0666 as given, whatever the launcher's umask.
    let umask = sys::umask(0);
    for &(name, major, minor) in DEVICES {
        if !bind_devices {
            match sys::mknod_char(dev.as_fd(), &c(name), libc::makedev(major, minor)) {
                Ok(()) => continue,
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => bind_devices = true,
                Err(e) => {
                    sys::umask(umask);
                    return Err(e).at(format!("mknod /dev/{name}"));
                }
            }
        }
        let path = format!("/dev/{name}");
        let Ok(fd) = open_host(src.host_root.as_fd(), &path, libc::O_NOFOLLOW) else {
            continue;
        };
        let t = clone_tree(fd.as_fd(), sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC)
            .at(format!("bind {path}"))?;
        attach(t, root, &path, true, false).at(format!("bind {path}"))?;
    }
    sys::umask(umask);
    let pts = sys::fs_mount(
        c"devpts",
        &[
            ("newinstance", None),
            ("ptmxmode", Some("0666")),
            ("mode", Some("0620")),
        ],
        sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC,
    )
    .at("mount /dev/pts")?;
    // /dev is new (the root's fresh directory or a fresh tmpfs): its mount points are made
    // and mounted on by name.
    if !mount_on_new_dir(&pts, dev.as_fd(), "pts").at("mount /dev/pts")? {
        attach(pts, root, "/dev/pts", false, false).at("mount /dev/pts")?;
    }
    let shm = sys::fs_mount(
        c"tmpfs",
        &[("mode", Some("1777")), ("source", Some("shm"))],
        sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC,
    )
    .at("mount /dev/shm")?;
    if !mount_on_new_dir(&shm, dev.as_fd(), "shm").at("mount /dev/shm")? {
        attach(shm, root, "/dev/shm", false, false).at("mount /dev/shm")?;
    }
    if p.mqueue {
        // POSIX message queues of the sandbox's IPC namespace (an OCI config's mount).
        let mq = sys::fs_mount(
            c"mqueue",
            &[],
            sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC,
        )
        .at("mount /dev/mqueue")?;
        if !mount_on_new_dir(&mq, dev.as_fd(), "mqueue").at("mount /dev/mqueue")? {
            attach(mq, root, "/dev/mqueue", false, false).at("mount /dev/mqueue")?;
        }
    }
    for (name, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        sys::symlinkat(&c(target), dev.as_fd(), &c(name)).at(format!("symlink /dev/{name}"))?;
    }
    // Then /dev itself is read-only: with CAP_MKNOD the payload could otherwise make any
    // device node there (every other writable mount is nodev).
    sys::mount_setattr(dev.as_fd(), false, sys::MOUNT_ATTR_RDONLY, 0, None)
        .at("make /dev read-only")?;

    Ok(empty)
}

/// `path` inside `root` without following a final symlink; `None` when it does not exist
/// (masking or protecting a missing path is nothing to do).
fn open_existing(root: BorrowedFd, path: &str) -> std::io::Result<Option<OwnedFd>> {
    match sys::openat2(
        root,
        &c(path),
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// After the pivot: masked and read-only paths, then the root itself read-only. With
/// `join_net`, /sys is mounted here too, as late as it can be: after the protection of every
/// path outside it, so that the network namespace the parent makes meanwhile (see [`build`])
/// is ready when it is joined. `empty`: the masks' empty directory ([`special_mounts`]);
/// `own_root`: the root is kakoi's own fresh tmpfs.
fn after_pivot(
    p: &Root,
    join_net: Option<impl FnOnce() -> Result<(), StepError>>,
    empty: Option<OwnedFd>,
    own_root: bool,
) -> Result<(), StepError> {
    let fs = &p.fs;
    let root = sys::open_root().at("open /")?;
    let root = root.as_fd();
    let mut protect = Protect::new(root, empty)?;
    let in_sys = |path: &&String| {
        path.strip_prefix("/sys")
            .is_some_and(|r| r.is_empty() || r.starts_with('/'))
    };
    let late = join_net.is_some();
    for m in fs.masked.iter().filter(|m| !(late && in_sys(m))) {
        protect.mask(m)?;
    }
    for r in fs.readonly.iter().filter(|r| !(late && in_sys(r))) {
        protect.readonly(r)?;
    }
    if let Some(join_net) = join_net {
        join_net()?;
        mount_sys(root, own_root, None::<fn() -> _>)?;
        for m in fs.masked.iter().filter(in_sys) {
            protect.mask(m)?;
        }
        for r in fs.readonly.iter().filter(in_sys) {
            protect.readonly(r)?;
        }
    }

    let root_ro = match &fs.rootfs {
        Rootfs::Host => true,
        Rootfs::Dir { readonly, .. } => *readonly,
    } && !fs.overlays.iter().any(|o| o.target == "/");
    if root_ro {
        let top = sys::openat2(root, c"/", libc::O_PATH | libc::O_DIRECTORY, 0, 0).at("open /")?;
        sys::mount_setattr(top.as_fd(), false, sys::MOUNT_ATTR_RDONLY, 0, None)
            .at("make / read-only")?;
    }
    Ok(())
}

/// /sys, read-only: a fresh sysfs (it shows the mounter's network namespace), or a copy of
/// the host's (opened by `host`) when a fresh one is refused.
fn mount_sys(
    root: BorrowedFd,
    fresh: bool,
    host: Option<impl FnOnce() -> Result<OwnedFd, StepError>>,
) -> Result<(), StepError> {
    let sys_dir = plain_dir(root, "sys", fresh)
        .at("open /sys in the new root")
        .hint(HINT_LINK)?;
    let ro = sys::MOUNT_ATTR_RDONLY
        | sys::MOUNT_ATTR_NOSUID
        | sys::MOUNT_ATTR_NODEV
        | sys::MOUNT_ATTR_NOEXEC;
    let sysfs = match (sys::fs_mount(c"sysfs", &[], ro), host) {
        (Ok(m), _) => m,
        (Err(_), Some(host)) => clone_tree(host()?.as_fd(), ro).at("bind host /sys")?,
        (Err(e), None) => return Err(e).at("mount /sys"),
    };
    sys::move_mount_fd(sysfs.as_fd(), sys_dir.as_fd()).at("mount /sys")
}

/// Masking and read-only copies of paths inside the new root.
struct Protect<'a> {
    root: BorrowedFd<'a>,
    /// The null device masked files are covered with.
    null: OwnedFd,
    /// An empty directory masked directories get a read-only copy of (not of what is
    /// mounted on it): the root tmpfs's covered /proc directory, or else one empty tmpfs,
    /// made for the first masked directory.
    empty: Option<OwnedFd>,
}

impl<'a> Protect<'a> {
    fn new(root: BorrowedFd<'a>, empty: Option<OwnedFd>) -> Result<Self, StepError> {
        // The /dev/null used for masking is verified to be the null device (CVE-2025-31133).
        let null = sys::openat2(
            root,
            c"/dev/null",
            libc::O_PATH,
            0,
            RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS,
        )
        .at("open /dev/null for masking")?;
        let st = sys::fstat(null.as_fd()).at("stat /dev/null")?;
        if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(1, 3) {
            return Err(std::io::Error::from_raw_os_error(libc::EPERM))
                .at("verify /dev/null")
                .hint(
                    "/dev/null is not the null device: refusing to mask with it (CVE-2025-31133)",
                );
        }
        Ok(Protect { root, null, empty })
    }

    /// Mask `m`; a `*` in its last component masks every entry it matches.
    fn mask(&mut self, m: &str) -> Result<(), StepError> {
        let Some((dir, last)) = m.rsplit_once('/').filter(|(_, l)| l.contains('*')) else {
            return self.mask_one(m);
        };
        // After the pivot: the directory is looked up inside the sandbox.
        let Ok(entries) = std::fs::read_dir(if dir.is_empty() { "/" } else { dir }) else {
            return Ok(());
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| glob_match(last, n))
            .collect();
        names.sort();
        for n in names {
            self.mask_one(&format!("{dir}/{n}"))?;
        }
        Ok(())
    }

    fn mask_one(&mut self, m: &str) -> Result<(), StepError> {
        const EMPTY_ATTRS: u64 = sys::MOUNT_ATTR_RDONLY
            | sys::MOUNT_ATTR_NOSUID
            | sys::MOUNT_ATTR_NODEV
            | sys::MOUNT_ATTR_NOEXEC;
        let Some(fd) = open_existing(self.root, m).at(format!("open masked path {m}"))? else {
            return Ok(());
        };
        let dir = is_dir(fd.as_fd());
        let mnt = match (dir, &self.empty) {
            // Not recursive: /proc is mounted on the root's empty directory.
            (true, Some(empty)) => clone_one(empty.as_fd(), EMPTY_ATTRS, 0),
            (true, None) => sys::fs_mount(
                c"tmpfs",
                &[("size", Some("0")), ("mode", Some("0555"))],
                EMPTY_ATTRS,
            ),
            (false, _) => sys::open_tree(
                self.null.as_fd(),
                c"",
                sys::OPEN_TREE_CLONE | libc::AT_EMPTY_PATH as u32,
            ),
        }
        .at(format!("mask {m}"))?;
        sys::move_mount_fd(mnt.as_fd(), fd.as_fd()).at(format!("mask {m}"))?;
        if dir && self.empty.is_none() {
            self.empty = Some(mnt);
        }
        Ok(())
    }

    fn readonly(&mut self, r: &str) -> Result<(), StepError> {
        let Some(fd) = open_existing(self.root, r).at(format!("open read-only path {r}"))? else {
            return Ok(());
        };
        let t = clone_tree(fd.as_fd(), sys::MOUNT_ATTR_RDONLY).at(format!("read-only {r}"))?;
        sys::move_mount_fd(t.as_fd(), fd.as_fd()).at(format!("read-only {r}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_in_mask_paths() {
        assert!(glob_match("ssh_host_*_key", "ssh_host_ed25519_key"));
        assert!(!glob_match("ssh_host_*_key", "ssh_host_ed25519_key.pub"));
        assert!(glob_match("*", "x"));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(!glob_match("a*b*c", "aXbY"));
    }

    #[test]
    fn loopback_name_servers_are_dropped() {
        let r = sandbox_resolv_conf("nameserver 127.0.0.53\noptions edns0\nsearch lan\n");
        assert!(
            !r.contains("127.0.0.53")
                && r.contains("options edns0")
                && r.contains("no name server")
        );
        let r = sandbox_resolv_conf("nameserver 10.0.0.1\nnameserver ::1\n");
        assert!(
            r.contains("nameserver 10.0.0.1")
                && !r.contains("::1")
                && !r.contains("no name server")
        );
    }
}
