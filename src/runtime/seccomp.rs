//! Seccomp filters with Docker's semantics.
//!
//! A [`Profile`] is Docker's JSON seccomp profile format (`defaultAction`, `syscalls` with
//! `names`, `action`, `args`, `includes`/`excludes` on capabilities, architectures and kernel
//! version). [`Profile::docker_default`] is Docker's default profile. [`compile`] resolves a
//! profile for one container (its capabilities, the architecture, the running kernel) into BPF
//! before forking; [`apply`] installs it in the child with one `seccomp(2)` call per filter on
//! that prebuilt memory.
//!
//! BPF generation is done by `seccompiler` (pure Rust, from Firecracker/rust-vmm): no C library
//! to build or ship. A seccompiler filter has a single on-match action, so a profile is compiled
//! into a stack of filters: one per non-default action X (match → X, else allow), and last the
//! default filter (any rule matches → allow, else the default action). The kernel runs every
//! filter and keeps the most restrictive answer, which gives the profile's action for a matching
//! rule and the default action otherwise.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};
use serde::Deserialize;

use super::caps::CapSet;

/// `errno` returned by `SCMP_ACT_ERRNO`/`SCMP_ACT_TRACE` without `errnoRet`, as in runc.
pub(super) const DEFAULT_ERRNO: u32 = libc::EPERM as u32;

/// Errors from seccomp profile parsing, compilation and installation.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("cannot read seccomp profile {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("invalid seccomp profile {origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error(
        "invalid security_opt {0:?}: expected seccomp=unconfined, seccomp=builtin or seccomp=PATH"
    )]
    SecurityOpt(String),
    #[error("seccomp filters for {0} cannot be built by this binary")]
    UnsupportedArch(Arch),
    #[error("cannot read the kernel version from /proc/sys/kernel/osrelease: {0}")]
    KernelVersion(io::Error),
    #[error("cannot build the seccomp filter: {0}")]
    Build(String),
    #[error("cannot set no_new_privs: {0}")]
    NoNewPrivs(io::Error),
    #[error("cannot install the seccomp filter: {0}")]
    Apply(io::Error),
}

/// What the kernel does with a matching system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Allow,
    Errno(u32),
    KillThread,
    KillProcess,
    Trap,
    Trace(u32),
    Log,
}

impl Action {
    fn parse(name: &str, errno: Option<u32>) -> Result<Self, String> {
        Ok(match name {
            "SCMP_ACT_ALLOW" => Action::Allow,
            "SCMP_ACT_ERRNO" => Action::Errno(errno.unwrap_or(DEFAULT_ERRNO)),
            "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
            "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
            "SCMP_ACT_TRAP" => Action::Trap,
            "SCMP_ACT_TRACE" => Action::Trace(errno.unwrap_or(DEFAULT_ERRNO)),
            "SCMP_ACT_LOG" => Action::Log,
            "SCMP_ACT_NOTIFY" => return Err("SCMP_ACT_NOTIFY is not supported".to_string()),
            other => return Err(format!("unknown action {other:?}")),
        })
    }

    fn to_seccompiler(self) -> SeccompAction {
        match self {
            Action::Allow => SeccompAction::Allow,
            Action::Errno(e) => SeccompAction::Errno(e),
            Action::KillThread => SeccompAction::KillThread,
            Action::KillProcess => SeccompAction::KillProcess,
            Action::Trap => SeccompAction::Trap,
            Action::Trace(e) => SeccompAction::Trace(e),
            Action::Log => SeccompAction::Log,
        }
    }

    /// The kernel's return value, a total order key that tells actions apart.
    fn ret(self) -> u32 {
        u32::from(self.to_seccompiler())
    }
}

/// A comparison of a system call argument (libseccomp's `SCMP_CMP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `(arg & value) == value_two`.
    MaskedEq,
}

/// One argument condition of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgCondition {
    pub index: u8,
    pub value: u64,
    pub value_two: u64,
    pub op: CmpOp,
}

/// When a rule applies (`includes`) or does not (`excludes`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleFilter {
    /// Capability names (`CAP_SYS_ADMIN`).
    pub caps: Vec<String>,
    /// Docker architecture names (`amd64`, `arm64`, ...).
    pub arches: Vec<String>,
    /// Kernel version `(major, minor)`.
    pub min_kernel: Option<(u32, u32)>,
}

/// A rule: the action for these system calls when the argument conditions hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyscallRule {
    pub names: Vec<String>,
    pub action: Action,
    /// All must hold, except that conditions on the same argument are alternatives (runc's
    /// rule for Docker profiles).
    pub args: Vec<ArgCondition>,
    pub includes: RuleFilter,
    pub excludes: RuleFilter,
}

/// A seccomp profile, in the terms of Docker's JSON format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub default_action: Action,
    pub syscalls: Vec<SyscallRule>,
}

// Docker's JSON format. Unknown fields (comments, archMap, listenerPath, ...) are ignored, as
// Docker does.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProfile {
    default_action: String,
    default_errno_ret: Option<u32>,
    syscalls: Option<Vec<RawSyscall>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSyscall {
    name: Option<String>,
    names: Option<Vec<String>>,
    action: String,
    errno_ret: Option<u32>,
    args: Option<Vec<RawArg>>,
    includes: Option<RawFilter>,
    excludes: Option<RawFilter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawArg {
    index: u32,
    #[serde(default)]
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFilter {
    caps: Option<Vec<String>>,
    arches: Option<Vec<String>>,
    min_kernel: Option<String>,
}

impl Profile {
    /// Docker's default profile.
    pub fn docker_default() -> Self {
        Profile {
            default_action: Action::Errno(super::seccomp_default::DEFAULT_ACTION_ERRNO),
            syscalls: super::seccomp_default::rules(),
        }
    }

    /// Parses a profile in Docker's JSON format; `origin` names it in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Self, SeccompError> {
        let invalid = |message: String| SeccompError::Invalid {
            origin: origin.to_string(),
            message,
        };
        let de = &mut serde_json::Deserializer::from_str(text);
        let raw: RawProfile = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            invalid(format!("{path}: {}", e.inner()))
        })?;
        let default_action = Action::parse(&raw.default_action, raw.default_errno_ret)
            .map_err(|m| invalid(format!("defaultAction: {m}")))?;
        let syscalls = raw
            .syscalls
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, s)| convert_rule(s).map_err(|m| invalid(format!("syscalls[{i}]: {m}"))))
            .collect::<Result<_, _>>()?;
        Ok(Profile {
            default_action,
            syscalls,
        })
    }

    /// Reads a profile file.
    pub fn from_file(path: &Path) -> Result<Self, SeccompError> {
        let text = std::fs::read_to_string(path).map_err(|source| SeccompError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text, &path.display().to_string())
    }
}

fn convert_rule(raw: RawSyscall) -> Result<SyscallRule, String> {
    let mut names = raw.names.unwrap_or_default();
    names.extend(raw.name);
    if names.is_empty() {
        return Err("no syscall names".to_string());
    }
    let action = Action::parse(&raw.action, raw.errno_ret).map_err(|m| format!("action: {m}"))?;
    let args = raw
        .args
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, a)| convert_arg(a).map_err(|m| format!("args[{i}]: {m}")))
        .collect::<Result<_, _>>()?;
    Ok(SyscallRule {
        names,
        action,
        args,
        includes: convert_filter(raw.includes).map_err(|m| format!("includes: {m}"))?,
        excludes: convert_filter(raw.excludes).map_err(|m| format!("excludes: {m}"))?,
    })
}

fn convert_arg(raw: RawArg) -> Result<ArgCondition, String> {
    let index = match u8::try_from(raw.index) {
        Ok(i) if i < 6 => i,
        _ => {
            return Err(format!(
                "argument index {} is not between 0 and 5",
                raw.index
            ))
        }
    };
    let op = match raw.op.as_str() {
        "SCMP_CMP_NE" => CmpOp::Ne,
        "SCMP_CMP_LT" => CmpOp::Lt,
        "SCMP_CMP_LE" => CmpOp::Le,
        "SCMP_CMP_EQ" => CmpOp::Eq,
        "SCMP_CMP_GE" => CmpOp::Ge,
        "SCMP_CMP_GT" => CmpOp::Gt,
        "SCMP_CMP_MASKED_EQ" => CmpOp::MaskedEq,
        other => return Err(format!("unknown comparison {other:?}")),
    };
    Ok(ArgCondition {
        index,
        value: raw.value,
        value_two: raw.value_two,
        op,
    })
}

