//! The few rules rcompose adds to firewall chains it does not own, so its bridges keep working
//! on a host whose iptables `filter` table drops forwarded traffic (Docker sets the FORWARD
//! policy to DROP and creates `DOCKER-USER`; br_netfilter makes even traffic between two
//! containers of one bridge pass FORWARD).
//!
//! In nftables an accept in one base chain does not override a drop in another base chain at the
//! same hook: every base chain at the forward hook must accept a packet for it to pass. So the
//! accepts in rcompose's own table (firewall.rs) are not enough, and rcompose adds, per bridge
//! of the project, accepts into `DOCKER-USER` (the chain Docker reserves for users' rules,
//! jumped to first from FORWARD) when it exists, else at the top of FORWARD:
//!
//! - `-i BRIDGE -j ACCEPT` (out of the bridge: to the outside, and within the bridge);
//! - `-o BRIDGE -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT` (replies);
//! - `-o BRIDGE -m conntrack --ctstate DNAT -j ACCEPT` (published ports).
//!
//! An `internal` network only gets `-i BRIDGE -o BRIDGE -j ACCEPT`. rcompose's own table still
//! drops what isolation and internal networks forbid: its drops stay final.
//!
//! The rules are added with the `iptables` binaries (iptables-nft and iptables-legacy, whichever
//! holds a `filter` table that drops forwarded traffic; for networks with IPv6 the same with
//! ip6tables-nft and ip6tables-legacy, as Docker 27 drops in ip6tables too), not as native nft
//! rules in
//! iptables-nft's tables: those tables belong to iptables, which rewrites them whole and warns
//! against touching them. Each rule carries the comment `rcompose:<project>`, so `down` removes
//! exactly the project's rules (also after a crash: they are found by their comment), and two
//! projects sharing a bridge each keep their own copy. docs/networking.md explains when.

use std::fmt;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};

use super::names::IFNAME_MAX;

/// Every rule's comment starts with this, followed by the project's name.
pub const COMMENT_PREFIX: &str = "rcompose:";
/// The chain Docker keeps for users' rules, jumped to first from FORWARD.
const DOCKER_USER: &str = "DOCKER-USER";
const FORWARD: &str = "FORWARD";
/// Where the legacy (x_tables) backend lists its tables, per network namespace: the calling
/// thread's (`/proc/net` is the process's, wrong for a thread that entered another namespace).
const LEGACY_TABLES: &str = "/proc/thread-self/net/ip_tables_names";
/// The same for ip6tables-legacy.
const LEGACY6_TABLES: &str = "/proc/thread-self/net/ip6_tables_names";
/// Whether bridged traffic passes the IP hooks, per network namespace.
const BR_NETFILTER: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

#[derive(Debug, thiserror::Error)]
pub enum HostFirewallError {
    #[error("cannot run {binary} to keep rcompose's bridges open in the host's filter table (is the iptables package installed?)")]
    Spawn {
        binary: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{binary} failed to {action}: {stderr}")]
    Failed {
        binary: &'static str,
        action: String,
        stderr: String,
    },
}

type Result<T> = std::result::Result<T, HostFirewallError>;

/// An iptables backend: all may hold rules at the same time, each with its own tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// iptables-nft: the `ip filter` table of nftables (Debian 12's default).
    Nft,
    /// iptables-legacy: x_tables.
    Legacy,
    /// ip6tables-nft: the `ip6 filter` table.
    Nft6,
    /// ip6tables-legacy.
    Legacy6,
}

impl Backend {
    pub const ALL: [Backend; 4] = [
        Backend::Nft,
        Backend::Legacy,
        Backend::Nft6,
        Backend::Legacy6,
    ];

    pub fn binary(self) -> &'static str {
        match self {
            Backend::Nft => "iptables-nft",
            Backend::Legacy => "iptables-legacy",
            Backend::Nft6 => "ip6tables-nft",
            Backend::Legacy6 => "ip6tables-legacy",
        }
    }

    /// It filters IPv6: only bridges with IPv6 need rules there.
    pub fn is_ipv6(self) -> bool {
        matches!(self, Backend::Nft6 | Backend::Legacy6)
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.binary())
    }
}

