//! Deleting a link without waiting for the kernel's last clean-up step.
//!
//! The kernel answers `RTM_DELLINK` of a bridge only after two RCU barriers (35 to 50 ms on the
//! benchmark machine): one in the bridge's uninit, after which the link is gone (out of the
//! namespace's lists, its deletion announced to `RTNLGRP_LINK`, its sysfs entry removed), and one
//! in `netdev_run_todo`, which waits only to free it. [`delete_announced`] sends the request from
//! a thread of its own and returns once the kernel announces the link deleted: the second
//! barrier (about half of the time) runs on in that thread, unobserved. The name is free again
//! from the announcement on.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use tokio::io::unix::AsyncFd;

const RTM_DELLINK: u16 = 17;
/// The multicast group of link changes, as a bind mask.
const RTMGRP_LINK: u32 = 1;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLMSG_HDRLEN: usize = 16;
/// `struct ifinfomsg`: family, pad, type, index, flags, change.
const IFINFOMSG_LEN: usize = 16;
const RECV_BUF: usize = 32 * 1024;

/// A route netlink socket of the calling thread's network namespace, bound to `groups`.
fn socket(groups: u32, nonblocking: bool) -> io::Result<OwnedFd> {
    let mut kind = libc::SOCK_RAW | libc::SOCK_CLOEXEC;
    if nonblocking {
        kind |= libc::SOCK_NONBLOCK;
    }
    // SAFETY: socket(2) with constant arguments; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, kind, libc::NETLINK_ROUTE) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero sockaddr_nl is valid; the kernel picks the port id.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr.nl_groups = groups;
    // SAFETY: bind(2) with an address that lives through the call, of its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// `RTM_DELLINK` of link `index`, to be acknowledged. Pure.
fn delete_request(seq: u32, index: u32) -> Vec<u8> {
    let len = (NLMSG_HDRLEN + IFINFOMSG_LEN) as u32;
    let mut m = Vec::with_capacity(len as usize);
    m.extend_from_slice(&len.to_ne_bytes());
    m.extend_from_slice(&RTM_DELLINK.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.push(libc::AF_UNSPEC as u8);
    m.push(0);
    m.extend_from_slice(&0u16.to_ne_bytes());
    m.extend_from_slice(&index.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m
}

/// The messages of a datagram: (type, sequence number, body). Stops at a malformed length.
fn messages(datagram: &[u8]) -> impl Iterator<Item = (u16, u32, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let header = datagram.get(at..at + NLMSG_HDRLEN)?;
        let len = u32::from_ne_bytes(header[0..4].try_into().ok()?) as usize;
        if len < NLMSG_HDRLEN || at + len > datagram.len() {
            return None;
        }
        let kind = u16::from_ne_bytes(header[4..6].try_into().ok()?);
        let seq = u32::from_ne_bytes(header[8..12].try_into().ok()?);
        let body = &datagram[at + NLMSG_HDRLEN..at + len];
        at += (len + 3) & !3;
        Some((kind, seq, body))
    })
}

/// The answer to request `seq` in `datagram`: `Some(0)` acknowledged, `Some(-errno)`. Pure.
fn answer_of(datagram: &[u8], seq: u32) -> Option<i32> {
    messages(datagram)
        .filter(|(kind, s, _)| *kind == NLMSG_ERROR && *s == seq)
        .find_map(|(_, _, body)| Some(i32::from_ne_bytes(body.get(..4)?.try_into().ok()?)))
}

/// Whether `datagram` announces link `index` deleted (the generic, `AF_UNSPEC`, announcement:
/// a bridge also announces its ports leaving it with `AF_BRIDGE` ones). Pure.
fn announces_deleted(datagram: &[u8], index: u32) -> bool {
    messages(datagram).any(|(kind, _, body)| {
        kind == RTM_DELLINK
            && body.len() >= IFINFOMSG_LEN
            && body[0] == libc::AF_UNSPEC as u8
            && body[4..8] == index.to_ne_bytes()
    })
}

fn recv(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: recv(2) into a buffer we own, of its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Deletes link `index` and waits for the kernel's answer (blocking).
fn delete_blocking(index: u32) -> io::Result<()> {
    let fd = socket(0, false)?;
    let request = delete_request(1, index);
    // SAFETY: an all-zero sockaddr_nl is the kernel's address.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: sendto(2) with a buffer and address that live through the call.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; RECV_BUF];
    loop {
        let n = recv(&fd, &mut buf)?;
        match answer_of(&buf[..n], 1) {
            Some(0) => return Ok(()),
            Some(e) => return Err(io::Error::from_raw_os_error(-e)),
            None => continue,
        }
    }
}

/// What the deleting thread answered: `Ok(false)` when the link was gone already.
fn answered(
    r: std::result::Result<io::Result<()>, tokio::sync::oneshot::error::RecvError>,
) -> io::Result<bool> {
    match r {
        Ok(Ok(())) => Ok(true),
        Ok(Err(e)) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::other(
            "the thread deleting the link ended without an answer",
        )),
    }
}

/// Registers the listening socket with the runtime.
fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the OwnedFd stays open and unchanged for as long as the AsyncFd owns it.
    unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

/// Waits on `listener` for the announcement that link `index` is deleted.
async fn announcement(listener: &AsyncFd<OwnedFd>, index: u32) -> io::Result<()> {
    let mut buf = vec![0u8; RECV_BUF];
    loop {
        let mut ready = listener.readable().await?;
        match ready.try_io(|fd| recv(fd.get_ref(), &mut buf)) {
            Ok(Ok(n)) if announces_deleted(&buf[..n], index) => return Ok(()),
            Ok(Ok(_)) => {}
            // ENOBUFS (announcements were lost) included: the caller waits for the answer.
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => {}
        }
    }
}

/// Deletes link `index` (named `name`) in the calling thread's network namespace and returns
/// once the kernel has announced it deleted and its sysfs entry is gone; the kernel's answer
/// comes later, to a thread of its own. `Ok(false)`: there was no such link. Needs a tokio
/// runtime with I/O enabled for the early return; without one it waits for the answer.
pub async fn delete_announced(index: u32, name: &str) -> io::Result<bool> {
    // Subscribed before the request is sent, so the announcement cannot be missed.
    let listener = socket(RTMGRP_LINK, true).and_then(register).ok();
    let (done, mut answer) = tokio::sync::oneshot::channel();
    // Spawned from this thread: in the same network namespace.
    let spawned = std::thread::Builder::new()
        .name("link-delete".into())
        .spawn(move || {
            let _ = done.send(delete_blocking(index));
        });
    if spawned.is_err() {
        // No thread to be had: delete here and wait for the whole of it (rare; blocks this
        // worker for the deletion's time, as any blocking call would).
        return answered(Ok(delete_blocking(index)));
    }
    let Some(listener) = listener else {
        return answered(answer.await);
    };
    tokio::select! {
        r = &mut answer => return answered(r),
        announced = announcement(&listener, index) => {
            if announced.is_err() {
                return answered(answer.await);
            }
        }
    }
    // The announcement goes out just before the kernel removes the sysfs entry, and no event
    // follows that: look again until it is gone (microseconds), or the answer comes.
    let entry = Path::new("/sys/class/net").join(name);
    while entry.exists() {
        tokio::select! {
            r = &mut answer => return answered(r),
            () = tokio::time::sleep(Duration::from_millis(1)) => {}
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        m.resize((m.len() + 3) & !3, 0);
        m
    }

    fn ifinfo(family: u8, index: u32) -> Vec<u8> {
        let mut b = vec![family, 0, 0, 0];
        b.extend_from_slice(&index.to_ne_bytes());
        b.extend_from_slice(&[0; 8]);
        b
    }

    #[test]
    fn delete_request_names_the_index() {
        let m = delete_request(9, 42);
        assert_eq!(m.len(), 32);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 32);
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), RTM_DELLINK);
        assert_eq!(u16::from_ne_bytes(m[6..8].try_into().unwrap()), 0x5);
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 9);
        assert_eq!(u32::from_ne_bytes(m[20..24].try_into().unwrap()), 42);
    }

    #[test]
    fn only_the_generic_deletion_of_that_link_counts() {
        let mut d = message(16, 0, &ifinfo(0, 42)); // RTM_NEWLINK
        d.extend(message(RTM_DELLINK, 0, &ifinfo(libc::AF_BRIDGE as u8, 42)));
        d.extend(message(RTM_DELLINK, 0, &ifinfo(0, 41)));
        assert!(!announces_deleted(&d, 42));
        d.extend(message(RTM_DELLINK, 0, &ifinfo(0, 42)));
        assert!(announces_deleted(&d, 42));
        // A truncated body or length is not an announcement.
        assert!(!announces_deleted(&message(RTM_DELLINK, 0, &[0; 4]), 0));
        let mut bad = message(RTM_DELLINK, 0, &ifinfo(0, 42));
        bad[0..4].copy_from_slice(&999u32.to_ne_bytes());
        assert!(!announces_deleted(&bad, 42));
    }

    #[test]
    fn answers_are_matched_by_sequence() {
        let mut d = message(NLMSG_ERROR, 3, &(-libc::EPERM).to_ne_bytes());
        assert_eq!(answer_of(&d, 1), None);
        d.extend(message(NLMSG_ERROR, 1, &(-libc::ENODEV).to_ne_bytes()));
        assert_eq!(answer_of(&d, 1), Some(-libc::ENODEV));
        assert_eq!(
            answer_of(&message(NLMSG_ERROR, 1, &0i32.to_ne_bytes()), 1),
            Some(0)
        );
    }
}
