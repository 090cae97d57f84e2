//! Linux capabilities of a container, with Docker's semantics.
//!
//! [`CapSet::from_config`] reproduces Docker's `TweakCapabilities`: the default set, then
//! `cap_drop`/`cap_add` (names case-insensitive, with or without `CAP_`, plus `ALL`), and
//! `privileged` giving every capability the kernel knows. [`CapSet::prepare`] turns a set into
//! the exact values for the five capability sets; [`PreparedCaps::apply`] installs them with
//! raw syscalls and no allocation, so it can run in a forked child before `exec`.
//!
//! The `caps` crate provides the capability names and numbers (kept current with the kernel);
//! it is not used to apply them because its setters allocate hash sets.

use std::fmt;
use std::io;
use std::str::FromStr;

pub use ::caps::Capability;

/// Errors from capability configuration and application.
#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    /// A `cap_add`/`cap_drop` entry that names no capability.
    #[error("unknown capability: {0:?}")]
    Unknown(String),
    /// `/proc/sys/kernel/cap_last_cap` could not be read or parsed.
    #[error(
        "cannot read the last capability of the kernel from /proc/sys/kernel/cap_last_cap: {0}"
    )]
    LastCap(io::Error),
    /// A syscall failed while applying the sets.
    #[error("cannot apply capabilities: {what} failed: {source}")]
    Apply {
        what: &'static str,
        source: io::Error,
    },
}

/// Docker's default capabilities (moby `oci/caps/defaults.go`).
pub const DOCKER_DEFAULT: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// A set of capabilities, as a bit mask indexed by capability number.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSet(u64);

impl fmt::Debug for CapSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

impl CapSet {
    /// The empty set.
    pub const fn empty() -> Self {
        CapSet(0)
    }

    /// A set from a raw mask (bit N = capability N).
    pub const fn from_mask(mask: u64) -> Self {
        CapSet(mask)
    }

    /// Docker's default set.
    pub fn docker_default() -> Self {
        DOCKER_DEFAULT.iter().copied().collect()
    }

    /// Every capability known to both this build and the running kernel, as Docker's `ALL`
    /// (Docker also filters its list by `cap_last_cap`).
    pub fn all() -> Result<Self, CapsError> {
        Ok(Self::all_up_to(last_cap()?))
    }

    fn all_up_to(last: u8) -> Self {
        ::caps::all()
            .into_iter()
            .filter(|c| c.index() <= last)
            .collect()
    }

    /// The set Docker computes from `cap_add`, `cap_drop` and `privileged`.
    ///
    /// Docker's rules: `privileged` gives all capabilities and ignores the lists; `cap_add: [ALL]`
    /// gives all but the dropped ones (drop wins); `cap_drop: [ALL]` gives exactly the added ones;
    /// otherwise the default set minus the dropped plus the added (add wins for a capability in
    /// both lists). Names are validated even when a list is overridden by `ALL`.
    pub fn from_config(
        cap_add: &[String],
        cap_drop: &[String],
        privileged: bool,
    ) -> Result<Self, CapsError> {
        let last = last_cap()?;
        Self::from_config_with(cap_add, cap_drop, privileged, last)
    }

    /// The set holding exactly the named capabilities.
    pub fn from_names(names: &[String]) -> Result<Self, CapsError> {
        Ok(parse_list(names, Self::all_up_to(last_cap()?))?.0)
    }

    fn from_config_with(
        cap_add: &[String],
        cap_drop: &[String],
        privileged: bool,
        last: u8,
    ) -> Result<Self, CapsError> {
        let all = Self::all_up_to(last);
        if privileged {
            return Ok(all);
        }
        let (add, add_all) = parse_list(cap_add, all)?;
        let (drop, drop_all) = parse_list(cap_drop, all)?;
        Ok(if add_all {
            CapSet(all.0 & !drop.0)
        } else if drop_all {
            add
        } else {
            CapSet((Self::docker_default().0 & !drop.0) | add.0)
        })
    }