/// A bridge of the project as these rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    pub name: String,
    pub internal: bool,
    /// The network has IPv6: it needs the rules in ip6tables too.
    pub ipv6: bool,
}

/// One rule of ours found in a chain: its chain and its specification, as `iptables -S` prints
/// it without `-A CHAIN` (quotes removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub chain: String,
    pub spec: Vec<String>,
}

/// What `iptables -t filter -S` says of a backend's `filter` table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterTable {
    pub forward_drop: bool,
    pub docker_user: bool,
    /// Rules in FORWARD or DOCKER-USER with a comment starting with [`COMMENT_PREFIX`], in
    /// order, with the project each belongs to.
    pub ours: Vec<(String, Rule)>,
}

impl FilterTable {
    /// Whether forwarded traffic of rcompose's bridges would be dropped by rules it does not
    /// own: FORWARD's policy is DROP, or Docker's chains are there (Docker sets DROP; a user may
    /// have set it back but add drops in DOCKER-USER).
    pub fn drops_forwarded(&self) -> bool {
        self.forward_drop || self.docker_user
    }

    /// The chain our rules go to.
    pub fn target_chain(&self) -> &'static str {
        if self.docker_user {
            DOCKER_USER
        } else {
            FORWARD
        }
    }
}

/// The comment marking project `project`'s rules.
pub fn comment(project: &str) -> String {
    format!("{COMMENT_PREFIX}{project}")
}

/// Splits one line of `iptables -S` into words, honouring double quotes (comments are printed
/// quoted) and backslash escapes inside them.
fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Parses `iptables -t filter -S`. Pure.
pub fn parse_filter(save: &str) -> FilterTable {
    let mut table = FilterTable::default();
    for line in save.lines() {
        let words = split_words(line);
        match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["-P", FORWARD, policy] => table.forward_drop = policy == "DROP",
            ["-N", DOCKER_USER] => table.docker_user = true,
            ["-A", chain, ..] if chain == FORWARD || chain == DOCKER_USER => {
                let spec = words[2..].to_vec();
                let project = spec
                    .windows(2)
                    .find(|w| w[0] == "--comment")
                    .and_then(|w| w[1].strip_prefix(COMMENT_PREFIX));
                if let Some(project) = project {
                    table.ours.push((
                        project.to_string(),
                        Rule {
                            chain: chain.to_string(),
                            spec,
                        },
                    ));
                }
            }
            _ => {}
        }
    }
    table
}

/// Whether `name` may go into an argument list as an interface name.
fn valid_ifname(name: &str) -> bool {
    (1..=IFNAME_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The rules project `project` needs in `chain` for `bridges`, in order, each written as
/// `iptables -S` prints it (so that what is there compares equal). Pure. Bridges with a name
/// no interface can have are left out (firewall::render refuses them first).
pub fn desired(project: &str, bridges: &[Bridge], chain: &str) -> Vec<Rule> {
    let comment = comment(project);
    let mut rules = Vec::new();
    let mut push = |words: &[&str]| {
        let mut spec: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        spec.extend(
            ["-m", "comment", "--comment", &comment, "-j", "ACCEPT"]
                .iter()
                .map(|w| w.to_string()),
        );
        rules.push(Rule {
            chain: chain.to_string(),
            spec,
        });
    };
    for b in bridges.iter().filter(|b| valid_ifname(&b.name)) {
        let n = b.name.as_str();
        if b.internal {
            // Only between two containers of the bridge (br_netfilter).
            push(&["-i", n, "-o", n]);
            continue;
        }
        push(&["-i", n]);
        // Two rules: iptables-nft 1.8.9 turns `--ctstate RELATED,ESTABLISHED,DNAT` into
        // `ct status dnat` alone, losing the replies.
        push(&[
            "-o",
            n,
            "-m",
            "conntrack",
            "--ctstate",
            "RELATED,ESTABLISHED",
        ]);
        push(&["-o", n, "-m", "conntrack", "--ctstate", "DNAT"]);
    }
    // Two projects on one shared bridge would otherwise each list it; one copy per project.
    let mut seen = Vec::new();
    rules.retain(|r| {
        let new = !seen.contains(r);
        if new {
            seen.push(r.clone());
        }
        new
    });
    rules
}

/// One iptables call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `-D CHAIN SPEC`
    Delete(Rule),
    /// `-I CHAIN POSITION SPEC` (1-based)
    Insert(Rule, usize),
}

impl Op {
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["-w".to_string(), "-t".to_string(), "filter".to_string()];
        match self {
            Op::Delete(r) => {
                args.extend(["-D".to_string(), r.chain.clone()]);
                args.extend(r.spec.iter().cloned());
            }
            Op::Insert(r, pos) => {
                args.extend(["-I".to_string(), r.chain.clone(), pos.to_string()]);
                args.extend(r.spec.iter().cloned());
            }
        }
        args
    }
}

