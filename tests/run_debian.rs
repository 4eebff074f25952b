//! A real Debian image (mmdebstrap --variant=minbase bookworm, built once
//! and cached by scripts/debian-image.sh) run as root: dpkg, apt-get, id,
//! os-release, ps (PID 1 is the container's), mount (no host mounts),
//! hostname, users from the image's own passwd, a package database that
//! dpkg can write to.
//! `UNIONFS_RUN_ORACLE=podman` runs it against podman (runc).

mod ctrsupport;
mod fixtures;
mod runsupport;

use runsupport::*;
use std::process::Command;
use std::time::Duration;

const DEB: &str = "localhost/rt/debian:bookworm";

#[test]
fn a_real_debian_image() {
    let e = RunEnv::new();
    let oci = e.path("debian-oci");
    let o = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/debian-image.sh")).arg(&oci).output().unwrap();
    assert!(o.status.success(), "scripts/debian-image.sh: {}", String::from_utf8_lossy(&o.stderr));
    e.load(&oci, DEB);
    let script = r#"
echo "== os"; . /etc/os-release; echo "$ID $VERSION_CODENAME"
echo "== dpkg"; dpkg -l dpkg apt procps | awk '/^ii/ {print $1, $2}'
echo "== apt"; apt-get --version | head -1 | cut -d' ' -f1
echo "== id"; id
echo "== ps"; ps -e -o pid=,comm= | sed 's/^ *//'
echo "== mount"; mount | cut -d' ' -f3
echo "== hostname"; hostname
echo "== nobody"; id -u nobody; id -u _apt
"#;
    let out = e.ok(&["run", "--name", "deb", DEB, "bash", "-c", script]);
    let id = e.inspect("deb")["Id"].as_str().unwrap().to_string();
    let section = |name: &str| -> Vec<String> {
        out.split(&format!("== {name}\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no {name} section: {out}"))
            .split("\n== ")
            .next()
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(section("os"), ["debian bookworm"], "{out}");
    assert_eq!(section("dpkg"), ["ii apt", "ii dpkg", "ii procps"], "{out}");
    assert_eq!(section("apt"), ["apt"], "{out}");
    assert!(section("id")[0].starts_with("uid=0(root) gid=0(root)"), "{out}");
    // ps: the container's processes only; PID 1 is one of them.
    let ps = section("ps");
    assert!(ps.len() <= 6, "host processes visible: {ps:?}");
    assert!(ps.iter().any(|l| l.starts_with("1 ")), "no PID 1: {ps:?}");
    assert!(ps.iter().any(|l| l.ends_with(" ps")), "{ps:?}");
    assert!(!ps.iter().any(|l| l.contains("cargo") || l.contains("systemd") || l.contains("unionfs")), "{ps:?}");
    // mount: the container's own mounts, none of the host's.
    let host: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|p| !["/", "/proc", "/sys", "/dev"].iter().any(|s| p == s || p.starts_with(&format!("{s}/"))))
        .collect();
    for m in section("mount") {
        assert!(!host.contains(&m) || m.starts_with("/etc/"), "host mount {m} visible: {out}");
        assert!(!m.contains("unionctl-run."), "{out}");
    }
    assert_eq!(section("hostname"), [&id[..12]], "{out}");
    assert_eq!(section("nobody"), ["65534", "42"], "{out}");
    e.ok(&["rm", "deb"]);
    // dpkg can change the package database in the writable layer; a
    // second container of the image does not see it.
    let o = e.run_io(
        &[
            "run",
            "--name",
            "deb2",
            DEB,
            "bash",
            "-c",
            "dpkg --remove procps >/dev/null 2>&1; dpkg -l procps | grep -c ^ii || true",
        ],
        None,
        Duration::from_secs(120),
    );
    assert_eq!(o.stdout.trim(), "0", "{}", o.stderr);
    assert_eq!(e.ok(&["run", "--rm", DEB, "bash", "-c", "dpkg -l procps | grep -c ^ii"]).trim(), "1");
    assert_eq!(e.code(&["start", "-a", "deb2"], 0).stdout.trim(), "0", "the removal did not stay in deb2's layer");
    e.ok(&["rm", "deb2"]);
    // A user from the image's passwd (not the host's): _apt.
    assert_eq!(e.ok(&["run", "--rm", "-u", "_apt", DEB, "id", "-un"]), "_apt\n");
    e.assert_clean();
}