    /// Whether the set holds `cap`.
    pub fn contains(&self, cap: Capability) -> bool {
        self.0 & cap.bitmask() != 0
    }

    /// Whether the set holds the capability named `name` (`CAP_` optional, any case); unknown
    /// names are never held.
    pub fn contains_name(&self, name: &str) -> bool {
        Capability::from_str(&::caps::to_canonical(name)).is_ok_and(|c| self.contains(c))
    }

    /// Adds `cap`.
    pub fn insert(&mut self, cap: Capability) {
        self.0 |= cap.bitmask();
    }

    /// Removes `cap`.
    pub fn remove(&mut self, cap: Capability) {
        self.0 &= !cap.bitmask();
    }

    /// The raw mask, in the format of `CapEff` in `/proc/PID/status`.
    pub fn mask(&self) -> u64 {
        self.0
    }

    /// The capability names, by number.
    pub fn names(&self) -> Vec<String> {
        let mut caps: Vec<Capability> = ::caps::all()
            .into_iter()
            .filter(|c| self.contains(*c))
            .collect();
        caps.sort_by_key(|c| c.index());
        caps.iter().map(ToString::to_string).collect()
    }

    /// The values of the five capability sets a container process gets from this set, and what
    /// [`PreparedCaps::apply`] needs, computed now so that applying does not allocate. Reads
    /// `/proc/sys/kernel/cap_last_cap`: call before forking.
    pub fn prepare(&self) -> Result<PreparedCaps, CapsError> {
        Ok(self.prepare_with(last_cap()?))
    }

    fn prepare_with(&self, last: u8) -> PreparedCaps {
        let known = if last >= 63 {
            u64::MAX
        } else {
            (1u64 << (last + 1)) - 1
        };
        let set = self.0 & known;
        // Docker (since the fix for CVE-2022-24769) leaves the inheritable and ambient sets
        // empty; bounding, permitted and effective all equal the container's set.
        PreparedCaps {
            sets: ProcessCaps {
                bounding: set,
                effective: set,
                permitted: set,
                inheritable: 0,
                ambient: 0,
            },
            last_cap: last,
        }
    }
}

impl FromIterator<Capability> for CapSet {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        CapSet(iter.into_iter().fold(0, |m, c| m | c.bitmask()))
    }
}

/// Parses a `cap_add`/`cap_drop` list into a set and whether it holds `ALL`.
fn parse_list(names: &[String], all: CapSet) -> Result<(CapSet, bool), CapsError> {
    let mut set = CapSet::empty();
    let mut has_all = false;
    for name in names {
        let upper = name.to_uppercase();
        if upper == "ALL" {
            has_all = true;
            continue;
        }
        let canonical = ::caps::to_canonical(&upper);
        match Capability::from_str(&canonical) {
            // Docker only accepts capabilities the running kernel knows.
            Ok(cap) if all.contains(cap) => set.insert(cap),
            _ => return Err(CapsError::Unknown(canonical)),
        }
    }
    Ok((set, has_all))
}

/// The highest capability number of the running kernel.
fn last_cap() -> Result<u8, CapsError> {
    let text =
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").map_err(CapsError::LastCap)?;
    text.trim()
        .parse::<u8>()
        .map_err(|e| CapsError::LastCap(io::Error::new(io::ErrorKind::InvalidData, e.to_string())))
}

/// The values of the capability sets of a process, as masks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessCaps {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

/// Capability sets ready to apply in a forked child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreparedCaps {
    /// The values the process ends up with.
    pub sets: ProcessCaps,
    last_cap: u8,
}

// The kernel's `struct __user_cap_header_struct` and `struct __user_cap_data_struct`.
#[repr(C)]
struct CapUserHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapUserData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

