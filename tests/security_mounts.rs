//! Attacks on the mounts that build a container's rootfs (issue 19, findings 5 and 8): a
//! hostile container racing a mount target in a shared volume, the default seccomp profile's
//! io_uring calls (and that it allows what docker's allows), and the modes of the device nodes under the caller's umask.

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{out, stdout, Project};

fn fixture(test: &str, compose: &str) -> Option<Project> {
    Project::new(test, &format!("sm-{}", test.replace('_', "-")), compose)
}

/// Swaps the names `a` and `b` (one directory, one link) with `renameat2(RENAME_EXCHANGE)` until
/// `stop`, as a container writing into a shared volume would: each name is always present.
fn swap_until(a: &Path, b: &Path, stop: &AtomicBool) {
    let a = CString::new(a.as_os_str().as_bytes()).expect("path");
    let b = CString::new(b.as_os_str().as_bytes()).expect("path");
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: two valid C strings.
        unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
    }
}

/// CVE-2021-30465's class: a `:ro` bind whose target is a directory of a volume another
/// container shares. While the container starts, the directory keeps being swapped for a link to
/// `/tmp`. The mount must land on what the resolution found (the directory, or the link's
/// target inside the container), read-only; never on a host path, never writable.
#[test]
fn a_raced_mount_target_never_leaves_the_root_nor_turns_writable() {
    let Some(f) = fixture(
        "raced_target",
        "services:\n  victim:\n    image: busybox\n    volumes:\n      - shared:/shared\n      \
         - ./rosrc:/shared/dir:ro\nvolumes:\n  shared: {}\n",
    ) else {
        return;
    };
    let rosrc = f.dir.path().join("rosrc");
    std::fs::create_dir(&rosrc).unwrap();
    std::fs::write(rosrc.join("MARKER"), "ro").unwrap();
    // The first run creates the volume and the directory in it.
    f.ok(&["run", "--rm", "-T", "victim", "true"]);
    let data = f
        .state
        .root()
        .join("volumes")
        .join(format!("{}_shared", f.name))
        .join("_data");
    let (dir, link) = (data.join("dir"), data.join("lnk"));
    assert!(dir.is_dir(), "{}", dir.display());
    std::os::unix::fs::symlink("/tmp", &link).unwrap();

    // The ro bind is on the directory that was found (named `dir` or, swapped, `lnk`), or on
    // the container's /tmp (the link was found), read-only. The swapping goes on while the
    // command runs, so each name is tried: wherever the source's MARKER shows, a write fails.
    let script = "m=$(awk '$5==\"/shared/dir\" || $5==\"/shared/lnk\" || $5==\"/tmp\" \
                  {print $5, $6}' /proc/self/mountinfo); echo \"mounts: [$m]\"; \
                  set -- $m; [ $# -eq 2 ] || exit 3; \
                  case \"$2\" in ro|ro,*) ;; *) exit 4;; esac; \
                  for d in /shared/dir /shared/lnk /tmp; do \
                    if cd $d 2>/dev/null && [ -e MARKER ] && touch probe 2>/dev/null; then \
                      echo \"wrote into $d\"; exit 5; fi; \
                  done; exit 0";
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (dir, link, stop) = (dir.clone(), link.clone(), stop.clone());
        std::thread::spawn(move || swap_until(&dir, &link, &stop))
    };
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut runs = 0;
    while runs < 200 && started.elapsed() < Duration::from_secs(60) && failures.len() < 3 {
        runs += 1;
        let o = f.rc(&["run", "--rm", "-T", "victim", "sh", "-c", script]);
        if !o.status.success() {
            failures.push(format!("run {runs}: {:?}\n{}", o.status.code(), out(&o)));
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(
        !rosrc.join("probe").exists(),
        "a container wrote into the read-only bind's host directory"
    );
    assert!(
        !Path::new("/tmp/probe").exists(),
        "a container wrote into the host's /tmp"
    );
    assert!(
        failures.is_empty(),
        "{} of {runs} starts went wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Docker's current default profile denies io_uring (its requests are not seen by seccomp) and
/// AF_ALG sockets; so must a container under rcompose's default profile.
#[cfg(target_arch = "x86_64")]
#[test]
fn the_default_seccomp_profile_denies_io_uring_and_af_alg() {
    let Some(f) = fixture("seccomp_uring", "services:\n  py:\n    image: python:3\n") else {
        return;
    };
    // io_uring_setup(1, &params) is syscall 425 on x86_64; AF_ALG is family 38.
    let script = "import ctypes, socket\n\
                  libc = ctypes.CDLL(None, use_errno=True)\n\
                  params = ctypes.create_string_buffer(120)\n\
                  for nr in (425, 426, 427):\n    \
                      r = libc.syscall(nr, 1, params if nr == 425 else 0, 0, 0, 0)\n    \
                      print('uring', nr, r, ctypes.get_errno())\n\
                  try:\n    \
                      socket.socket(38, socket.SOCK_SEQPACKET, 0)\n    \
                      print('alg ok')\n\
                  except OSError as e:\n    \
                      print('alg', e.errno)\n";
    let o = f.rc(&["run", "--rm", "-T", "py", "python3", "-c", script]);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(
        stdout(&o),
        "uring 425 -1 1\nuring 426 -1 1\nuring 427 -1 1\nalg 1\n",
        "{}",
        out(&o)
    );
}

/// What docker's default profile allows must not get EPERM here. glibc >= 2.39 (Debian trixie
/// images) implements `fchmodat(..., AT_SYMLINK_NOFOLLOW)` with fchmodat2 and falls back only on
/// ENOSYS, so a filter's EPERM breaks `chmod -h`-like calls there. The test bed's python:3 is
/// bookworm (glibc 2.36, which never calls it), so the script makes the call itself.
#[cfg(target_arch = "x86_64")]
#[test]
fn the_default_seccomp_profile_allows_fchmodat2_as_docker() {
    let Some(f) = fixture(
        "seccomp_fchmodat2",
        "services:\n  py:\n    image: python:3\n",
    ) else {
        return;
    };
    // fchmodat2(AT_FDCWD, "/tmp/f", 0600, AT_SYMLINK_NOFOLLOW) is syscall 452.
    let script = "import ctypes, os\n\
                  libc = ctypes.CDLL(None, use_errno=True)\n\
                  open('/tmp/f', 'w').close()\n\
                  r = libc.syscall(452, -100, b'/tmp/f', 0o600, 0x100)\n\
                  print(r, ctypes.get_errno(), oct(os.stat('/tmp/f').st_mode & 0o777))\n";
    let o = f.rc(&["run", "--rm", "-T", "py", "python3", "-c", script]);
    assert!(o.status.success(), "{}", out(&o));
    let got = stdout(&o);
    let fields: Vec<&str> = got.split_whitespace().collect();
    match fields.as_slice() {
        // A kernel with fchmodat2 (>= 6.6, as here) does it.
        ["0", _, mode] => assert_eq!(*mode, "0o600", "{}", out(&o)),
        // An older one says ENOSYS, which glibc falls back on; only EPERM is the filter's.
        ["-1", errno, _] => assert_ne!(*errno, "1", "fchmodat2 got EPERM: {}", out(&o)),
        _ => panic!("unexpected output: {}", out(&o)),
    }
}

/// Device nodes, the managed files, the rootfs' `/` and what the helper creates have their
/// modes exactly, and the command starts with docker's umask 0022, when rcompose itself runs
/// under umask 077.
#[test]
fn modes_do_not_depend_on_the_callers_umask() {
    let Some(f) = fixture(
        "umask",
        "services:\n  bb:\n    image: busybox\n    working_dir: /made/here\n    user: nobody\n",
    ) else {
        return;
    };
    let script = "stat -c '%a %n' /dev/null /dev/zero /dev/full /dev/random /dev/urandom \
                  /dev/tty /etc/hosts /etc/hostname /etc/resolv.conf / /made /made/here; \
                  umask; cat /etc/hosts >/dev/null && echo hosts readable";
    let mut cmd = f.cmd(&["run", "--rm", "-T", "bb", "sh", "-c", script]);
    // SAFETY: umask in the child before exec; async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::umask(0o077);
            Ok(())
        });
    }
    let o = cmd.output().expect("run rcompose");
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(
        stdout(&o),
        "666 /dev/null\n666 /dev/zero\n666 /dev/full\n666 /dev/random\n666 /dev/urandom\n\
         666 /dev/tty\n644 /etc/hosts\n644 /etc/hostname\n644 /etc/resolv.conf\n755 /\n\
         755 /made\n755 /made/here\n0022\nhosts readable\n",
        "{}",
        out(&o)
    );
}
