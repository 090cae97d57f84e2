use super::*;

const MB: i64 = 1024 * 1024;
const V1_UNLIMITED: &str = "9223372036854771712";

fn read(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

fn touch(path: &Path, content: &str) {
    fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

// ---- a fake v1 root: one directory per controller, interface files the kernel would make ----

const V1_FILES: [(&str, &str, &str); 13] = [
    ("memory", "memory.limit_in_bytes", V1_UNLIMITED),
    ("memory", "memory.memsw.limit_in_bytes", V1_UNLIMITED),
    ("memory", "memory.soft_limit_in_bytes", V1_UNLIMITED),
    (
        "memory",
        "memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
    ),
    ("cpu", "cpu.cfs_period_us", "100000"),
    ("cpu", "cpu.cfs_quota_us", "-1"),
    ("cpu", "cpu.shares", "1024"),
    ("cpuset", "cpuset.cpus", ""),
    ("cpuset", "cpuset.mems", ""),
    ("cpuset", "cpuset.effective_cpus", ""),
    ("pids", "pids.max", "max"),
    ("freezer", "freezer.state", "THAWED"),
    ("freezer", "cgroup.procs", ""),
];

/// Builds a v1 tree with `path` already made (mkdir on a real cgroupfs creates the files).
fn fake_v1(path: &str, controllers: &[&str]) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    for controller in controllers {
        let base = root.path().join(controller);
        fs::create_dir_all(base.join(path)).expect("mkdir");
        let mut dir = base.clone();
        let levels = std::iter::once(PathBuf::new()).chain(Path::new(path).components().map(|c| {
            dir.push(c);
            dir.clone()
        }));
        for level in levels.collect::<Vec<_>>() {
            let level = if level.as_os_str().is_empty() {
                base.clone()
            } else {
                level
            };
            for (owner, file, default) in V1_FILES {
                if controller.split(',').any(|c| c == owner) {
                    touch(&level.join(file), default);
                }
            }
            touch(&level.join("cgroup.procs"), "");
        }
        if *controller == "cpuset" {
            touch(&base.join("cpuset.cpus"), "0-3\n");
            touch(&base.join("cpuset.mems"), "0\n");
        }
    }
    root
}

const ALL_V1: [&str; 6] = ["freezer", "pids", "memory", "cpu", "cpuacct", "cpuset"];

fn limits() -> Resources {
    Resources {
        memory: Some(64 * MB),
        memory_reservation: Some(32 * MB),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        cpu_shares: Some(512),
        cpuset_cpus: Some("1-2".into()),
        pids_limit: Some(100),
        ..Resources::default()
    }
}

#[test]
fn v1_create_writes_every_controller() {
    let path = "rcompose/proj/web-1";
    let root = fake_v1(path, &ALL_V1);
    let h = Hierarchy::V1 {
        root: root.path().to_path_buf(),
    };
    let cg = Cgroup::create(&h, path, &limits()).expect("create");
    let dir = |c: &str| root.path().join(c).join(path);
    assert_eq!(
        read(&dir("memory").join("memory.limit_in_bytes")),
        "67108864"
    );
    // docker's default: as much swap as memory.
    assert_eq!(
        read(&dir("memory").join("memory.memsw.limit_in_bytes")),
        "134217728"
    );
    assert_eq!(
        read(&dir("memory").join("memory.soft_limit_in_bytes")),
        "33554432"
    );
    assert_eq!(read(&dir("cpu").join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read(&dir("cpu").join("cpu.cfs_period_us")), "100000");
    assert_eq!(read(&dir("cpu").join("cpu.shares")), "512");
    assert_eq!(read(&dir("pids").join("pids.max")), "100");
    assert_eq!(read(&dir("cpuset").join("cpuset.cpus")), "1-2");
    // Every level inherits the parent's cpuset so processes can join.
    let cpuset = root.path().join("cpuset");
    assert_eq!(read(&cpuset.join("rcompose/cpuset.cpus")), "0-3");
    assert_eq!(read(&cpuset.join("rcompose/proj/cpuset.mems")), "0");
    assert_eq!(read(&dir("cpuset").join("cpuset.mems")), "0");
    assert_eq!(cg.dirs().len(), 6);
    assert_eq!(cg.procs_paths()[0], dir("freezer").join("cgroup.procs"));
    assert!(cg.dir_fd().expect("dir fd").is_none());
    cg.add_pid(4242).expect("add pid");
    for controller in ALL_V1 {
        assert_eq!(
            read(&dir(controller).join("cgroup.procs")),
            "4242",
            "{controller}"
        );
    }
}

#[test]
fn v1_explicit_swap_and_unlimited_values() {
    let path = "p/c";
    let root = fake_v1(path, &ALL_V1);
    let h = Hierarchy::V1 {
        root: root.path().to_path_buf(),
    };
    let r = Resources {
        memory: Some(64 * MB),
        memory_swap: Some(100 * MB),
        ..Resources::default()
    };
    let cg = Cgroup::create(&h, path, &r).expect("create");
    let memory = root.path().join("memory").join(path);
    assert_eq!(
        read(&memory.join("memory.memsw.limit_in_bytes")),
        "104857600"
    );
    let unlimited = Resources {
        memory: Some(0),
        memory_swap: Some(-1),
        cpu_quota: Some(-1),
        pids_limit: Some(0),
        ..Resources::default()
    };
    cg.apply(&unlimited).expect("apply");
    assert_eq!(read(&memory.join("memory.limit_in_bytes")), "-1");
    assert_eq!(read(&memory.join("memory.memsw.limit_in_bytes")), "-1");
    let cpu = root.path().join("cpu").join(path);
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "-1");
    assert_eq!(
        read(&root.path().join("pids").join(path).join("pids.max")),
        "max"
    );
}

#[test]
fn v1_without_swap_accounting() {
    let path = "p/c";
    let root = fake_v1(path, &ALL_V1);
    let memory = root.path().join("memory").join(path);
    fs::remove_file(memory.join("memory.memsw.limit_in_bytes")).expect("rm");
    let h = Hierarchy::V1 {
        root: root.path().to_path_buf(),
    };
    // The default swap allowance is skipped quietly...
    let cg = Cgroup::create(&h, path, &limits()).expect("create");
    assert_eq!(read(&memory.join("memory.limit_in_bytes")), "67108864");
    assert!(!memory.join("memory.memsw.limit_in_bytes").exists());
    // ...an explicit swap limit is refused, saying why.
    let swap = Resources {
        memory: Some(64 * MB),
        memory_swap: Some(128 * MB),
        ..Resources::default()
    };
    let err = cg.apply(&swap).expect_err("no swap accounting");
    assert!(matches!(err, CgroupError::SwapUnsupported { .. }), "{err}");
    assert!(err.to_string().contains("swapaccount=1"), "{err}");
}

#[test]
fn v1_missing_controllers() {
    let path = "p/c";
    let root = fake_v1(path, &["freezer", "memory", "cpu"]);
    let h = Hierarchy::V1 {
        root: root.path().to_path_buf(),
    };
    let err = Cgroup::create(&h, path, &limits()).expect_err("no pids");
    assert!(
        matches!(
            err,
            CgroupError::ControllerMissing {
                controller: "pids",
                needed: "pids_limit",
                ..
            }
        ),
        "{err}"
    );
    // Unused controllers may be missing.
    let cg = Cgroup::create(&h, path, &Resources::default()).expect("create");
    assert_eq!(cg.dirs().len(), 3);
    let pids_root = root.path().join("pids");
    assert!(!pids_root.exists());
}

#[test]
fn v1_comounted_controllers_share_a_directory() {
    let path = "p/c";
    let root = fake_v1(path, &["freezer", "memory", "cpu,cpuacct"]);
    let h = Hierarchy::V1 {
        root: root.path().to_path_buf(),
    };
    let r = Resources {
        cpu_shares: Some(2048),
        ..Resources::default()
    };
    let cg = Cgroup::create(&h, path, &r).expect("create");
    let cpu = root.path().join("cpu,cpuacct").join(path);
    assert_eq!(read(&cpu.join("cpu.shares")), "2048");
    assert_eq!(cg.dirs().len(), 3, "{:?}", cg.dirs());
}

#[test]
fn v1_pids_oom_and_open() {
    let path = "p/c";
    let root = fake_v1(path, &ALL_V1);
    let h = Hierarchy::V1 {
        root: root.path().to_path_buf(),
    };
    let cg = Cgroup::create(&h, path, &Resources::default()).expect("create");
    let freezer = root.path().join("freezer").join(path);
    touch(&freezer.join("cgroup.procs"), "34\n12\n");
    fs::create_dir(freezer.join("nested")).expect("mkdir");
    touch(&freezer.join("nested/cgroup.procs"), "56\n");
    assert_eq!(cg.pids().expect("pids"), vec![12, 34, 56]);
    assert!(!cg.oom_killed().expect("oom"));
    let memory = root.path().join("memory").join(path);
    touch(
        &memory.join("memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    );
    let opened = Cgroup::open(&h, path).expect("open");
    assert!(opened.oom_killed().expect("oom"));
    assert!(Cgroup::open(&h, "p/other").is_err());
}

// ---- a fake v2 root ----

const V2_LEAF: [(&str, &str); 11] = [
    ("memory.max", "max"),
    ("memory.swap.max", "max"),
    ("memory.low", "0"),
    ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"),
    ("cpu.max", "max 100000"),
    ("cpu.weight", "100"),
    ("cpuset.cpus", ""),
    ("cpuset.mems", ""),
    ("pids.max", "max"),
    ("cgroup.procs", ""),
    ("cgroup.subtree_control", ""),
];

fn fake_v2(path: &str, controllers: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    let mut dir = root.path().to_path_buf();
    touch(&dir.join("cgroup.controllers"), controllers);
    touch(&dir.join("cgroup.subtree_control"), "");
    for component in Path::new(path).components() {
        dir.push(component);
        fs::create_dir(&dir).expect("mkdir");
        for (file, default) in V2_LEAF {
            touch(&dir.join(file), default);
        }
        touch(&dir.join("cgroup.controllers"), controllers);
    }
    root
}

#[test]
fn v2_create_enables_controllers_and_translates() {
    let path = "rcompose/proj/web-1";
    let root = fake_v2(path, "cpuset cpu io memory hugetlb pids rdma misc");
    let h = Hierarchy::V2 {
        root: root.path().to_path_buf(),
    };
    let cg = Cgroup::create(&h, path, &limits()).expect("create");
    for ancestor in ["", "rcompose", "rcompose/proj"] {
        let control = root.path().join(ancestor).join("cgroup.subtree_control");
        assert_eq!(
            read(&control),
            "+cpu +cpuset +io +memory +pids",
            "{ancestor:?}"
        );
    }
    let dir = root.path().join(path);
    assert_eq!(
        read(&dir.join("cgroup.subtree_control")),
        "",
        "leaf untouched"
    );
    assert_eq!(read(&dir.join("memory.max")), "67108864");
    // swap = total (docker's default 2 x memory) - memory.
    assert_eq!(read(&dir.join("memory.swap.max")), "67108864");
    assert_eq!(read(&dir.join("memory.low")), "33554432");
    assert_eq!(read(&dir.join("cpu.max")), "50000 100000");
    assert_eq!(read(&dir.join("cpu.weight")), "20");
    assert_eq!(read(&dir.join("cpuset.cpus")), "1-2");
    assert_eq!(read(&dir.join("cpuset.mems")), "", "untouched unless asked");
    assert_eq!(read(&dir.join("pids.max")), "100");
    assert_eq!(cg.procs_paths(), vec![dir.join("cgroup.procs")]);
    assert!(cg.dir_fd().expect("dir fd").is_some());
}

#[test]
fn v2_swap_cpu_max_and_memory_translation() {
    let path = "p/c";
    let root = fake_v2(path, "cpu memory pids");
    let h = Hierarchy::V2 {
        root: root.path().to_path_buf(),
    };
    let dir = root.path().join(path);
    let cg = Cgroup::create(
        &h,
        path,
        &Resources {
            memory: Some(64 * MB),
            memory_swap: Some(100 * MB),
            cpu_quota: Some(150_000),
            ..Resources::default()
        },
    )
    .expect("create");
    assert_eq!(read(&dir.join("memory.swap.max")), (36 * MB).to_string());
    // A quota alone uses the default period.
    assert_eq!(read(&dir.join("cpu.max")), "150000 100000");
    // A period alone keeps the quota.
    let period = Resources {
        cpu_period: Some(200_000),
        ..Resources::default()
    };
    cg.apply(&period).expect("period");
    assert_eq!(read(&dir.join("cpu.max")), "150000 200000");
    let unlimited = Resources {
        memory: Some(-1),
        memory_swap: Some(-1),
        memory_reservation: Some(0),
        cpu_quota: Some(0),
        pids_limit: Some(-1),
        ..Resources::default()
    };
    cg.apply(&unlimited).expect("unlimited");
    assert_eq!(read(&dir.join("memory.max")), "max");
    assert_eq!(read(&dir.join("memory.swap.max")), "max");
    assert_eq!(read(&dir.join("memory.low")), "0");
    assert_eq!(read(&dir.join("cpu.max")), "max 200000");
    assert_eq!(read(&dir.join("pids.max")), "max");
    // Equal memory and total: no swap.
    let no_swap = Resources {
        memory: Some(64 * MB),
        memory_swap: Some(64 * MB),
        ..Resources::default()
    };
    cg.apply(&no_swap).expect("no swap");
    assert_eq!(read(&dir.join("memory.swap.max")), "0");
    // The cpuset controller was not offered: not enabled.
    assert_eq!(
        read(&root.path().join("cgroup.subtree_control")),
        "+cpu +memory +pids"
    );
}

#[test]
fn v2_missing_controllers_and_swap() {
    let path = "p/c";
    let root = fake_v2(path, "cpu pids");
    let h = Hierarchy::V2 {
        root: root.path().to_path_buf(),
    };
    let err = Cgroup::create(&h, path, &limits()).expect_err("no memory controller");
    assert!(
        matches!(
            err,
            CgroupError::ControllerMissing {
                controller: "memory",
                ..
            }
        ),
        "{err}"
    );
    let root = fake_v2(path, "cpu memory pids");
    fs::remove_file(root.path().join(path).join("memory.swap.max")).expect("rm");
    let h = Hierarchy::V2 {
        root: root.path().to_path_buf(),
    };
    let swap = Resources {
        memory: Some(64 * MB),
        memory_swap: Some(128 * MB),
        ..Resources::default()
    };
    let err = Cgroup::create(&h, path, &swap).expect_err("no swap accounting");
    assert!(matches!(err, CgroupError::SwapUnsupported { .. }), "{err}");
}

#[test]
fn v2_enabled_controllers_are_not_rewritten() {
    let path = "p/c";
    let root = fake_v2(path, "cpu memory pids");
    touch(
        &root.path().join("cgroup.subtree_control"),
        "cpu memory pids\n",
    );
    let h = Hierarchy::V2 {
        root: root.path().to_path_buf(),
    };
    let cg = Cgroup::create(&h, path, &Resources::default()).expect("create");
    assert_eq!(
        read(&root.path().join("cgroup.subtree_control")),
        "cpu memory pids"
    );
    touch(&cg.dirs()[0].join("memory.events"), "oom 1\noom_kill 1\n");
    assert!(cg.oom_killed().expect("oom"));
}

// ---- validation, paths, detection ----

#[test]
fn validation_uses_dockers_messages() {
    let cases = [
        (
            Resources {
                memory: Some(4 * MB),
                ..Resources::default()
            },
            "Minimum memory limit allowed is 6MB",
        ),
        (
            Resources {
                memory: Some(64 * MB),
                memory_swap: Some(32 * MB),
                ..Resources::default()
            },
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ),
        (
            Resources {
                memory_swap: Some(32 * MB),
                ..Resources::default()
            },
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ),
        (
            Resources {
                memory: Some(64 * MB),
                memory_reservation: Some(128 * MB),
                ..Resources::default()
            },
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ),
        (
            Resources {
                memory_reservation: Some(MB),
                ..Resources::default()
            },
            "Minimum memory reservation allowed is 6MB",
        ),
        (
            Resources {
                cpu_period: Some(500),
                ..Resources::default()
            },
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ),
        (
            Resources {
                cpu_quota: Some(999),
                ..Resources::default()
            },
            "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        ),
        (
            Resources {
                cpuset_cpus: Some("0-a".into()),
                ..Resources::default()
            },
            "Invalid value 0-a for cpuset cpus",
        ),
    ];
    for (resources, message) in cases {
        let err = resources.validate().expect_err(message);
        assert_eq!(err.to_string(), message);
    }
    assert!(limits().validate().is_ok());
    let edge = Resources {
        memory: Some(MIN_MEMORY),
        memory_swap: Some(MIN_MEMORY),
        memory_reservation: Some(MIN_MEMORY),
        ..Resources::default()
    };
    assert!(edge.validate().is_ok());
    // Creation validates before touching anything.
    let h = Hierarchy::V2 {
        root: PathBuf::from("/nonexistent"),
    };
    let tiny = Resources {
        memory: Some(MB),
        ..Resources::default()
    };
    assert!(matches!(
        Cgroup::create(&h, "a", &tiny),
        Err(CgroupError::Invalid(_))
    ));
}

#[test]
fn paths_stay_inside_the_hierarchy() {
    assert_eq!(
        relative_path("/rcompose/p/c").ok(),
        Some(PathBuf::from("rcompose/p/c"))
    );
    assert_eq!(
        relative_path("rcompose/./c").ok(),
        Some(PathBuf::from("rcompose/c"))
    );
    for bad in ["", "/", ".", "../x", "a/../../b"] {
        assert!(
            matches!(relative_path(bad), Err(CgroupError::InvalidPath { .. })),
            "{bad:?}"
        );
    }
}

const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

#[test]
fn detection_from_mountinfo() {
    assert_eq!(
        Hierarchy::from_mountinfo(HYBRID),
        Some(Hierarchy::V1 {
            root: "/sys/fs/cgroup".into()
        })
    );
    let pure = "29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
    assert_eq!(
        Hierarchy::from_mountinfo(pure),
        Some(Hierarchy::V2 {
            root: "/sys/fs/cgroup".into()
        })
    );
    let elsewhere = "29 23 0:26 / /mnt/cg\\0402 rw - cgroup2 none rw\n";
    assert_eq!(
        Hierarchy::from_mountinfo(elsewhere),
        Some(Hierarchy::V2 {
            root: "/mnt/cg 2".into()
        })
    );
    // Only the systemd name hierarchy: no controllers for containers.
    let named = "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n";
    assert_eq!(Hierarchy::from_mountinfo(named), None);
    assert_eq!(Hierarchy::from_mountinfo("garbage\n\n"), None);
}

#[test]
fn thread_cgroup_finds_a_controller_line() {
    let text = "9:name=systemd:/\n4:memory:/a/b\n1:cpu,cpuacct:/c:d\n0::/unified\n";
    assert_eq!(thread_cgroup(text, "memory"), Some("/a/b"));
    assert_eq!(thread_cgroup(text, "cpuacct"), Some("/c:d"));
    assert_eq!(thread_cgroup(text, "pids"), None);
    assert_eq!(thread_cgroup("garbage", "memory"), None);
}

#[test]
fn thread_join_has_one_hop_per_mount() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    for c in ["freezer", "pids", "memory", "cpuset", "cpu,cpuacct"] {
        fs::create_dir_all(root.join(c)).expect("mkdir");
    }
    std::os::unix::fs::symlink("cpu,cpuacct", root.join("cpu")).expect("link");
    std::os::unix::fs::symlink("cpu,cpuacct", root.join("cpuacct")).expect("link");
    let cg = Cgroup {
        hierarchy: Hierarchy::V1 { root: root.into() },
        path: "rcompose/p/c".into(),
        layout: Layout::V1(vec![
            ("freezer", root.join("freezer/rcompose/p/c")),
            ("cpu", root.join("cpu,cpuacct/rcompose/p/c")),
            ("cpuacct", root.join("cpu,cpuacct/rcompose/p/c")),
        ]),
    };
    let join = cg.thread_join().expect("v1");
    let hops: Vec<_> = join
        .hops
        .iter()
        .map(|(c, base, tasks)| (*c, base.clone(), tasks.clone()))
        .collect();
    assert_eq!(
        hops,
        vec![
            (
                "freezer",
                root.join("freezer"),
                root.join("freezer/rcompose/p/c/tasks")
            ),
            (
                "cpu",
                root.join("cpu,cpuacct"),
                root.join("cpu,cpuacct/rcompose/p/c/tasks")
            ),
        ]
    );
}

// ---- the real hierarchy of this machine (root only) ----

mod real {
    use super::*;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Child, Command, Stdio};

    /// The hierarchy to test on, or `None` (skipped) when not root.
    fn hierarchy() -> Option<Hierarchy> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root");
            return None;
        }
        Hierarchy::detect().ok()
    }

    /// The v2 hierarchy: the machine's own when pure v2, else the controller-less cgroup2 of a
    /// hybrid system, which still has procs, freeze, kill and events.
    fn v2_hierarchy() -> Option<Hierarchy> {
        match hierarchy()? {
            h @ Hierarchy::V2 { .. } => Some(h),
            Hierarchy::V1 { root } => {
                let unified = root.join("unified");
                unified
                    .join("cgroup.procs")
                    .exists()
                    .then_some(Hierarchy::V2 { root: unified })
            }
        }
    }

    /// Owns a test's processes and cgroup; kills and removes everything on every exit path.
    struct Guard {
        hierarchy: Hierarchy,
        top: String,
        cgroup: Option<Cgroup>,
        children: Vec<Child>,
    }

    impl Guard {
        fn new(hierarchy: Hierarchy, name: &str) -> Guard {
            Guard {
                hierarchy,
                top: format!("rcompose-test-{}-{name}", std::process::id()),
                cgroup: None,
                children: Vec::new(),
            }
        }

        fn path(&self) -> String {
            format!("{}/proj/c1", self.top)
        }

        fn cgroup(&self) -> &Cgroup {
            self.cgroup.as_ref().expect("cgroup created")
        }

        /// Starts `argv` inside the cgroup, joined between fork and exec.
        fn spawn(&mut self, argv: &[&str]) -> u32 {
            let procs = self.cgroup().open_procs().expect("open procs");
            let mut command = Command::new(argv[0]);
            command
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null());
            // SAFETY: join_self only calls write(2).
            unsafe { command.pre_exec(move || procs.join_self()) };
            let child = command.spawn().expect("spawn");
            let pid = child.id();
            self.children.push(child);
            pid
        }

        /// Every directory that would be left behind under the test's top directory.
        fn leftovers(&self) -> Vec<PathBuf> {
            let bases: Vec<PathBuf> = match &self.hierarchy {
                Hierarchy::V2 { root } => vec![root.clone()],
                Hierarchy::V1 { root } => v1::CONTROLLERS.iter().map(|c| root.join(c)).collect(),
            };
            bases
                .into_iter()
                .map(|base| base.join(&self.top))
                .filter(|dir| dir.exists())
                .collect()
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            if let Some(cgroup) = self.cgroup.take() {
                let _ = cgroup.thaw();
                let _ = cgroup.kill_all();
                let _ = cgroup.remove();
            }
            for child in &mut self.children {
                let _ = child.kill();
                let _ = child.wait();
            }
            for dir in self.leftovers() {
                let _ = remove_tree(&dir);
            }
        }
    }

    fn state(pid: u32) -> String {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("State:"))
            .unwrap_or("")
            .trim()
            .to_string()
    }

    fn wait_for_state(pid: u32, want: &str) -> String {
        for _ in 0..200 {
            let now = state(pid);
            if now.starts_with(want) {
                return now;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        state(pid)
    }

    fn lifecycle(hierarchy: Hierarchy, name: &str, resources: &Resources) -> Guard {
        let mut guard = Guard::new(hierarchy.clone(), name);
        guard.cgroup = Some(Cgroup::create(&hierarchy, &guard.path(), resources).expect("create"));
        let pid = guard.spawn(&["sleep", "30"]);
        assert_eq!(guard.cgroup().pids().expect("pids"), vec![pid as i32]);
        let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup of child");
        assert!(own.contains(&guard.path()), "{own}");

        let cg = guard.cgroup();
        assert!(!cg.is_frozen().expect("state"));
        cg.freeze().expect("freeze");
        assert!(cg.is_frozen().expect("state"));
        let frozen = state(pid);
        cg.thaw().expect("thaw");
        assert!(!cg.is_frozen().expect("state"));
        // The v1 freezer parks tasks uninterruptibly (v2 traps them like a signal stop, which
        // /proc reports as plain sleep: cgroup.events is the evidence there).
        if !hierarchy.is_v2() {
            assert!(frozen.starts_with('D'), "frozen task reported {frozen}");
        }
        assert_eq!(wait_for_state(pid, "S"), "S (sleeping)");

        cg.kill_all().expect("kill all");
        assert_eq!(cg.pids().expect("pids"), Vec::<i32>::new());
        let status = guard.children[0].wait().expect("wait");
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        let cgroup = guard.cgroup.take().expect("cgroup");
        cgroup.remove().expect("remove");
        assert_eq!(guard.leftovers(), Vec::<PathBuf>::new());
        guard
    }

    #[test]
    fn v1_or_native_lifecycle_with_limits() {
        let Some(h) = hierarchy() else { return };
        let r = if h.is_v2() {
            Resources {
                pids_limit: Some(50),
                ..limits()
            }
        } else {
            Resources {
                cpuset_cpus: Some("0".into()),
                pids_limit: Some(50),
                ..limits()
            }
        };
        let mut guard = Guard::new(h.clone(), "limits");
        let cg = Cgroup::create(&h, &guard.path(), &r).expect("create");
        if let Hierarchy::V1 { root } = &h {
            let dir = |c: &str| root.join(c).join(guard.path());
            assert_eq!(
                read(&dir("memory").join("memory.limit_in_bytes")),
                "67108864"
            );
            if dir("memory").join("memory.memsw.limit_in_bytes").exists() {
                assert_eq!(
                    read(&dir("memory").join("memory.memsw.limit_in_bytes")),
                    "134217728"
                );
            }
            assert_eq!(
                read(&dir("memory").join("memory.soft_limit_in_bytes")),
                "33554432"
            );
            assert_eq!(read(&dir("cpu").join("cpu.cfs_quota_us")), "50000");
            assert_eq!(read(&dir("cpu").join("cpu.shares")), "512");
            assert_eq!(read(&dir("cpuset").join("cpuset.cpus")), "0");
            assert_eq!(read(&dir("pids").join("pids.max")), "50");
            // The kernel checks memory <= memory+swap at each write: raising both must work,
            // and lowering both.
            for memory in [256 * MB, 16 * MB] {
                let update = Resources {
                    memory: Some(memory),
                    ..Resources::default()
                };
                cg.apply(&update).expect("update memory");
                assert_eq!(
                    read(&dir("memory").join("memory.limit_in_bytes")),
                    memory.to_string()
                );
            }
        }
        if !h.is_v2() {
            let stats = cg.stats().expect("stats");
            assert_eq!(stats.memory_limit, Some(16 << 20));
            assert_eq!(stats.pids_current, Some(0));
        }
        guard.cgroup = Some(cg);
        // Unavailable CPUs: docker's message.
        let far = Resources {
            cpuset_cpus: Some("1000".into()),
            ..Resources::default()
        };
        let err = guard.cgroup().apply(&far).expect_err("cpu 1000");
        assert!(
            err.to_string()
                .starts_with("Requested CPUs are not available - requested 1000"),
            "{err}"
        );
        drop(guard);
        let guard = Guard::new(h.clone(), "limits");
        assert_eq!(guard.leftovers(), Vec::<PathBuf>::new());

        lifecycle(
            h,
            "life",
            &Resources {
                memory: Some(64 * MB),
                pids_limit: Some(10),
                ..Resources::default()
            },
        );
    }

    #[test]
    fn v2_lifecycle() {
        let Some(h) = v2_hierarchy() else { return };
        // The hybrid cgroup2 has no controllers: no limits, but freeze, kill and removal.
        lifecycle(h, "v2", &Resources::default());
    }

    #[test]
    fn v2_clone_into_cgroup_fd() {
        let Some(h) = v2_hierarchy() else { return };
        let mut guard = Guard::new(h.clone(), "v2fd");
        guard.cgroup =
            Some(Cgroup::create(&h, &guard.path(), &Resources::default()).expect("create"));
        let fd = guard
            .cgroup()
            .dir_fd()
            .expect("dir fd")
            .expect("v2 has a dir fd");
        let target = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("link");
        assert_eq!(target, guard.cgroup().dirs()[0]);
    }

    #[test]
    fn memory_hog_is_oom_killed() {
        let Some(h) = hierarchy() else { return };
        if h.is_v2() && !h.root().join("cgroup.controllers").exists() {
            return;
        }
        let mut guard = Guard::new(h.clone(), "oom");
        let r = Resources {
            memory: Some(10 * MB),
            ..Resources::default()
        };
        guard.cgroup = Some(Cgroup::create(&h, &guard.path(), &r).expect("create"));
        assert!(!guard.cgroup().oom_killed().expect("oom"));
        // dd fills a 100 MB buffer from /dev/zero: ten times the limit.
        guard.spawn(&["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"]);
        let status = guard.children[0].wait().expect("wait");
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        assert!(guard.cgroup().oom_killed().expect("oom"));
        let cgroup = guard.cgroup.take().expect("cgroup");
        cgroup.kill_all().expect("kill all");
        cgroup.remove().expect("remove");
        assert_eq!(guard.leftovers(), Vec::<PathBuf>::new());
    }

    /// A thread enters the cgroup alone (without the grace period a process move waits for),
    /// a process it forks starts there, and the thread goes back.
    #[test]
    fn v1_thread_join_forks_into_the_cgroup() {
        let Some(h) = hierarchy() else { return };
        if h.is_v2() {
            return;
        }
        let mut guard = Guard::new(h.clone(), "thread");
        guard.cgroup =
            Some(Cgroup::create(&h, &guard.path(), &Resources::default()).expect("create"));
        let join = guard.cgroup().thread_join().expect("v1");
        let before = fs::read_to_string("/proc/thread-self/cgroup").expect("own cgroup");
        let (child, during, after) = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let inside = join.enter().expect("enter");
                    let during = fs::read_to_string("/proc/thread-self/cgroup").expect("read");
                    // The thread makes this process a member, which `pids` leaves out (or a
                    // `kill_all` racing the start would kill the supervisor).
                    assert_eq!(guard.cgroup().pids().expect("pids"), Vec::<i32>::new());
                    let child = Command::new("sleep").arg("30").spawn().expect("spawn");
                    inside.leave().expect("leave");
                    let after = fs::read_to_string("/proc/thread-self/cgroup").expect("read");
                    (child, during, after)
                })
                .join()
                .expect("thread")
        });
        let pid = child.id();
        guard.children.push(child);
        assert!(during.contains(&guard.path()), "{during}");
        assert_eq!(after, before);
        // The test process itself never moved.
        assert_eq!(
            fs::read_to_string("/proc/self/cgroup").expect("read"),
            before
        );
        assert_eq!(guard.cgroup().pids().expect("pids"), vec![pid as i32]);
    }

    /// Only the allowed devices open: v1's devices.allow, and v2's device program (on the
    /// hybrid cgroup2 too, which takes BPF programs without controllers).
    #[test]
    fn device_rules_are_enforced() {
        let hierarchies: Vec<Hierarchy> = [hierarchy(), v2_hierarchy()]
            .into_iter()
            .flatten()
            .collect();
        for (i, h) in hierarchies.into_iter().enumerate() {
            let mut guard = Guard::new(h.clone(), &format!("dev{i}"));
            let r = Resources {
                devices: Some(vec![DeviceRule::parse("c 1:3 rw").expect("rule")]),
                ..Resources::default()
            };
            guard.cgroup = Some(Cgroup::create(&h, &guard.path(), &r).expect("create"));
            let probe = |device: &str| -> bool {
                let procs = guard.cgroup().open_procs().expect("procs");
                let mut command = Command::new("sh");
                command
                    .args(["-c", &format!("exec 3<{device}")])
                    .stderr(Stdio::null());
                // SAFETY: join_self only calls write(2).
                unsafe { command.pre_exec(move || procs.join_self()) };
                command.status().expect("sh").success()
            };
            assert!(probe("/dev/null"), "{h:?}: /dev/null is allowed");
            assert!(!probe("/dev/zero"), "{h:?}: /dev/zero is not");
        }
    }

    #[test]
    fn kill_all_reaches_forked_children() {
        let Some(h) = hierarchy() else { return };
        let mut guard = Guard::new(h.clone(), "tree");
        guard.cgroup =
            Some(Cgroup::create(&h, &guard.path(), &Resources::default()).expect("create"));
        guard.spawn(&["sh", "-c", "sleep 30 & sleep 30 & sleep 30 & wait"]);
        let mut pids = Vec::new();
        for _ in 0..200 {
            pids = guard.cgroup().pids().expect("pids");
            if pids.len() == 4 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(pids.len(), 4, "{pids:?}");
        guard.cgroup().kill_all().expect("kill all");
        assert!(guard.cgroup().pids().expect("pids").is_empty());
        let status = guard.children[0].wait().expect("wait");
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}

#[test]
fn io_bytes_sum_reads_and_writes_of_every_device() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    touch(
        &d.join("blkio.throttle.io_service_bytes_recursive"),
        "8:0 Read 100\n8:0 Write 20\n8:0 Sync 5\n8:0 Total 120\n254:0 Read 1\n254:0 Write 2\nTotal 123\n",
    );
    assert_eq!(io_bytes_v1(d).expect("v1"), (Some(101), Some(22)));
    touch(
        &d.join("io.stat"),
        "8:0 rbytes=100 wbytes=20 rios=3 wios=1 dbytes=0 dios=0\n254:0 rbytes=1 wbytes=2 rios=1 wios=1\n",
    );
    assert_eq!(io_bytes_v2(d).expect("v2"), (Some(101), Some(22)));
    let empty = tempfile::tempdir().expect("tempdir");
    assert_eq!(io_bytes_v1(empty.path()).expect("none"), (None, None));
}