impl PreparedCaps {
    /// Installs the sets on the calling thread: drops from the bounding set every capability
    /// not kept (this needs `CAP_SETPCAP`, hence first), then sets effective, permitted and
    /// inheritable with `capset`, then clears the ambient set.
    ///
    /// Only syscalls on stack data: safe to call between `fork` and `exec`. Call it after
    /// switching to the container user; a non-root user must have set `PR_SET_KEEPCAPS` before
    /// `setuid` or the kernel has already emptied its permitted set (and `execve` empties it
    /// again for a non-root user without file capabilities, as with Docker). With a seccomp
    /// filter and no `no_new_privs`, install the filter first, while `CAP_SYS_ADMIN` is held.
    pub fn apply(&self) -> Result<(), CapsError> {
        self.drop_bounding()?;
        self.set_sets()
    }

    /// Drops from the bounding set every capability not kept. Needs `CAP_SETPCAP`: call it
    /// before switching to a non-root user.
    pub fn drop_bounding(&self) -> Result<(), CapsError> {
        for cap in 0..=self.last_cap.min(63) {
            if self.sets.bounding & (1u64 << cap) == 0 {
                // SAFETY: prctl with integer arguments only.
                let rc = unsafe {
                    libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0)
                };
                if rc != 0 {
                    return Err(apply_error("prctl(PR_CAPBSET_DROP)"));
                }
            }
        }
        Ok(())
    }

    /// Sets effective, permitted and inheritable with `capset`, then clears the ambient set.
    pub fn set_sets(&self) -> Result<(), CapsError> {
        let mut header = CapUserHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let s = &self.sets;
        // Version 3 splits each 64-bit mask into two 32-bit halves.
        let data = [
            CapUserData {
                effective: s.effective as u32,
                permitted: s.permitted as u32,
                inheritable: s.inheritable as u32,
            },
            CapUserData {
                effective: (s.effective >> 32) as u32,
                permitted: (s.permitted >> 32) as u32,
                inheritable: (s.inheritable >> 32) as u32,
            },
        ];
        // SAFETY: header and data are valid for the kernel to read (two data structs for v3).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_capset,
                &mut header as *mut CapUserHeader,
                data.as_ptr(),
            )
        };
        if rc != 0 {
            return Err(apply_error("capset"));
        }
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            )
        };
        if rc != 0 {
            return Err(apply_error("prctl(PR_CAP_AMBIENT_CLEAR_ALL)"));
        }
        Ok(())
    }
}