fn convert_filter(raw: Option<RawFilter>) -> Result<RuleFilter, String> {
    let Some(raw) = raw else {
        return Ok(RuleFilter::default());
    };
    let min_kernel = match raw.min_kernel.as_deref() {
        None | Some("") => None,
        Some(v) => Some(parse_kernel_version(v).ok_or_else(|| format!("invalid minKernel {v:?}"))?),
    };
    Ok(RuleFilter {
        caps: raw.caps.unwrap_or_default(),
        arches: raw.arches.unwrap_or_default(),
        min_kernel,
    })
}

/// `major.minor` from a kernel release such as `6.18.0-1-amd64`.
fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

fn running_kernel() -> Result<(u32, u32), SeccompError> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_err(SeccompError::KernelVersion)?;
    parse_kernel_version(release.trim()).ok_or_else(|| {
        SeccompError::KernelVersion(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected release {:?}", release.trim()),
        ))
    })
}

/// The seccomp profile chosen by a service's `security_opt` and `privileged`: `None` means no
/// filter. As in Docker: privileged containers are unconfined, `seccomp=unconfined` too,
/// `seccomp=builtin` or no option gives the default profile, `seccomp=PATH` (or the legacy
/// `seccomp:PATH`) reads a JSON profile, relative to `base_dir`; the last option wins.
pub fn profile_for(
    security_opt: &[String],
    privileged: bool,
    base_dir: &Path,
) -> Result<Option<Profile>, SeccompError> {
    let mut choice: Option<&str> = None;
    for opt in security_opt {
        let (key, value) = match opt.split_once('=') {
            Some(kv) => kv,
            None => opt.split_once(':').unwrap_or((opt.as_str(), "")),
        };
        if key == "seccomp" {
            if value.is_empty() {
                return Err(SeccompError::SecurityOpt(opt.clone()));
            }
            choice = Some(value);
        }
    }
    if privileged {
        return Ok(None);
    }
    match choice {
        Some("unconfined") => Ok(None),
        None | Some("builtin") => Ok(Some(Profile::docker_default())),
        Some(path) => Profile::from_file(&base_dir.join(path)).map(Some),
    }
}

/// Architectures rcompose builds filters for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        })
    }
}

impl Arch {
    /// The architecture of this binary, the only one it has syscall numbers for.
    pub fn native() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }

    /// The name Docker profiles use in `includes.arches` (Go's `GOARCH`).
    fn docker_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }

    fn target(self) -> TargetArch {
        match self {
            Arch::X86_64 => TargetArch::x86_64,
            Arch::Aarch64 => TargetArch::aarch64,
        }
    }
}

/// A compiled filter stack, ready to install. Build it before forking. On the wire to the
/// container helper each instruction is `(code, jt, jf, k)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BpfProgram {
    filters: Vec<Vec<seccompiler::sock_filter>>,
}

type WireFilter = Vec<(u16, u8, u8, u32)>;

impl serde::Serialize for BpfProgram {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let wire: Vec<WireFilter> = self
            .filters
            .iter()
            .map(|f| f.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect())
            .collect();
        wire.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for BpfProgram {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = Vec::<WireFilter>::deserialize(d)?;
        let filters = wire
            .into_iter()
            .map(|f| {
                f.into_iter()
                    .map(|(code, jt, jf, k)| seccompiler::sock_filter { code, jt, jf, k })
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>();
        if filters
            .iter()
            .any(|f| f.is_empty() || f.len() > usize::from(u16::MAX))
        {
            return Err(serde::de::Error::custom("invalid seccomp filter length"));
        }
        Ok(BpfProgram { filters })
    }
}

impl BpfProgram {
    /// The number of filters [`apply`] installs.
    pub fn filter_count(&self) -> usize {
        self.filters.len()
    }

    /// The total number of BPF instructions.
    pub fn instruction_count(&self) -> usize {
        self.filters.iter().map(Vec::len).sum()
    }
}

/// Syscall number → `None` when any call matches, or the alternative rules that must match.
type RuleMap = BTreeMap<i64, Option<Vec<SeccompRule>>>;

fn merge(map: &mut RuleMap, nr: i64, rules: Option<Vec<SeccompRule>>) {
    match (map.get_mut(&nr), rules) {
        (None, rules) => {
            map.insert(nr, rules);
        }
        (Some(slot @ Some(_)), None) => *slot = None,
        (Some(Some(existing)), Some(rules)) => existing.extend(rules),
        (Some(None), _) => {}
    }
}

/// Compiles `profile` for a container with capabilities `caps` on `arch` (which must be
/// [`Arch::native`]), and the running kernel (for `minKernel`). System call names unknown on
/// `arch` are skipped, as runc does.
pub fn compile(profile: &Profile, caps: &CapSet, arch: Arch) -> Result<BpfProgram, SeccompError> {
    compile_for_kernel(profile, caps, arch, running_kernel()?)
}

fn compile_for_kernel(
    profile: &Profile,
    caps: &CapSet,
    arch: Arch,
    kernel: (u32, u32),
) -> Result<BpfProgram, SeccompError> {
    if Arch::native() != Some(arch) {
        return Err(SeccompError::UnsupportedArch(arch));
    }
    let default = profile.default_action;
    let mut groups: BTreeMap<u32, (Action, RuleMap)> = BTreeMap::new();
    for rule in &profile.syscalls {
        if rule.action == default || !rule_applies(rule, caps, arch, kernel) {
            continue;
        }
        let Some(alternatives) = rule_conditions(&rule.args)? else {
            continue;
        };
        let (_, map) = groups
            .entry(rule.action.ret())
            .or_insert_with(|| (rule.action, RuleMap::new()));
        for nr in rule.names.iter().filter_map(|n| syscall_number(n)) {
            merge(map, nr, alternatives.clone());
        }
    }

    let mut filters = Vec::new();
    let mut union = RuleMap::new();
    for (action, map) in groups.into_values() {
        for (nr, rules) in &map {
            merge(&mut union, *nr, rules.clone());
        }
        if action != Action::Allow && !map.is_empty() {
            filters.push(build_filter(map, Action::Allow, action, arch)?);
        }
    }
    // Last: its errno is the one reported when it and an earlier filter both refuse a call.
    if default != Action::Allow {
        filters.push(build_filter(union, default, Action::Allow, arch)?);
    }
    Ok(BpfProgram { filters })
}

fn rule_applies(rule: &SyscallRule, caps: &CapSet, arch: Arch, kernel: (u32, u32)) -> bool {
    let (inc, exc) = (&rule.includes, &rule.excludes);
    let arch_name = arch.docker_name();
    (inc.arches.is_empty() || inc.arches.iter().any(|a| a == arch_name))
        && !exc.arches.iter().any(|a| a == arch_name)
        && inc.caps.iter().all(|c| caps.contains_name(c))
        && !exc.caps.iter().any(|c| caps.contains_name(c))
        && inc.min_kernel.is_none_or(|min| kernel >= min)
        && exc.min_kernel.is_none_or(|min| kernel < min)
}

/// The seccompiler rules for a rule's arguments: `Some(None)` matches any call, `None` never
/// matches (a masked comparison whose value has bits outside the mask).
fn rule_conditions(
    args: &[ArgCondition],
) -> Result<Option<Option<Vec<SeccompRule>>>, SeccompError> {
    if args.is_empty() {
        return Ok(Some(None));
    }
    let build = |conds: Vec<SeccompCondition>| {
        SeccompRule::new(conds).map_err(|e| SeccompError::Build(e.to_string()))
    };
    let repeated = args
        .iter()
        .enumerate()
        .any(|(i, a)| args[..i].iter().any(|b| b.index == a.index));
    let possible = args.iter().filter_map(|a| condition(a).transpose());
    let rules = if repeated {
        // runc: conditions on the same argument make one rule each (alternatives).
        possible
            .map(|c| build(vec![c?]))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        let conds = possible.collect::<Result<Vec<_>, _>>()?;
        if conds.len() < args.len() {
            Vec::new()
        } else {
            vec![build(conds)?]
        }
    };
    Ok(if rules.is_empty() {
        None
    } else {
        Some(Some(rules))
    })
}

fn condition(arg: &ArgCondition) -> Result<Option<SeccompCondition>, SeccompError> {
    let (op, value) = match arg.op {
        CmpOp::Ne => (SeccompCmpOp::Ne, arg.value),
        CmpOp::Lt => (SeccompCmpOp::Lt, arg.value),
        CmpOp::Le => (SeccompCmpOp::Le, arg.value),
        CmpOp::Eq => (SeccompCmpOp::Eq, arg.value),
        CmpOp::Ge => (SeccompCmpOp::Ge, arg.value),
        CmpOp::Gt => (SeccompCmpOp::Gt, arg.value),
        CmpOp::MaskedEq => {
            // seccompiler masks the value too; libseccomp does not, so such a rule never
            // matches there.
            if arg.value_two & !arg.value != 0 {
                return Ok(None);
            }
            (SeccompCmpOp::MaskedEq(arg.value), arg.value_two)
        }
    };
    SeccompCondition::new(arg.index, SeccompCmpArgLen::Qword, op, value)
        .map(Some)
        .map_err(|e| SeccompError::Build(e.to_string()))
}

fn build_filter(
    map: RuleMap,
    mismatch: Action,
    on_match: Action,
    arch: Arch,
) -> Result<Vec<seccompiler::sock_filter>, SeccompError> {
    let rules = map
        .into_iter()
        .map(|(nr, rules)| (nr, rules.unwrap_or_default()))
        .collect();
    let filter = SeccompFilter::new(
        rules,
        mismatch.to_seccompiler(),
        on_match.to_seccompiler(),
        arch.target(),
    )
    .map_err(|e| SeccompError::Build(e.to_string()))?;
    let prog: seccompiler::BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| SeccompError::Build(e.to_string()))?;
    if u16::try_from(prog.len()).is_err() {
        return Err(SeccompError::Build(format!("{} instructions", prog.len())));
    }
    Ok(prog)
}

/// Sets `no_new_privs` on the calling thread (`security_opt: no-new-privileges`). Without it,
/// [`apply`] needs `CAP_SYS_ADMIN`: install the filter before dropping capabilities.
pub fn set_no_new_privs() -> Result<(), SeccompError> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(SeccompError::NoNewPrivs(io::Error::last_os_error()));
    }
    Ok(())
}

