//! The few nftables requests that need no rule syntax, sent over netlink (nfnetlink) instead of
//! through an `nft` process: list the tables of the `ip` family, and delete one table. An `nft`
//! process costs 4 to 8 ms to start and parse (more under load); these requests cost a tenth of
//! a millisecond, and `up`/`down` of a project make several. Rules are still written with
//! `nft -f` (firewall.rs): their syntax is nft's.
//!
//! The socket is opened by the calling thread, so the requests apply to that thread's network
//! namespace, as an `nft` process it started would.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `NETLINK_NETFILTER`.
const NETLINK_NETFILTER: libc::c_int = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFTA_TABLE_NAME: u16 = 1;
/// `NFPROTO_IPV4`: the `ip` family of nft.
pub const FAMILY_IP: u8 = 2;
/// `NFPROTO_IPV6`: tables of family `ip6`.
pub const FAMILY_IP6: u8 = 10;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 0x2;
const NLMSG_DONE: u16 = 0x3;
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
/// How often a request answered with EAGAIN is sent again: the kernel answers so while it loads
/// the nf_tables module on first use.
const EAGAIN_RETRIES: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum NftablesError {
    #[error("cannot open a netfilter netlink socket")]
    Socket(#[source] io::Error),
    #[error("cannot {action} over netlink")]
    Request {
        action: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot {action} over netlink: malformed reply")]
    Malformed { action: String },
}

type Result<T> = std::result::Result<T, NftablesError>;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// One netlink message: header, `nfgenmsg`, attributes. Pure.
fn message(
    kind: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    attrs: &[(u16, &[u8])],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&[0; 4]); // length, filled in below
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    m.push(family);
    m.push(0); // NFNETLINK_V0
    m.extend_from_slice(&res_id.to_be_bytes());
    for (kind, payload) in attrs {
        let len = 4 + payload.len();
        // Attribute lengths are u16 by the protocol; the payloads here are table names.
        m.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(payload);
        m.resize(align4(m.len()), 0);
    }
    let len = u32::try_from(m.len()).unwrap_or(u32::MAX);
    m[..4].copy_from_slice(&len.to_ne_bytes());
    m
}

/// A NUL-terminated string attribute's payload.
fn string_attr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// The request that lists every table of `family` (a dump). Pure.
fn list_tables_request(seq: u32, family: u8) -> Vec<u8> {
    message(
        (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE,
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        family,
        0,
        &[],
    )
}

/// The batch that deletes table `name` of `family`: begin, delete (acknowledged), end. The
/// delete has sequence number `seq + 1`. Pure.
fn delete_table_batch(seq: u32, family: u8, name: &str) -> Vec<u8> {
    let name = string_attr(name);
    let mut b = message(
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        seq,
        libc::AF_UNSPEC as u8,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    b.extend(message(
        (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELTABLE,
        NLM_F_REQUEST | NLM_F_ACK,
        seq + 1,
        family,
        0,
        &[(NFTA_TABLE_NAME, &name)],
    ));
    b.extend(message(
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        seq + 2,
        libc::AF_UNSPEC as u8,
        NFNL_SUBSYS_NFTABLES,
        &[],
    ));
    b
}

/// One message of a reply, as far as these requests need it.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// `NLMSG_ERROR`: 0 is an acknowledgement, else a negative errno.
    Error {
        seq: u32,
        errno: i32,
    },
    Done {
        seq: u32,
    },
    /// A table of a dump, by name.
    Table {
        seq: u32,
        name: Option<String>,
    },
    Other {
        seq: u32,
    },
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The messages of one datagram; `None` when it is malformed. Pure.
fn parse(datagram: &[u8]) -> Option<Vec<Reply>> {
    let mut replies = Vec::new();
    let mut at = 0;
    while at + NLMSG_HDRLEN <= datagram.len() {
        let len = u32_at(datagram, at)? as usize;
        if len < NLMSG_HDRLEN || at + len > datagram.len() {
            return None;
        }
        let kind = u16_at(datagram, at + 4)?;
        let seq = u32_at(datagram, at + 8)?;
        let body = &datagram[at + NLMSG_HDRLEN..at + len];
        let reply = match kind {
            NLMSG_ERROR => Reply::Error {
                seq,
                errno: i32::from_ne_bytes(body.get(..4)?.try_into().ok()?),
            },
            NLMSG_DONE => Reply::Done { seq },
            // What a dump of tables answers with.
            k if k == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE => Reply::Table {
                seq,
                name: table_name(body.get(NFGENMSG_LEN..)?),
            },
            _ => Reply::Other { seq },
        };
        replies.push(reply);
        at += align4(len);
    }
    Some(replies)
}

/// The `NFTA_TABLE_NAME` attribute among `attrs`.
fn table_name(attrs: &[u8]) -> Option<String> {
    let mut at = 0;
    while at + 4 <= attrs.len() {
        let len = u16_at(attrs, at)? as usize;
        // The top bits of the type are flags (nested, byte order).
        let kind = u16_at(attrs, at + 2)? & 0x3fff;
        if len < 4 || at + len > attrs.len() {
            return None;
        }
        if kind == NFTA_TABLE_NAME {
            let payload = &attrs[at + 4..at + len];
            let end = payload
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(payload.len());
            return String::from_utf8(payload[..end].to_vec()).ok();
        }
        at += align4(len);
    }
    None
}

/// A netfilter netlink socket of the calling thread's network namespace.
struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl Socket {
    fn open() -> Result<Socket> {
        // SAFETY: socket(2) with constant arguments; the fd is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if fd < 0 {
            return Err(NftablesError::Socket(io::Error::last_os_error()));
        }
        // SAFETY: a new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // The kernel answers at once; a bound keeps a wedged kernel from hanging `down`.
        let timeout = libc::timeval {
            tv_sec: 10,
            tv_usec: 0,
        };
        // SAFETY: setsockopt with a timeval of the right size.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        // Sequence numbers only tell replies apart on this socket.
        let seq = std::process::id().wrapping_mul(1000);
        Ok(Socket { fd, seq })
    }

    fn next_seq(&mut self, n: u32) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(n);
        s
    }

    fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: an all-zero sockaddr_nl is the kernel's address (pid 0, no groups).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: sendto(2) with a buffer and address that live through the call.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: recv(2) into a buffer we own, of its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// Runs `attempt` again while the kernel answers EAGAIN (loading nf_tables).
fn retrying<T>(mut attempt: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut tries = 0;
    loop {
        match attempt() {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && tries < EAGAIN_RETRIES => {
                tries += 1;
            }
            other => return other,
        }
    }
}

/// A dump's buffer: large enough for any datagram the kernel sends (it sizes them to the
/// reader's buffer, up to 32 KiB, for a dump).
const RECV_BUF: usize = 64 * 1024;

/// The names of every table of `family` (e.g. [`FAMILY_IP`]), in the kernel's order.
pub fn list_tables(family: u8) -> Result<Vec<String>> {
    let action = "list the nftables tables";
    let mut sock = Socket::open()?;
    let request_err = |source| NftablesError::Request {
        action: action.to_string(),
        source,
    };
    let malformed = || NftablesError::Malformed {
        action: action.to_string(),
    };
    let mut buf = vec![0u8; RECV_BUF];
    let names = retrying(|| {
        let seq = sock.next_seq(1);
        sock.send(&list_tables_request(seq, family))?;
        let mut names = Vec::new();
        loop {
            let n = sock.recv(&mut buf)?;
            let Some(replies) = parse(&buf[..n]) else {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "malformed"));
            };
            for r in replies {
                match r {
                    Reply::Table { seq: s, name } if s == seq => names.extend(name),
                    Reply::Done { seq: s } if s == seq => return Ok(names),
                    Reply::Error { seq: s, errno } if s == seq && errno != 0 => {
                        return Err(io::Error::from_raw_os_error(-errno));
                    }
                    _ => {}
                }
            }
        }
    });
    match names {
        Ok(n) => Ok(n),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Err(malformed()),
        Err(e) => Err(request_err(e)),
    }
}

/// Deletes table `name` of `family` with everything in it, in one transaction; `Ok(false)` when
/// there was no such table.
pub fn delete_table(family: u8, name: &str) -> Result<bool> {
    let action = format!("delete nftables table {name}");
    let mut sock = Socket::open()?;
    let mut buf = vec![0u8; RECV_BUF];
    let deleted = retrying(|| {
        let seq = sock.next_seq(3);
        sock.send(&delete_table_batch(seq, family, name))?;
        loop {
            let n = sock.recv(&mut buf)?;
            let Some(replies) = parse(&buf[..n]) else {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "malformed"));
            };
            for r in replies {
                // The delete's acknowledgement comes after the commit; an error may name any
                // message of the batch.
                if let Reply::Error { seq: s, errno } = r {
                    if !(seq..seq + 3).contains(&s) {
                        continue;
                    }
                    return match errno {
                        0 => Ok(true),
                        e if -e == libc::ENOENT => Ok(false),
                        e => Err(io::Error::from_raw_os_error(-e)),
                    };
                }
            }
        }
    });
    match deleted {
        Ok(d) => Ok(d),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            Err(NftablesError::Malformed { action })
        }
        Err(source) => Err(NftablesError::Request { action, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(m: &[u8]) -> (u32, u16, u16, u32) {
        (
            u32_at(m, 0).unwrap(),
            u16_at(m, 4).unwrap(),
            u16_at(m, 6).unwrap(),
            u32_at(m, 8).unwrap(),
        )
    }

    #[test]
    fn list_request_is_a_dump_of_one_family() {
        let m = list_tables_request(7, FAMILY_IP);
        assert_eq!(header(&m), (20, 0x0a01, 0x301, 7));
        assert_eq!(&m[16..20], &[2, 0, 0, 0]);
    }

    #[test]
    fn delete_batch_has_begin_delete_end() {
        let b = delete_table_batch(100, FAMILY_IP, "rcompose-web");
        // begin: subsystem in res_id, big-endian
        assert_eq!(header(&b[..20]), (20, 0x10, 0x1, 100));
        assert_eq!(&b[16..20], &[0, 0, 0, 10]);
        // delete: name attribute "rcompose-web\0" padded to 16
        let d = &b[20..];
        let (len, kind, flags, seq) = header(d);
        assert_eq!((len, kind, flags, seq), (20 + 4 + 16, 0x0a02, 0x5, 101));
        assert_eq!(&d[16..20], &[2, 0, 0, 0]);
        assert_eq!(u16_at(d, 20), Some(4 + 13));
        assert_eq!(u16_at(d, 22), Some(NFTA_TABLE_NAME));
        assert_eq!(&d[24..37], b"rcompose-web\0");
        // end
        let e = &b[20 + len as usize..];
        assert_eq!(header(e), (20, 0x11, 0x1, 102));
        assert_eq!(e.len(), 20);
    }

    #[test]
    fn parses_tables_done_and_errors() {
        let mut d = message(
            0x0a00,
            0x2,
            5,
            FAMILY_IP,
            0,
            &[(NFTA_TABLE_NAME, b"filter\0"), (2, &[0, 0, 0, 0])],
        );
        d.extend(message(
            0x0a00,
            0x2,
            5,
            FAMILY_IP,
            0,
            &[(3, &[1, 2, 3, 4]), (NFTA_TABLE_NAME, b"rcompose-a\0")],
        ));
        // NLMSG_DONE carries an int; NLMSG_ERROR an errno and the request's header.
        let mut done = message(NLMSG_DONE, 0x2, 5, 0, 0, &[]);
        done.truncate(16);
        done.extend_from_slice(&0i32.to_ne_bytes());
        done[..4].copy_from_slice(&20u32.to_ne_bytes());
        d.extend(&done);
        let mut err = message(NLMSG_ERROR, 0, 6, 0, 0, &[]);
        err.truncate(16);
        err.extend_from_slice(&(-libc::ENOENT).to_ne_bytes());
        err.extend_from_slice(&[0; 16]);
        err[..4].copy_from_slice(&36u32.to_ne_bytes());
        d.extend(&err);
        assert_eq!(
            parse(&d).unwrap(),
            vec![
                Reply::Table {
                    seq: 5,
                    name: Some("filter".into())
                },
                Reply::Table {
                    seq: 5,
                    name: Some("rcompose-a".into())
                },
                Reply::Done { seq: 5 },
                Reply::Error {
                    seq: 6,
                    errno: -libc::ENOENT
                },
            ]
        );
    }

    /// Against the kernel, in a namespace of its own: a dump that spans several datagrams,
    /// families kept apart, a missing table.
    #[test]
    fn lists_and_deletes_tables_in_a_namespace() {
        use crate::network::netlink::testns::{require_root, NetNs};
        if !require_root("lists_and_deletes_tables_in_a_namespace") {
            return;
        }
        let ns = NetNs::new();
        ns.run(|| {
            assert_eq!(list_tables(FAMILY_IP).unwrap(), Vec::<String>::new());
            let mut script = String::new();
            for i in 0..300 {
                script.push_str(&format!("add table ip t{i}\n"));
            }
            script.push_str("add table inet t0\n");
            let mut nft = std::process::Command::new("nft")
                .args(["-f", "-"])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            nft.stdin
                .take()
                .unwrap()
                .write_all(script.as_bytes())
                .unwrap();
            assert!(nft.wait().unwrap().success());
            let mut names = list_tables(FAMILY_IP).unwrap();
            names.sort_by_key(|n| n[1..].parse::<u32>().unwrap());
            let want: Vec<String> = (0..300).map(|i| format!("t{i}")).collect();
            assert_eq!(names, want);
            assert!(delete_table(FAMILY_IP, "t0").unwrap());
            assert!(!delete_table(FAMILY_IP, "t0").unwrap());
            assert!(!delete_table(FAMILY_IP, "nothing").unwrap());
            assert_eq!(list_tables(FAMILY_IP).unwrap().len(), 299);
            // The inet table of the same name is another family's: still there.
            let out = std::process::Command::new("nft")
                .args(["list", "tables", "inet"])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "table inet t0");
        });
    }

    #[test]
    fn malformed_lengths_are_refused() {
        let mut m = message(0x0a00, 0x2, 5, FAMILY_IP, 0, &[(NFTA_TABLE_NAME, b"x\0")]);
        m[..4].copy_from_slice(&200u32.to_ne_bytes());
        assert_eq!(parse(&m), None);
        let mut m = message(0x0a00, 0x2, 5, FAMILY_IP, 0, &[(NFTA_TABLE_NAME, b"x\0")]);
        // attribute longer than the message
        m[20..22].copy_from_slice(&100u16.to_ne_bytes());
        assert_eq!(parse(&m), Some(vec![Reply::Table { seq: 5, name: None }]));
    }
}