fn apply_error(what: &'static str) -> CapsError {
    // `last_os_error` builds an OS-code error: no allocation.
    CapsError::Apply {
        what,
        source: io::Error::last_os_error(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    const LAST: u8 = 40;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn cfg(add: &[&str], drop: &[&str], privileged: bool) -> Result<CapSet, CapsError> {
        CapSet::from_config_with(&strings(add), &strings(drop), privileged, LAST)
    }

    #[test]
    fn default_set_is_dockers() {
        let set = cfg(&[], &[], false).unwrap();
        assert_eq!(set, CapSet::docker_default());
        // CapEff of a default `docker run` as root.
        assert_eq!(set.mask(), 0x0000_0000_a804_25fb);
        assert_eq!(set.names().len(), 14);
        assert!(set.contains(Capability::CAP_KILL));
        assert!(!set.contains(Capability::CAP_SYS_ADMIN));
    }

    #[test]
    fn add_and_drop_normalise_names() {
        let set = cfg(
            &["sys_admin", "CAP_net_admin"],
            &["cap_chown", "Kill"],
            false,
        )
        .unwrap();
        assert!(set.contains(Capability::CAP_SYS_ADMIN));
        assert!(set.contains(Capability::CAP_NET_ADMIN));
        assert!(!set.contains(Capability::CAP_CHOWN));
        assert!(!set.contains(Capability::CAP_KILL));
        assert!(set.contains(Capability::CAP_SETUID));
        assert!(set.contains_name("net_admin"));
        assert!(!set.contains_name("CAP_NOPE"));
    }

    #[test]
    fn add_wins_over_drop_without_all() {
        let set = cfg(&["CHOWN", "SYS_TIME"], &["CHOWN", "SYS_TIME"], false).unwrap();
        assert!(set.contains(Capability::CAP_CHOWN));
        assert!(set.contains(Capability::CAP_SYS_TIME));
    }

    #[test]
    fn add_all_minus_drops() {
        let set = cfg(&["all"], &["SYS_ADMIN"], false).unwrap();
        assert_eq!(
            set.mask(),
            ((1u64 << 41) - 1) & !Capability::CAP_SYS_ADMIN.bitmask()
        );
    }

    #[test]
    fn drop_all_keeps_only_adds() {
        let set = cfg(&["NET_BIND_SERVICE"], &["ALL"], false).unwrap();
        assert_eq!(set, CapSet::from_iter([Capability::CAP_NET_BIND_SERVICE]));
        assert_eq!(cfg(&[], &["ALL"], false).unwrap(), CapSet::empty());
    }

    #[test]
    fn privileged_is_everything_the_kernel_knows() {
        assert_eq!(cfg(&[], &["ALL"], true).unwrap().mask(), (1u64 << 41) - 1);
        // An older kernel without CAP_BPF (39) and later.
        let old = CapSet::from_config_with(&[], &[], true, 37).unwrap();
        assert_eq!(old.mask(), (1u64 << 38) - 1);
    }

    #[test]
    fn unknown_names_are_errors_naming_the_cap() {
        let err = cfg(&["CAP_FLY"], &[], false).unwrap_err();
        assert_eq!(err.to_string(), "unknown capability: \"CAP_FLY\"");
        let err = cfg(&["ALL"], &["sys_nope"], false).unwrap_err();
        assert!(err.to_string().contains("CAP_SYS_NOPE"), "{err}");
        // Known to the crate but not to an old kernel.
        let err = CapSet::from_config_with(&strings(&["BPF"]), &[], false, 37).unwrap_err();
        assert!(err.to_string().contains("CAP_BPF"), "{err}");
    }

    #[test]
    fn prepared_sets_follow_docker() {
        let set = cfg(&["SYS_ADMIN"], &[], false).unwrap();
        let p = set.prepare_with(LAST);
        assert_eq!(p.sets.bounding, set.mask());
        assert_eq!(p.sets.effective, set.mask());
        assert_eq!(p.sets.permitted, set.mask());
        assert_eq!(p.sets.inheritable, 0);
        assert_eq!(p.sets.ambient, 0);
        // Bits the kernel does not know are never set.
        let p = CapSet::from_mask(u64::MAX).prepare_with(LAST);
        assert_eq!(p.sets.bounding, (1u64 << 41) - 1);
    }

    fn status_field(status: &str, key: &str) -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    }

    /// Root only: a child applies the sets after fork and `cat` reports them after exec.
    #[test]
    fn applied_in_a_child() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let set = CapSet::from_config(
            &strings(&["SYS_TIME"]),
            &strings(&["CHOWN", "NET_RAW"]),
            false,
        )
        .unwrap();
        let prepared = set.prepare().unwrap();
        let mut cmd = Command::new("cat");
        cmd.arg("/proc/self/status");
        // SAFETY: `apply` only makes syscalls on precomputed data.
        unsafe {
            cmd.pre_exec(move || prepared.apply().map_err(|_| io::Error::last_os_error()));
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let status = String::from_utf8_lossy(&out.stdout);
        let want = set.mask();
        assert_eq!(status_field(&status, "CapEff:"), Some(want), "{status}");
        assert_eq!(status_field(&status, "CapPrm:"), Some(want));
        assert_eq!(status_field(&status, "CapBnd:"), Some(want));
        assert_eq!(status_field(&status, "CapInh:"), Some(0));
        assert_eq!(status_field(&status, "CapAmb:"), Some(0));
        assert!(!set.contains(Capability::CAP_CHOWN) && set.contains(Capability::CAP_SYS_TIME));
    }
}