/// The calls that bring project `project`'s rules in `table` to `bridges` (none when the table
/// drops nothing, or `bridges` is empty). Pure. Rules already in place stay (so `up` again
/// changes nothing); the missing ones go to the top of the target chain, in order.
pub fn plan(project: &str, bridges: &[Bridge], table: &FilterTable) -> Vec<Op> {
    let want = if table.drops_forwarded() {
        desired(project, bridges, table.target_chain())
    } else {
        Vec::new()
    };
    let have: Vec<&Rule> = table
        .ours
        .iter()
        .filter(|(p, _)| p == project)
        .map(|(_, r)| r)
        .collect();
    let mut ops: Vec<Op> = have
        .iter()
        .filter(|r| !want.contains(r))
        .map(|r| Op::Delete((*r).clone()))
        .collect();
    let missing: Vec<&Rule> = want.iter().filter(|r| !have.contains(r)).collect();
    ops.extend(
        missing
            .iter()
            .enumerate()
            .map(|(i, r)| Op::Insert((*r).clone(), i + 1)),
    );
    ops
}

/// The calls that remove every rule of project `project` from `table`. Pure.
pub fn plan_remove(project: &str, table: &FilterTable) -> Vec<Op> {
    plan(project, &[], table)
}

fn iptables(backend: Backend, args: &[String], action: &str) -> Result<String> {
    let out = Command::new(backend.binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| HostFirewallError::Spawn {
            binary: backend.binary(),
            source,
        })?;
    if !out.status.success() {
        return Err(HostFirewallError::Failed {
            binary: backend.binary(),
            action: action.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `backend` has a `filter` table in this network namespace, found without creating
/// one (listing with iptables-legacy would load x_tables and make the table).
fn has_filter_table(backend: Backend) -> bool {
    let legacy = |path| {
        std::fs::read_to_string(path)
            .map(|t| t.lines().any(|l| l.trim() == "filter"))
            .unwrap_or(false)
    };
    // nftables is listed over netlink, which creates nothing (and costs no nft process); a
    // kernel without nf_tables has no such table either.
    let nft = |family| {
        super::nftables::list_tables(family)
            .is_ok_and(|tables| tables.iter().any(|t| t == "filter"))
    };
    match backend {
        Backend::Legacy => legacy(LEGACY_TABLES),
        Backend::Legacy6 => legacy(LEGACY6_TABLES),
        Backend::Nft => nft(super::nftables::FAMILY_IP),
        Backend::Nft6 => nft(super::nftables::FAMILY_IP6),
    }
}

/// The `filter` table of `backend` as `iptables -S` prints it.
fn list(backend: Backend) -> Result<FilterTable> {
    let args = ["-w", "-t", "filter", "-S"].map(String::from);
    let save = iptables(backend, &args, "list the filter table")?;
    Ok(parse_filter(&save))
}

/// The `filter` table of `backend`, `None` when it has none.
pub fn read(backend: Backend) -> Result<Option<FilterTable>> {
    if !has_filter_table(backend) {
        return Ok(None);
    }
    list(backend).map(Some)
}

/// The `filter` table of each backend of [`Backend::ALL`] that has one (the IPv6 ones only
/// with `ipv6`), read at the same time: each read runs an iptables process (milliseconds). The
/// others are read by threads spawned from this one, so in the same network namespace.
fn read_all(ipv6: bool) -> Vec<(Backend, Result<FilterTable>)> {
    let present: Vec<Backend> = Backend::ALL
        .into_iter()
        .filter(|b| (ipv6 || !b.is_ipv6()) && has_filter_table(*b))
        .collect();
    let Some((&first, rest)) = present.split_first() else {
        return Vec::new();
    };
    std::thread::scope(|s| {
        let others: Vec<_> = rest
            .iter()
            .map(|&b| {
                (
                    b,
                    std::thread::Builder::new().spawn_scoped(s, move || list(b)),
                )
            })
            .collect();
        let mut all = vec![(first, list(first))];
        for (b, handle) in others {
            let table = match handle {
                Ok(handle) => handle
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p)),
                // No thread to be had: one after the other.
                Err(_) => list(b),
            };
            all.push((b, table));
        }
        all
    })
}

/// Whether bridged traffic passes iptables here (br_netfilter loaded, and on).
pub fn br_netfilter() -> bool {
    std::fs::read_to_string(Path::new(BR_NETFILTER)).is_ok_and(|v| v.trim() == "1")
}

fn run(backend: Backend, project: &str, ops: &[Op]) -> Result<()> {
    for op in ops {
        let action = match op {
            Op::Delete(r) => format!("remove a rule of project {project} from chain {}", r.chain),
            Op::Insert(r, _) => format!("add a rule of project {project} to chain {}", r.chain),
        };
        iptables(backend, &op.args(), &action)?;
    }
    Ok(())
}

/// Brings project `project`'s rules in the host's chains in line with `bridges`, on every
/// backend whose `filter` table drops forwarded traffic (and removes them from the others).
/// Called on each `up`, so rules Docker flushed when it restarted come back then.
pub fn sync(project: &str, bridges: &[Bridge]) -> Result<()> {
    let with_ipv6: Vec<Bridge> = bridges.iter().filter(|b| b.ipv6).cloned().collect();
    // Without an IPv6 network there is nothing to keep in ip6tables (and nothing of ours
    // there: a network losing IPv6 is removed, and `remove` reads every backend), so an
    // IPv4-only project runs no ip6tables process.
    for (backend, table) in read_all(!with_ipv6.is_empty()) {
        let table = table?;
        let bridges = if backend.is_ipv6() {
            &with_ipv6
        } else {
            bridges
        };
        let ops = plan(project, bridges, &table);
        if !ops.is_empty() {
            tracing::debug!(
                %backend,
                chain = table.target_chain(),
                forward_drop = table.forward_drop,
                docker_user = table.docker_user,
                br_netfilter = br_netfilter(),
                "updating the rules rcompose keeps in the host's filter table"
            );
        }
        run(backend, project, &ops)?;
    }
    Ok(())
}

/// Removes every rule of project `project` from the host's chains; `Ok(true)` when there were
/// some. Goes on to the other backend when one fails, and reports the first error.
pub fn remove(project: &str) -> Result<bool> {
    let mut removed = false;
    let mut first_error = None;
    for (backend, table) in read_all(true) {
        let result = table.and_then(|table| {
            let ops = plan_remove(project, &table);
            removed |= !ops.is_empty();
            run(backend, project, &ops)
        });
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(removed),
    }
}

#[cfg(test)]
mod tests;
