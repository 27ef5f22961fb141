//! kakoi as an OCI runtime: runc's lifecycle (`spec`, `create`, `state`, `start`,
//! `kill`, `delete`) driven through `kakoi-runtime`, on a bundle whose root is the host's
//! `/`, read-only. The OCI runtime-tools suite itself runs in `scripts/oci-suite.sh`.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::launch::tempdir;
use crate::need_root;
use crate::util::{kakoi, stderr};

/// `kakoi oci ARGS` with state under `root`.
fn oci(root: &Path, args: &[&str]) -> Output {
    kakoi()
        .arg("oci")
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

fn state(root: &Path, id: &str) -> Value {
    let o = oci(root, &["state", id]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A bundle from `kakoi oci spec`, with the host's root and `args`.
fn bundle(dir: &Path, args: &[&str]) {
    let o = kakoi()
        .args(["oci", "spec", "--bundle"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let path = dir.join("config.json");
    let mut c: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    c["root"] = serde_json::json!({"path": "/", "readonly": true});
    c["process"]["args"] = serde_json::json!(args);
    c["process"]["terminal"] = Value::Bool(false);
    std::fs::write(&path, c.to_string()).unwrap();
}

fn wait_status(root: &Path, id: &str, want: &str) {
    for _ in 0..500 {
        if state(root, id)["status"] == want {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("`{id}` never became {want}: {}", state(root, id));
}

#[test]
fn create_start_state_kill_delete() {
    need_root!();
    let d = tempdir();
    let root = d.path().join("state");
    let b = d.path().join("bundle");
    std::fs::create_dir(&b).unwrap();
    let out = d.path().join("out");
    bundle(
        &b,
        &[
            "/bin/sh",
            "-c",
            "echo started as $(id -u) in $(hostname); exec sleep 100",
        ],
    );
    let id = format!("kakoi-test-{}", std::process::id());
    // `create`: the container exists and waits; its command has not run.
    let o = Command::new(env!("CARGO_BIN_EXE_kakoi"))
        .args(["oci", "--root"])
        .arg(&root)
        .args(["create", "--bundle"])
        .arg(&b)
        .args(["--pid-file"])
        .arg(d.path().join("pid"))
        .arg(&id)
        // Files, as engines give runtimes: the container keeps them open (a pipe would
        // not end while it runs).
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(d.path().join("err")).unwrap())
        .status()
        .unwrap();
    assert!(
        o.success(),
        "{}",
        std::fs::read_to_string(d.path().join("err")).unwrap()
    );
    let s = state(&root, &id);
    assert_eq!(s["status"], "created", "{s}");
    let pid = s["pid"].as_i64().unwrap();
    assert_eq!(
        std::fs::read_to_string(d.path().join("pid")).unwrap(),
        pid.to_string()
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "",
        "nothing ran before start"
    );
    // A second container with the same id is refused.
    let again = oci(&root, &["create", "--bundle", b.to_str().unwrap(), &id]);
    assert!(!again.status.success() && stderr(&again).contains("already exists"));
    // `start`: the command runs, in the container's namespaces, as root of it.
    let o = oci(&root, &["start", &id]);
    assert!(o.status.success(), "{}", stderr(&o));
    wait_status(&root, &id, "running");
    for _ in 0..500 {
        if !std::fs::read_to_string(&out).unwrap().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("config.json")).unwrap()).unwrap();
    let hostname = spec["hostname"].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().trim(),
        format!("started as 0 in {hostname}")
    );
    let mine = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    assert_ne!(mine, theirs, "a pid namespace of its own");
    // A running container is not deleted without --force.
    let o = oci(&root, &["delete", &id]);
    assert!(!o.status.success() && stderr(&o).contains("not stopped"));
    let listed = oci(&root, &["list", "-q"]);
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), id);
    // `kill`: TERM stops it (sleep as pid 1 has no handler, so KILL).
    let o = oci(&root, &["kill", &id, "KILL"]);
    assert!(o.status.success(), "{}", stderr(&o));
    wait_status(&root, &id, "stopped");
    let o = oci(&root, &["delete", &id]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = oci(&root, &["state", &id]);
    assert!(!o.status.success() && stderr(&o).contains("does not exist"));
    assert!(!root.join(&id).exists(), "nothing left under --root");
}

/// A config kakoi cannot run is refused at `create`, naming the field, with nothing
/// left behind.
#[test]
fn create_refuses_what_it_cannot_do() {
    need_root!();
    let d = tempdir();
    let root = d.path().join("state");
    let b = d.path().join("bundle");
    std::fs::create_dir(&b).unwrap();
    bundle(&b, &["/bin/true"]);
    let path = b.join("config.json");
    let mut c: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // A host-wide kernel parameter: never the container's to set.
    c["linux"]["sysctl"] = serde_json::json!({"kernel.panic": "1"});
    std::fs::write(&path, c.to_string()).unwrap();
    let o = oci(
        &root,
        &["create", "--bundle", b.to_str().unwrap(), "refused"],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("linux.sysctl"), "{}", stderr(&o));
    assert!(!root.join("refused").exists());
}

/// Invoked as `kakoi-runtime`, the binary takes runc's command line.
#[test]
fn the_runtime_name_takes_runcs_command_line() {
    let d = tempdir();
    let link = d.path().join("kakoi-runtime");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kakoi"), &link).unwrap();
    let o = Command::new(&link).arg("features").output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&Value::from("pid")));
    let o = Command::new(&link)
        .args(["spec", "--bundle"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let spec: oci_spec::runtime::Spec =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("config.json")).unwrap())
            .unwrap();
    assert!(spec.process().is_some());
    // runc refuses to overwrite a config.json; so does kakoi.
    let o = Command::new(&link)
        .args(["spec", "--bundle"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!o.status.success() && stderr(&o).contains("already exists"));
}