/// Installs the filters on the calling thread, in order. One `seccomp(2)` call per filter on
/// memory built by [`compile`]: no allocation, safe between `fork` and `exec`. Does not set
/// `no_new_privs` (Docker does not either, unless asked): see [`set_no_new_privs`].
pub fn apply(prog: &BpfProgram) -> Result<(), SeccompError> {
    for filter in &prog.filters {
        let fprog = libc::sock_fprog {
            // Checked by `build_filter`.
            len: filter.len() as u16,
            // seccompiler's `sock_filter` is `repr(C)` with the kernel's layout, as libc's is.
            filter: filter.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `fprog` points to a valid program that outlives the call; the kernel copies it.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &fprog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(SeccompError::Apply(io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// The number of a system call of the native architecture.
fn syscall_number(name: &str) -> Option<i64> {
    SYSCALLS
        .iter()
        .find(|(n, _)| n.strip_prefix("SYS_") == Some(name))
        .map(|&(_, nr)| nr)
        .or_else(|| {
            EXTRA_SYSCALLS
                .iter()
                .chain(NEW_SYSCALLS)
                .find(|(n, _)| *n == name)
                .map(|&(_, nr)| nr)
        })
}

/// `libc::SYS_*` constants with their names.
macro_rules! syscall_table {
    ($($c:ident)*) => { &[$((stringify!($c), libc::$c)),*] };
}

// System calls that libc does not define (yet, or on every architecture); numbers from the
// kernel's tables. Since 424 the numbers are the same on every architecture.
const NEW_SYSCALLS: &[(&str, i64)] = &[
    ("cachestat", 451),
    ("fchmodat2", 452),
    ("map_shadow_stack", 453),
    ("futex_wake", 454),
    ("futex_wait", 455),
    ("futex_requeue", 456),
    ("statmount", 457),
    ("listmount", 458),
    ("lsm_get_self_attr", 459),
    ("lsm_set_self_attr", 460),
    ("lsm_list_modules", 461),
    ("setxattrat", 463),
    ("getxattrat", 464),
    ("listxattrat", 465),
    ("removexattrat", 466),
];
// Architecture-specific ones: uretprobe is x86_64's only (6.11); riscv_hwprobe, which the
// default profile also names, is riscv64's only, an architecture rcompose has no table for.
#[cfg(target_arch = "x86_64")]
const EXTRA_SYSCALLS: &[(&str, i64)] = &[("io_pgetevents", 333), ("uretprobe", 335)];
#[cfg(target_arch = "aarch64")]
const EXTRA_SYSCALLS: &[(&str, i64)] = &[("io_pgetevents", 292)];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const EXTRA_SYSCALLS: &[(&str, i64)] = &[];

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const SYSCALLS: &[(&str, i64)] = &[];

#[cfg(target_arch = "x86_64")]
const SYSCALLS: &[(&str, i64)] = syscall_table!(
        SYS__sysctl SYS_accept SYS_accept4 SYS_access SYS_acct SYS_add_key SYS_adjtimex
        SYS_afs_syscall SYS_alarm SYS_arch_prctl SYS_bind SYS_bpf SYS_brk SYS_capget
        SYS_capset SYS_chdir SYS_chmod SYS_chown SYS_chroot SYS_clock_adjtime
        SYS_clock_getres SYS_clock_gettime SYS_clock_nanosleep SYS_clock_settime SYS_clone
        SYS_clone3 SYS_close SYS_close_range SYS_connect SYS_copy_file_range SYS_creat
        SYS_delete_module SYS_dup SYS_dup2 SYS_dup3 SYS_epoll_create SYS_epoll_create1
        SYS_epoll_ctl SYS_epoll_ctl_old SYS_epoll_pwait SYS_epoll_pwait2 SYS_epoll_wait
        SYS_epoll_wait_old SYS_eventfd SYS_eventfd2 SYS_execve SYS_execveat SYS_exit
        SYS_exit_group SYS_faccessat SYS_faccessat2 SYS_fadvise64 SYS_fallocate
        SYS_fanotify_init SYS_fanotify_mark SYS_fchdir SYS_fchmod SYS_fchmodat SYS_fchmodat2
        SYS_fchown SYS_fchownat SYS_fcntl SYS_fdatasync SYS_fgetxattr SYS_finit_module
        SYS_flistxattr SYS_flock SYS_fork SYS_fremovexattr SYS_fsconfig SYS_fsetxattr
        SYS_fsmount SYS_fsopen SYS_fspick SYS_fstat SYS_fstatfs SYS_fsync SYS_ftruncate
        SYS_futex SYS_futex_waitv SYS_futimesat SYS_get_mempolicy SYS_get_robust_list
        SYS_get_thread_area SYS_getcpu SYS_getcwd SYS_getdents SYS_getdents64 SYS_getegid
        SYS_geteuid SYS_getgid SYS_getgroups SYS_getitimer SYS_getpeername SYS_getpgid
        SYS_getpgrp SYS_getpid SYS_getpmsg SYS_getppid SYS_getpriority SYS_getrandom
        SYS_getresgid SYS_getresuid SYS_getrlimit SYS_getrusage SYS_getsid SYS_getsockname
        SYS_getsockopt SYS_gettid SYS_gettimeofday SYS_getuid SYS_getxattr SYS_init_module
        SYS_inotify_add_watch SYS_inotify_init SYS_inotify_init1 SYS_inotify_rm_watch
        SYS_io_cancel SYS_io_destroy SYS_io_getevents SYS_io_setup SYS_io_submit
        SYS_io_uring_enter SYS_io_uring_register SYS_io_uring_setup SYS_ioctl SYS_ioperm
        SYS_iopl SYS_ioprio_get SYS_ioprio_set SYS_kcmp SYS_kexec_file_load SYS_kexec_load
        SYS_keyctl SYS_kill SYS_landlock_add_rule SYS_landlock_create_ruleset
        SYS_landlock_restrict_self SYS_lchown SYS_lgetxattr SYS_link SYS_linkat SYS_listen
        SYS_listxattr SYS_llistxattr SYS_lookup_dcookie SYS_lremovexattr SYS_lseek
        SYS_lsetxattr SYS_lstat SYS_madvise SYS_mbind SYS_membarrier SYS_memfd_create
        SYS_memfd_secret SYS_migrate_pages SYS_mincore SYS_mkdir SYS_mkdirat SYS_mknod
        SYS_mknodat SYS_mlock SYS_mlock2 SYS_mlockall SYS_mmap SYS_modify_ldt SYS_mount
        SYS_mount_setattr SYS_move_mount SYS_move_pages SYS_mprotect SYS_mq_getsetattr
        SYS_mq_notify SYS_mq_open SYS_mq_timedreceive SYS_mq_timedsend SYS_mq_unlink
        SYS_mremap SYS_mseal SYS_msgctl SYS_msgget SYS_msgrcv SYS_msgsnd SYS_msync
        SYS_munlock SYS_munlockall SYS_munmap SYS_name_to_handle_at SYS_nanosleep
        SYS_newfstatat SYS_nfsservctl SYS_open SYS_open_by_handle_at SYS_open_tree
        SYS_openat SYS_openat2 SYS_pause SYS_perf_event_open SYS_personality SYS_pidfd_getfd
        SYS_pidfd_open SYS_pidfd_send_signal SYS_pipe SYS_pipe2 SYS_pivot_root
        SYS_pkey_alloc SYS_pkey_free SYS_pkey_mprotect SYS_poll SYS_ppoll SYS_prctl
        SYS_pread64 SYS_preadv SYS_preadv2 SYS_prlimit64 SYS_process_madvise
        SYS_process_mrelease SYS_process_vm_readv SYS_process_vm_writev SYS_pselect6
        SYS_ptrace SYS_putpmsg SYS_pwrite64 SYS_pwritev SYS_pwritev2 SYS_quotactl
        SYS_quotactl_fd SYS_read SYS_readahead SYS_readlink SYS_readlinkat SYS_readv
        SYS_reboot SYS_recvfrom SYS_recvmmsg SYS_recvmsg SYS_remap_file_pages
        SYS_removexattr SYS_rename SYS_renameat SYS_renameat2 SYS_request_key
        SYS_restart_syscall SYS_rmdir SYS_rseq SYS_rt_sigaction SYS_rt_sigpending
        SYS_rt_sigprocmask SYS_rt_sigqueueinfo SYS_rt_sigreturn SYS_rt_sigsuspend
        SYS_rt_sigtimedwait SYS_rt_tgsigqueueinfo SYS_sched_get_priority_max
        SYS_sched_get_priority_min SYS_sched_getaffinity SYS_sched_getattr
        SYS_sched_getparam SYS_sched_getscheduler SYS_sched_rr_get_interval
        SYS_sched_setaffinity SYS_sched_setattr SYS_sched_setparam SYS_sched_setscheduler
        SYS_sched_yield SYS_seccomp SYS_security SYS_select SYS_semctl SYS_semget SYS_semop
        SYS_semtimedop SYS_sendfile SYS_sendmmsg SYS_sendmsg SYS_sendto SYS_set_mempolicy
        SYS_set_mempolicy_home_node SYS_set_robust_list SYS_set_thread_area
        SYS_set_tid_address SYS_setdomainname SYS_setfsgid SYS_setfsuid SYS_setgid
        SYS_setgroups SYS_sethostname SYS_setitimer SYS_setns SYS_setpgid SYS_setpriority
        SYS_setregid SYS_setresgid SYS_setresuid SYS_setreuid SYS_setrlimit SYS_setsid
        SYS_setsockopt SYS_settimeofday SYS_setuid SYS_setxattr SYS_shmat SYS_shmctl
        SYS_shmdt SYS_shmget SYS_shutdown SYS_sigaltstack SYS_signalfd SYS_signalfd4
        SYS_socket SYS_socketpair SYS_splice SYS_stat SYS_statfs SYS_statx SYS_swapoff
        SYS_swapon SYS_symlink SYS_symlinkat SYS_sync SYS_sync_file_range SYS_syncfs
        SYS_sysfs SYS_sysinfo SYS_syslog SYS_tee SYS_tgkill SYS_time SYS_timer_create
        SYS_timer_delete SYS_timer_getoverrun SYS_timer_gettime SYS_timer_settime
        SYS_timerfd_create SYS_timerfd_gettime SYS_timerfd_settime SYS_times SYS_tkill
        SYS_truncate SYS_tuxcall SYS_umask SYS_umount2 SYS_uname SYS_unlink SYS_unlinkat
        SYS_unshare SYS_uselib SYS_userfaultfd SYS_ustat SYS_utime SYS_utimensat SYS_utimes
        SYS_vfork SYS_vhangup SYS_vmsplice SYS_vserver SYS_wait4 SYS_waitid SYS_write
        SYS_writev
);

#[cfg(target_arch = "aarch64")]
const SYSCALLS: &[(&str, i64)] = syscall_table!(
        SYS_accept SYS_accept4 SYS_acct SYS_add_key SYS_adjtimex SYS_bind SYS_bpf SYS_brk
        SYS_capget SYS_capset SYS_chdir SYS_chroot SYS_clock_adjtime SYS_clock_getres
        SYS_clock_gettime SYS_clock_nanosleep SYS_clock_settime SYS_clone SYS_clone3
        SYS_close SYS_close_range SYS_connect SYS_copy_file_range SYS_delete_module SYS_dup
        SYS_dup3 SYS_epoll_create1 SYS_epoll_ctl SYS_epoll_pwait SYS_epoll_pwait2
        SYS_eventfd2 SYS_execve SYS_execveat SYS_exit SYS_exit_group SYS_faccessat
        SYS_faccessat2 SYS_fadvise64 SYS_fallocate SYS_fanotify_init SYS_fanotify_mark
        SYS_fchdir SYS_fchmod SYS_fchmodat SYS_fchown SYS_fchownat SYS_fcntl SYS_fdatasync
        SYS_fgetxattr SYS_finit_module SYS_flistxattr SYS_flock SYS_fremovexattr
        SYS_fsconfig SYS_fsetxattr SYS_fsmount SYS_fsopen SYS_fspick SYS_fstat SYS_fstatfs
        SYS_fsync SYS_ftruncate SYS_futex SYS_futex_waitv SYS_get_mempolicy
        SYS_get_robust_list SYS_getcpu SYS_getcwd SYS_getdents64 SYS_getegid SYS_geteuid
        SYS_getgid SYS_getgroups SYS_getitimer SYS_getpeername SYS_getpgid SYS_getpid
        SYS_getppid SYS_getpriority SYS_getrandom SYS_getresgid SYS_getresuid SYS_getrlimit
        SYS_getrusage SYS_getsid SYS_getsockname SYS_getsockopt SYS_gettid SYS_gettimeofday
        SYS_getuid SYS_getxattr SYS_init_module SYS_inotify_add_watch SYS_inotify_init1
        SYS_inotify_rm_watch SYS_io_cancel SYS_io_destroy SYS_io_getevents SYS_io_setup
        SYS_io_submit SYS_io_uring_enter SYS_io_uring_register SYS_io_uring_setup SYS_ioctl
        SYS_ioprio_get SYS_ioprio_set SYS_kcmp SYS_kexec_file_load SYS_kexec_load SYS_keyctl
        SYS_kill SYS_landlock_add_rule SYS_landlock_create_ruleset
        SYS_landlock_restrict_self SYS_lgetxattr SYS_linkat SYS_listen SYS_listxattr
        SYS_llistxattr SYS_lookup_dcookie SYS_lremovexattr SYS_lseek SYS_lsetxattr
        SYS_madvise SYS_mbind SYS_membarrier SYS_memfd_create SYS_memfd_secret
        SYS_migrate_pages SYS_mincore SYS_mkdirat SYS_mknodat SYS_mlock SYS_mlock2
        SYS_mlockall SYS_mmap SYS_mount SYS_mount_setattr SYS_move_mount SYS_move_pages
        SYS_mprotect SYS_mq_getsetattr SYS_mq_notify SYS_mq_open SYS_mq_timedreceive
        SYS_mq_timedsend SYS_mq_unlink SYS_mremap SYS_mseal SYS_msgctl SYS_msgget SYS_msgrcv
        SYS_msgsnd SYS_msync SYS_munlock SYS_munlockall SYS_munmap SYS_name_to_handle_at
        SYS_nanosleep SYS_newfstatat SYS_nfsservctl SYS_open_by_handle_at SYS_open_tree
        SYS_openat SYS_openat2 SYS_perf_event_open SYS_personality SYS_pidfd_getfd
        SYS_pidfd_open SYS_pidfd_send_signal SYS_pipe2 SYS_pivot_root SYS_pkey_alloc
        SYS_pkey_free SYS_pkey_mprotect SYS_ppoll SYS_prctl SYS_pread64 SYS_preadv
        SYS_preadv2 SYS_prlimit64 SYS_process_madvise SYS_process_mrelease
        SYS_process_vm_readv SYS_process_vm_writev SYS_pselect6 SYS_ptrace SYS_pwrite64
        SYS_pwritev SYS_pwritev2 SYS_quotactl SYS_quotactl_fd SYS_read SYS_readahead
        SYS_readlinkat SYS_readv SYS_reboot SYS_recvfrom SYS_recvmmsg SYS_recvmsg
        SYS_remap_file_pages SYS_removexattr SYS_renameat SYS_renameat2 SYS_request_key
        SYS_restart_syscall SYS_rseq SYS_rt_sigaction SYS_rt_sigpending SYS_rt_sigprocmask
        SYS_rt_sigqueueinfo SYS_rt_sigreturn SYS_rt_sigsuspend SYS_rt_sigtimedwait
        SYS_rt_tgsigqueueinfo SYS_sched_get_priority_max SYS_sched_get_priority_min
        SYS_sched_getaffinity SYS_sched_getattr SYS_sched_getparam SYS_sched_getscheduler
        SYS_sched_rr_get_interval SYS_sched_setaffinity SYS_sched_setattr SYS_sched_setparam
        SYS_sched_setscheduler SYS_sched_yield SYS_seccomp SYS_semctl SYS_semget SYS_semop
        SYS_semtimedop SYS_sendfile SYS_sendmmsg SYS_sendmsg SYS_sendto SYS_set_mempolicy
        SYS_set_mempolicy_home_node SYS_set_robust_list SYS_set_tid_address
        SYS_setdomainname SYS_setfsgid SYS_setfsuid SYS_setgid SYS_setgroups SYS_sethostname
        SYS_setitimer SYS_setns SYS_setpgid SYS_setpriority SYS_setregid SYS_setresgid
        SYS_setresuid SYS_setreuid SYS_setrlimit SYS_setsid SYS_setsockopt SYS_settimeofday
        SYS_setuid SYS_setxattr SYS_shmat SYS_shmctl SYS_shmdt SYS_shmget SYS_shutdown
        SYS_sigaltstack SYS_signalfd4 SYS_socket SYS_socketpair SYS_splice SYS_statfs
        SYS_statx SYS_swapoff SYS_swapon SYS_symlinkat SYS_sync SYS_sync_file_range
        SYS_syncfs SYS_sysinfo SYS_syslog SYS_tee SYS_tgkill SYS_timer_create
        SYS_timer_delete SYS_timer_getoverrun SYS_timer_gettime SYS_timer_settime
        SYS_timerfd_create SYS_timerfd_gettime SYS_timerfd_settime SYS_times SYS_tkill
        SYS_truncate SYS_umask SYS_umount2 SYS_uname SYS_unlinkat SYS_unshare
        SYS_userfaultfd SYS_utimensat SYS_vhangup SYS_vmsplice SYS_wait4 SYS_waitid
        SYS_write SYS_writev
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::caps::Capability;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    const KERNEL: (u32, u32) = (6, 18);
    const EPERM: u32 = libc::SECCOMP_RET_ERRNO | 1;
    const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | 38;
    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;

    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xC000_003E;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xC000_00B7;

    /// Runs one classic BPF program (the subset seccompiler emits) on a `seccomp_data`.
    fn run_filter(prog: &[seccompiler::sock_filter], nr: i64, args: [u64; 6]) -> u32 {
        let load = |off: u32| -> u32 {
            match off {
                0 => nr as u32,
                4 => AUDIT_ARCH,
                16..=63 => {
                    let arg = args[((off - 16) / 8) as usize];
                    if (off - 16) % 8 == 4 {
                        (arg >> 32) as u32
                    } else {
                        arg as u32
                    }
                }
                _ => panic!("load at {off}"),
            }
        };
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let ins = &prog[pc];
            pc += 1;
            match ins.code & 0x07 {
                0x00 => acc = load(ins.k),
                0x04 if ins.code & 0xf0 == 0x50 => acc &= ins.k,
                0x05 => {
                    let taken = match ins.code & 0xf0 {
                        0x00 => {
                            pc += ins.k as usize;
                            continue;
                        }
                        0x10 => acc == ins.k,
                        0x20 => acc > ins.k,
                        0x30 => acc >= ins.k,
                        0x40 => acc & ins.k != 0,
                        op => panic!("jump {op:#x}"),
                    };
                    pc += usize::from(if taken { ins.jt } else { ins.jf });
                }
                0x06 => return ins.k,
                _ => panic!("instruction {:#x}", ins.code),
            }
        }
    }

    /// The kernel's verdict for a stack: newest first, the most restrictive action wins.
    fn verdict(prog: &BpfProgram, name: &str, args: [u64; 6]) -> u32 {
        let nr = syscall_number(name).unwrap_or_else(|| panic!("no syscall {name}"));
        let mut ret = ALLOW;
        for (i, filter) in prog.filters.iter().rev().enumerate() {
            let r = run_filter(filter, nr, args);
            let action = |v: u32| (v & libc::SECCOMP_RET_ACTION_FULL) as i32;
            if i == 0 || action(r) < action(ret) {
                ret = r;
            }
        }
        ret
    }

    fn a(first: u64) -> [u64; 6] {
        [first, 0, 0, 0, 0, 0]
    }

    fn default_prog(caps: CapSet) -> BpfProgram {
        compile_for_kernel(&Profile::docker_default(), &caps, native(), KERNEL).unwrap()
    }

    fn native() -> Arch {
        Arch::native().unwrap()
    }

    fn with(extra: &[Capability]) -> CapSet {
        let mut caps = CapSet::docker_default();
        extra.iter().for_each(|c| caps.insert(*c));
        caps
    }

    #[test]
    fn builtin_profile_is_dockers() {
        let p = Profile::docker_default();
        assert_eq!(p.default_action, Action::Errno(1));
        assert_eq!(p.syscalls.len(), 33);
        assert_eq!(p.syscalls[0].names.len(), 361);
        assert_eq!(p.syscalls[17].names.len(), 26);
        assert_eq!(p.syscalls[0].action, Action::Allow);
        let clone = &p.syscalls[18];
        assert_eq!(clone.names, ["clone"]);
        assert_eq!(
            clone.args,
            [ArgCondition {
                index: 0,
                value: 0x7E02_0000,
                value_two: 0,
                op: CmpOp::MaskedEq
            }]
        );
        assert_eq!(clone.excludes.caps, ["CAP_SYS_ADMIN"]);
        assert_eq!(p.syscalls[20].names, ["clone3"]);
        assert_eq!(p.syscalls[20].action, Action::Errno(38));
        assert_eq!(p.syscalls[1].includes.min_kernel, Some((4, 8)));
    }

    /// The built-in profile is rule for rule moby's `profiles/seccomp/default.json` (last
    /// compared: github.com/moby/profiles seccomp v0.2.3, which moby master vendors, 2026-08):
    /// nothing it allows is missing, nothing it denies is allowed. moby's file is not part of
    /// this repository: run with `RCOMPOSE_MOBY_SECCOMP=<its default.json> cargo test --lib --
    /// --ignored builtin_profile_equals_mobys_default_json` when moby's profile changes.
    #[test]
    #[ignore = "needs a copy of moby's default.json in RCOMPOSE_MOBY_SECCOMP"]
    fn builtin_profile_equals_mobys_default_json() {
        let path = std::env::var("RCOMPOSE_MOBY_SECCOMP")
            .expect("RCOMPOSE_MOBY_SECCOMP: the path of moby's profiles/seccomp/default.json");
        let text = std::fs::read_to_string(&path).expect("read moby's default.json");
        let moby = Profile::from_json(&text, "moby default.json").unwrap();
        let ours = Profile::docker_default();
        assert_eq!(ours.default_action, moby.default_action);
        assert_eq!(ours.syscalls.len(), moby.syscalls.len());
        for (i, (o, m)) in ours.syscalls.iter().zip(&moby.syscalls).enumerate() {
            let missing: Vec<_> = m.names.iter().filter(|n| !o.names.contains(n)).collect();
            let extra: Vec<_> = o.names.iter().filter(|n| !m.names.contains(n)).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "rule {i}: moby's only {missing:?}, ours only {extra:?}"
            );
            assert_eq!(o, m, "rule {i}");
        }
    }

    /// Every name of the default profile has a number here, except those this architecture's
    /// kernel does not have (32-bit variants, other architectures' calls): a name missing from
    /// the table is silently skipped, i.e. denied.
    #[test]
    fn default_profile_names_have_numbers() {
        let p = Profile::docker_default();
        let mut unknown: Vec<&str> = p
            .syscalls
            .iter()
            .flat_map(|r| &r.names)
            .map(String::as_str)
            .filter(|n| syscall_number(n).is_none())
            .collect();
        unknown.sort_unstable();
        unknown.dedup();
        assert_eq!(unknown, NOT_ON_THIS_ARCH);
    }

    // Checked against the kernel's arch/x86/entry/syscalls/syscall_64.tbl.
    #[cfg(target_arch = "x86_64")]
    const NOT_ON_THIS_ARCH: &[&str] = &[
        "_llseek",
        "_newselect",
        "arm_fadvise64_64",
        "arm_sync_file_range",
        "breakpoint",
        "cacheflush",
        "chown32",
        "clock_adjtime64",
        "clock_getres_time64",
        "clock_gettime64",
        "clock_nanosleep_time64",
        "clock_settime64",
        "fadvise64_64",
        "fchown32",
        "fcntl64",
        "fstat64",
        "fstatat64",
        "fstatfs64",
        "ftruncate64",
        "futex_time64",
        "getegid32",
        "geteuid32",
        "getgid32",
        "getgroups32",
        "getresgid32",
        "getresuid32",
        "getuid32",
        "io_pgetevents_time64",
        "ipc",
        "lchown32",
        "lstat64",
        "mmap2",
        "mq_timedreceive_time64",
        "mq_timedsend_time64",
        "ppoll_time64",
        "pselect6_time64",
        "recv",
        "recvmmsg_time64",
        "riscv_flush_icache",
        "riscv_hwprobe",
        "rt_sigtimedwait_time64",
        "s390_pci_mmio_read",
        "s390_pci_mmio_write",
        "s390_runtime_instr",
        "sched_rr_get_interval_time64",
        "semtimedop_time64",
        "send",
        "sendfile64",
        "set_tls",
        "setfsgid32",
        "setfsuid32",
        "setgid32",
        "setgroups32",
        "setregid32",
        "setresgid32",
        "setresuid32",
        "setreuid32",
        "setuid32",
        "sigprocmask",
        "sigreturn",
        "socketcall",
        "stat64",
        "statfs64",
        "stime",
        "swapcontext",
        "sync_file_range2",
        "timer_gettime64",
        "timer_settime64",
        "timerfd_gettime64",
        "timerfd_settime64",
        "truncate64",
        "ugetrlimit",
        "umount",
        "utimensat_time64",
        "waitpid",
    ];

    // Checked against scripts/syscall.tbl with arm64's ABIs (common, 64, renameat, rlimit,
    // memfd_secret).
    #[cfg(target_arch = "aarch64")]
    const NOT_ON_THIS_ARCH: &[&str] = &[
        "_llseek",
        "_newselect",
        "access",
        "alarm",
        "arch_prctl",
        "arm_fadvise64_64",
        "arm_sync_file_range",
        "breakpoint",
        "cacheflush",
        "chmod",
        "chown",
        "chown32",
        "clock_adjtime64",
        "clock_getres_time64",
        "clock_gettime64",
        "clock_nanosleep_time64",
        "clock_settime64",
        "creat",
        "dup2",
        "epoll_create",
        "epoll_ctl_old",
        "epoll_wait",
        "epoll_wait_old",
        "eventfd",
        "fadvise64_64",
        "fchown32",
        "fcntl64",
        "fork",
        "fstat64",
        "fstatat64",
        "fstatfs64",
        "ftruncate64",
        "futex_time64",
        "futimesat",
        "get_thread_area",
        "getdents",
        "getegid32",
        "geteuid32",
        "getgid32",
        "getgroups32",
        "getpgrp",
        "getresgid32",
        "getresuid32",
        "getuid32",
        "inotify_init",
        "io_pgetevents_time64",
        "ioperm",
        "iopl",
        "ipc",
        "lchown",
        "lchown32",
        "link",
        "lstat",
        "lstat64",
        "mkdir",
        "mknod",
        "mmap2",
        "modify_ldt",
        "mq_timedreceive_time64",
        "mq_timedsend_time64",
        "open",
        "pause",
        "pipe",
        "poll",
        "ppoll_time64",
        "pselect6_time64",
        "readlink",
        "recv",
        "recvmmsg_time64",
        "rename",
        "riscv_flush_icache",
        "riscv_hwprobe",
        "rmdir",
        "rt_sigtimedwait_time64",
        "s390_pci_mmio_read",
        "s390_pci_mmio_write",
        "s390_runtime_instr",
        "sched_rr_get_interval_time64",
        "select",
        "semtimedop_time64",
        "send",
        "sendfile64",
        "set_thread_area",
        "set_tls",
        "setfsgid32",
        "setfsuid32",
        "setgid32",
        "setgroups32",
        "setregid32",
        "setresgid32",
        "setresuid32",
        "setreuid32",
        "setuid32",
        "signalfd",
        "sigprocmask",
        "sigreturn",
        "socketcall",
        "stat",
        "stat64",
        "statfs64",
        "stime",
        "swapcontext",
        "symlink",
        "sync_file_range2",
        "time",
        "timer_gettime64",
        "timer_settime64",
        "timerfd_gettime64",
        "timerfd_settime64",
        "truncate64",
        "ugetrlimit",
        "umount",
        "unlink",
        "uretprobe",
        "utime",
        "utimensat_time64",
        "utimes",
        "vfork",
        "waitpid",
    ];

    /// The hand-written numbers never contradict libc's.
    #[test]
    fn extra_numbers_agree_with_libc() {
        for &(name, nr) in EXTRA_SYSCALLS.iter().chain(NEW_SYSCALLS) {
            assert_eq!(syscall_number(name), Some(nr), "{name}");
        }
    }

    #[test]
    fn default_profile_decisions() {
        let prog = default_prog(CapSet::docker_default());
        // clone3 gets its own ENOSYS filter, then the default filter.
        assert_eq!(prog.filter_count(), 2);
        for name in [
            "read",
            "write",
            "execve",
            "openat",
            "chroot",
            "ptrace",
            "io_pgetevents",
            // Newer calls docker's profile allows (glibc >= 2.39 uses fchmodat2).
            "cachestat",
            "fchmodat2",
            "map_shadow_stack",
            "futex_wake",
            "futex_wait",
            "futex_requeue",
            "statmount",
            "listmount",
            "mseal",
            "setxattrat",
            "getxattrat",
            "listxattrat",
            "removexattrat",
        ] {
            assert_eq!(verdict(&prog, name, a(0)), ALLOW, "{name}");
        }
        #[cfg(target_arch = "x86_64")]
        assert_eq!(verdict(&prog, "uretprobe", a(0)), ALLOW);
        for name in [
            "keyctl",
            "add_key",
            "request_key",
            "unshare",
            "mount",
            "reboot",
            "setns",
            "lsm_get_self_attr",
            "lsm_set_self_attr",
            "lsm_list_modules",
        ] {
            assert_eq!(verdict(&prog, name, a(0)), EPERM, "{name}");
        }
        for persona in [0, 8, 0x20000, 0x20008, 0xffff_ffff] {
            assert_eq!(
                verdict(&prog, "personality", a(persona)),
                ALLOW,
                "{persona:#x}"
            );
        }
        assert_eq!(verdict(&prog, "personality", a(1)), EPERM);
        assert_eq!(verdict(&prog, "socket", a(libc::AF_INET as u64)), ALLOW);
        assert_eq!(verdict(&prog, "socket", a(libc::AF_VSOCK as u64)), EPERM);
        // As current docker: no AF_ALG sockets, no io_uring (its requests bypass seccomp).
        assert_eq!(verdict(&prog, "socket", a(libc::AF_ALG as u64)), EPERM);
        for family in [libc::AF_NFC, 41, libc::AF_PACKET, libc::AF_UNIX] {
            assert_eq!(
                verdict(&prog, "socket", a(family as u64)),
                ALLOW,
                "{family}"
            );
        }
        for name in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
            assert_eq!(verdict(&prog, name, a(0)), EPERM, "{name}");
        }
        let sigchld = libc::SIGCHLD as u64;
        let thread = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
        assert_eq!(verdict(&prog, "clone", a(sigchld)), ALLOW);
        assert_eq!(verdict(&prog, "clone", a(thread)), ALLOW);
        for ns in [
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWNS,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWPID,
        ] {
            assert_eq!(
                verdict(&prog, "clone", a(sigchld | ns as u64)),
                EPERM,
                "{ns:#x}"
            );
        }
        // 64-bit arguments are compared whole.
        assert_eq!(verdict(&prog, "personality", a(1 << 32)), EPERM);
        // glibc falls back to clone when clone3 says ENOSYS.
        assert_eq!(verdict(&prog, "clone3", a(0)), ENOSYS);
    }

    #[test]
    fn capability_conditioned_rules() {
        let admin = default_prog(with(&[Capability::CAP_SYS_ADMIN]));
        assert_eq!(admin.filter_count(), 1);
        for name in [
            "unshare",
            "mount",
            "setns",
            "clone3",
            "bpf",
            "sethostname",
            "lsm_set_self_attr",
        ] {
            assert_eq!(verdict(&admin, name, a(0)), ALLOW, "{name}");
        }
        assert_eq!(
            verdict(&admin, "clone", a(libc::CLONE_NEWUSER as u64)),
            ALLOW
        );
        assert_eq!(verdict(&admin, "keyctl", a(0)), EPERM);

        let cases: [(Capability, &[&str]); 7] = [
            (Capability::CAP_SYS_BOOT, &["reboot"]),
            (Capability::CAP_SYS_TIME, &["settimeofday", "clock_settime"]),
            (
                Capability::CAP_SYS_MODULE,
                &["init_module", "finit_module", "delete_module"],
            ),
            (
                Capability::CAP_SYS_PTRACE,
                &["kcmp", "pidfd_getfd", "process_madvise"],
            ),
            (Capability::CAP_DAC_READ_SEARCH, &["open_by_handle_at"]),
            (Capability::CAP_SYS_NICE, &["mbind", "set_mempolicy"]),
            (Capability::CAP_SYS_RAWIO, &["iopl", "ioperm"]),
        ];
        let plain = default_prog(CapSet::docker_default());
        for (cap, names) in cases {
            let prog = default_prog(with(&[cap]));
            for name in names {
                assert_eq!(verdict(&plain, name, a(0)), EPERM, "{name} without {cap}");
                assert_eq!(verdict(&prog, name, a(0)), ALLOW, "{name} with {cap}");
            }
        }
        // chroot is tied to CAP_SYS_CHROOT, which the default set has.
        let mut no_chroot = CapSet::docker_default();
        no_chroot.remove(Capability::CAP_SYS_CHROOT);
        assert_eq!(verdict(&default_prog(no_chroot), "chroot", a(0)), EPERM);
    }

    #[test]
    fn min_kernel_is_honoured() {
        let caps = CapSet::docker_default();
        let old = compile_for_kernel(&Profile::docker_default(), &caps, native(), (4, 4)).unwrap();
        assert_eq!(verdict(&old, "ptrace", a(0)), EPERM);
        let new = compile_for_kernel(&Profile::docker_default(), &caps, native(), (4, 8)).unwrap();
        assert_eq!(verdict(&new, "ptrace", a(0)), ALLOW);
    }

    const CUSTOM: &str = r#"{
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"name": "mkdir", "names": ["rmdir", "no_such_call"], "action": "SCMP_ACT_ERRNO",
             "errnoRet": 13},
            {"names": ["kill"], "action": "SCMP_ACT_KILL_PROCESS",
             "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]},
            {"names": ["fchmod"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": 420, "op": "SCMP_CMP_EQ"},
                      {"index": 1, "value": 384, "op": "SCMP_CMP_EQ"}]},
            {"names": ["fchown"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"},
                      {"index": 2, "value": 1000, "op": "SCMP_CMP_GE"}]},
            {"names": ["dup3"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 2, "value": 1, "valueTwo": 2, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["chdir"], "action": "SCMP_ACT_ALLOW"}
        ]
    }"#;

    #[test]
    fn custom_profile_semantics() {
        let p = Profile::from_json(CUSTOM, "custom.json").unwrap();
        assert_eq!(p.syscalls[0].names, ["rmdir", "no_such_call", "mkdir"]);
        let prog = compile_for_kernel(&p, &CapSet::empty(), native(), KERNEL).unwrap();
        // One filter per action (EACCES, KILL_PROCESS, EPERM); a default allow needs no
        // default filter and the rule with the default action is dropped.
        assert_eq!(prog.filter_count(), 3);
        let eacces = libc::SECCOMP_RET_ERRNO | 13;
        let eperm = EPERM;
        assert_eq!(verdict(&prog, "mkdir", a(0)), eacces);
        assert_eq!(verdict(&prog, "rmdir", a(0)), eacces);
        assert_eq!(verdict(&prog, "chdir", a(0)), ALLOW);
        assert_eq!(
            verdict(&prog, "kill", [1, 9, 0, 0, 0, 0]),
            libc::SECCOMP_RET_KILL_PROCESS
        );
        assert_eq!(verdict(&prog, "kill", [1, 15, 0, 0, 0, 0]), ALLOW);
        // Conditions on the same argument are alternatives...
        assert_eq!(verdict(&prog, "fchmod", [3, 0o644, 0, 0, 0, 0]), eperm);
        assert_eq!(verdict(&prog, "fchmod", [3, 0o600, 0, 0, 0, 0]), eperm);
        assert_eq!(verdict(&prog, "fchmod", [3, 0o755, 0, 0, 0, 0]), ALLOW);
        // ...on different arguments they all must hold.
        assert_eq!(verdict(&prog, "fchown", [3, 0, 1000, 0, 0, 0]), eperm);
        assert_eq!(verdict(&prog, "fchown", [3, 0, 999, 0, 0, 0]), ALLOW);
        assert_eq!(verdict(&prog, "fchown", [3, 1, 1000, 0, 0, 0]), ALLOW);
        // A masked comparison whose value has bits outside the mask never matches.
        assert_eq!(verdict(&prog, "dup3", [0, 1, 2, 0, 0, 0]), ALLOW);
        assert_eq!(verdict(&prog, "dup3", [0, 1, 3, 0, 0, 0]), ALLOW);
    }

    #[test]
    fn errno_default_and_other_actions() {
        let json = r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_TRAP"},
            {"names": ["read"], "action": "SCMP_ACT_LOG"},
            {"names": ["write"], "action": "SCMP_ACT_ALLOW"}]}"#;
        let p = Profile::from_json(json, "p").unwrap();
        assert_eq!(p.default_action, Action::Errno(1));
        let prog = compile_for_kernel(&p, &CapSet::empty(), native(), KERNEL).unwrap();
        assert_eq!(verdict(&prog, "getpid", a(0)), libc::SECCOMP_RET_TRAP);
        assert_eq!(verdict(&prog, "read", a(0)), libc::SECCOMP_RET_LOG);
        assert_eq!(verdict(&prog, "write", a(0)), ALLOW);
        assert_eq!(verdict(&prog, "close", a(0)), EPERM);
    }

    #[test]
    fn parse_errors_say_where() {
        let err = |json: &str| Profile::from_json(json, "p.json").unwrap_err().to_string();
        let e = err(r#"{"defaultAction": "SCMP_ACT_NOPE"}"#);
        assert_eq!(
            e,
            "invalid seccomp profile p.json: defaultAction: unknown action \"SCMP_ACT_NOPE\""
        );
        let e = err(r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#);
        assert!(e.contains("SCMP_ACT_NOTIFY is not supported"), "{e}");
        let e = err(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"],
            "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
        );
        assert!(e.contains("syscalls[0]: args[0]: argument index 6"), "{e}");
        let e = err(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"],
            "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_LIKE"}]}]}"#,
        );
        assert!(e.contains("unknown comparison \"SCMP_CMP_LIKE\""), "{e}");
        let e = err(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]}"#,
        );
        assert!(e.contains("syscalls[0]: no syscall names"), "{e}");
        let e = err(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"],
            "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "four"}}]}"#,
        );
        assert!(e.contains("includes: invalid minKernel \"four\""), "{e}");
        let e = err(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": "read",
            "action": "SCMP_ACT_ALLOW"}]}"#,
        );
        assert!(
            e.starts_with("invalid seccomp profile p.json: syscalls[0].names: "),
            "{e}"
        );
        assert!(err("{").contains("p.json"));
    }

    #[test]
    fn other_architectures_are_refused() {
        let other = match native() {
            Arch::X86_64 => Arch::Aarch64,
            Arch::Aarch64 => Arch::X86_64,
        };
        let err = compile_for_kernel(&Profile::docker_default(), &CapSet::empty(), other, KERNEL)
            .unwrap_err();
        assert!(matches!(err, SeccompError::UnsupportedArch(a) if a == other));
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel_version("6.18.0-1-amd64"), Some((6, 18)));
        assert_eq!(parse_kernel_version("4.8"), Some((4, 8)));
        assert_eq!(parse_kernel_version("5"), Some((5, 0)));
        assert_eq!(parse_kernel_version("x.1"), None);
        assert!(running_kernel().is_ok());
    }

    #[test]
    fn security_opt_choices() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.json"), CUSTOM).unwrap();
        let opts = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let base = dir.path();
        let default = Some(Profile::docker_default());
        assert_eq!(profile_for(&[], false, base).unwrap(), default);
        assert_eq!(
            profile_for(&opts(&["seccomp=builtin"]), false, base).unwrap(),
            default
        );
        assert_eq!(
            profile_for(&opts(&["no-new-privileges"]), false, base).unwrap(),
            default
        );
        assert_eq!(
            profile_for(&opts(&["seccomp=unconfined"]), false, base).unwrap(),
            None
        );
        assert_eq!(
            profile_for(&opts(&["seccomp:unconfined"]), false, base).unwrap(),
            None
        );
        assert_eq!(profile_for(&[], true, base).unwrap(), None);
        let custom = profile_for(
            &opts(&["seccomp=unconfined", "seccomp=p.json"]),
            false,
            base,
        )
        .unwrap()
        .unwrap();
        assert_eq!(custom.default_action, Action::Allow);
        let e = profile_for(&opts(&["seccomp=missing.json"]), false, base).unwrap_err();
        assert!(
            e.to_string().starts_with("cannot read seccomp profile "),
            "{e}"
        );
        assert!(e.to_string().contains("missing.json"), "{e}");
        let e = profile_for(&opts(&["seccomp="]), false, base).unwrap_err();
        assert!(
            e.to_string().contains("invalid security_opt \"seccomp=\""),
            "{e}"
        );
    }

    fn os_error(e: SeccompError) -> io::Error {
        match e {
            SeccompError::Apply(e) | SeccompError::NoNewPrivs(e) => e,
            _ => io::Error::from_raw_os_error(libc::EINVAL),
        }
    }

    /// Prints the errno of denied calls, then forks, starts a thread and prints 1.
    fn probe_script() -> String {
        format!(
            "import ctypes, os, threading\n\
             libc = ctypes.CDLL(None, use_errno=True)\n\
             def call(nr, *args):\n    \
                 return 0 if libc.syscall(nr, *args) == 0 else ctypes.get_errno()\n\
             print('add_key', call({add_key}, 0, 0, 0, 0, 0))\n\
             print('keyctl', call({keyctl}, 0, 0, 0, 0, 0))\n\
             print('unshare', call({unshare}, {newuser}))\n\
             t = threading.Thread(target=lambda: None); t.start(); t.join()\n\
             pid = os.fork()\n\
             if pid == 0: os._exit(7)\n\
             print('fork', os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n\
             print(1)\n",
            add_key = libc::SYS_add_key,
            keyctl = libc::SYS_keyctl,
            unshare = libc::SYS_unshare,
            newuser = libc::CLONE_NEWUSER,
        )
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    /// Root only: the default filter, installed after fork, denies and allows for real.
    #[test]
    fn default_profile_in_a_child() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let prog = compile(
            &Profile::docker_default(),
            &CapSet::docker_default(),
            native(),
        )
        .unwrap();
        let mut cmd = Command::new("python3");
        cmd.args(["-c", &probe_script()]);
        // SAFETY: only prctl/seccomp syscalls on memory built before the fork.
        unsafe {
            cmd.pre_exec(move || {
                set_no_new_privs().map_err(os_error)?;
                apply(&prog).map_err(os_error)
            });
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "add_key 1\nkeyctl 1\nunshare 1\nfork 7\n1\n"
        );

        // Without the filter the same calls are not refused with EPERM.
        let out = Command::new("python3")
            .args(["-c", &probe_script()])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("unshare 0\n"), "{stdout}");
        assert!(!stdout.contains("add_key 1\n"), "{stdout}");
    }

    /// Root only: as the runtime does without no-new-privileges, the filter goes in while
    /// CAP_SYS_ADMIN is held, then the capabilities are dropped.
    #[test]
    fn filter_then_caps_without_no_new_privs() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let caps = CapSet::docker_default();
        let prog = compile(&Profile::docker_default(), &caps, native()).unwrap();
        let count = prog.filter_count();
        let prepared = caps.prepare().unwrap();
        let mut cmd = Command::new("cat");
        cmd.arg("/proc/self/status");
        // SAFETY: only syscalls on memory built before the fork.
        unsafe {
            cmd.pre_exec(move || {
                apply(&prog).map_err(os_error)?;
                prepared
                    .apply()
                    .map_err(|_| io::Error::from_raw_os_error(libc::EPERM))
            });
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let status = String::from_utf8_lossy(&out.stdout);
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim().to_string())
        };
        assert_eq!(field("NoNewPrivs:").as_deref(), Some("0"), "{status}");
        assert_eq!(field("Seccomp:").as_deref(), Some("2"));
        assert_eq!(field("Seccomp_filters:"), Some(count.to_string()));
        assert_eq!(field("CapEff:").as_deref(), Some("00000000a80425fb"));
    }
}
