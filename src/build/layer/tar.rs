//! A tar writer that makes the bytes Go's `archive/tar` makes for containerd's layer writer
//! (`archive.ChangeWriter`, used by BuildKit's overlay differ), so that a layer built here has
//! the diff_id BuildKit gives the same change.
//!
//! Go's choices, reproduced: a header is USTAR whenever USTAR can hold it (long names split
//! into prefix/name), PAX otherwise (one `x` header with records sorted by key, named
//! `<dir>/PaxHeaders.0/<base>`), never GNU; numbers in zero-padded octal with a NUL; the
//! checksum as six octal digits, NUL, space; no user or group names; the archive ends with two
//! zero blocks and no record padding.

use std::collections::BTreeMap;
use std::io::{self, Write};

pub const BLOCK: usize = 512;
const NAME_SIZE: usize = 100;
const PREFIX_SIZE: usize = 155;

pub const TYPE_REG: u8 = b'0';
pub const TYPE_LINK: u8 = b'1';
pub const TYPE_SYMLINK: u8 = b'2';
pub const TYPE_CHAR: u8 = b'3';
pub const TYPE_BLOCK: u8 = b'4';
pub const TYPE_DIR: u8 = b'5';
pub const TYPE_FIFO: u8 = b'6';
const TYPE_PAX: u8 = b'x';

/// One entry's header, in Go's `tar.Header` terms (only the fields a layer uses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub name: Vec<u8>,
    pub linkname: Vec<u8>,
    pub typeflag: u8,
    /// Permission bits with setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: i64,
    pub uid: i64,
    pub gid: i64,
    pub size: i64,
    /// Whole seconds (containerd truncates).
    pub mtime: i64,
    /// Set only for whiteouts, as containerd does: forces PAX `atime`/`ctime` records.
    pub atime: Option<i64>,
    pub ctime: Option<i64>,
    pub devmajor: i64,
    pub devminor: i64,
    /// Extra PAX records (`SCHILY.xattr.*`).
    pub pax: BTreeMap<String, Vec<u8>>,
    /// `tar.FormatPAX` was asked for (containerd sets it on every entry but whiteouts).
    pub want_pax: bool,
}

fn fits_octal(width: usize, x: i64) -> bool {
    let bits = (width as u32 - 1) * 3;
    x >= 0 && (width >= 22 || x < (1i64 << bits))
}

/// Go's `formatter.formatOctal`: zero-padded, leaving room for a NUL; 0 when it does not fit.
fn put_octal(field: &mut [u8], x: i64) {
    let x = if fits_octal(field.len(), x) { x } else { 0 };
    let s = format!("{x:o}");
    let pad = field.len().saturating_sub(s.len() + 1);
    let mut v = vec![b'0'; pad];
    v.extend_from_slice(s.as_bytes());
    put_str(field, &v);
}

/// Go's `formatter.formatString`: copy what fits, NUL-terminate when shorter.
fn put_str(field: &mut [u8], s: &[u8]) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s[..n]);
    if s.len() < field.len() {
        field[s.len()] = 0;
    }
}

fn to_ascii(s: &[u8]) -> Vec<u8> {
    s.iter().copied().filter(|c| c.is_ascii()).collect()
}

/// Go's `splitUSTARPath`.
fn split_ustar(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut length = name.len();
    if length <= NAME_SIZE || !name.is_ascii() {
        return None;
    } else if length > PREFIX_SIZE + 1 {
        length = PREFIX_SIZE + 1;
    } else if name[length - 1] == b'/' {
        length -= 1;
    }
    let i = name[..length].iter().rposition(|&c| c == b'/')?;
    let nlen = name.len() - i - 1;
    if i == 0 || nlen > NAME_SIZE || nlen == 0 || i > PREFIX_SIZE {
        return None;
    }
    Some((&name[..i], &name[i + 1..]))
}

/// Go's `formatPAXRecord`: "<len> <key>=<value>\n", the length counting itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let mut size = key.len() + value.len() + 3;
    size += size.to_string().len();
    let build = |size: usize| {
        let mut r = format!("{size} {key}=").into_bytes();
        r.extend_from_slice(value);
        r.push(b'\n');
        r
    };
    let rec = build(size);
    if rec.len() != size {
        return build(rec.len());
    }
    rec
}

fn checksum_and_magic(blk: &mut [u8; BLOCK]) {
    // USTAR and PAX share the magic "ustar\0" and version "00".
    blk[257..263].copy_from_slice(b"ustar\0");
    blk[263..265].copy_from_slice(b"00");
    blk[148..156].fill(b' ');
    let sum: i64 = blk.iter().map(|&b| i64::from(b)).sum();
    put_octal(&mut blk[148..155], sum);
    blk[155] = b' ';
}

/// Go's `templateV7Plus` (name and numbers only; the caller adds the prefix).
fn template(h: &Header, name: &[u8], linkname: &[u8]) -> [u8; BLOCK] {
    let mut blk = [0u8; BLOCK];
    blk[156] = h.typeflag;
    put_str(&mut blk[0..100], name);
    put_str(&mut blk[157..257], linkname);
    put_octal(&mut blk[100..108], h.mode);
    put_octal(&mut blk[108..116], h.uid);
    put_octal(&mut blk[116..124], h.gid);
    put_octal(&mut blk[124..136], h.size);
    put_octal(&mut blk[136..148], h.mtime.max(0));
    // uname 265..297 and gname 297..329 stay empty: containerd does no name lookups.
    put_octal(&mut blk[329..337], h.devmajor);
    put_octal(&mut blk[337..345], h.devminor);
    blk
}

/// Why a header cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("{0} does not fit in a tar header")]
    TooLarge(&'static str),
}

/// The bytes of `h`'s header (a PAX extended header first when needed).
pub fn encode_header(h: &Header) -> Result<Vec<u8>, HeaderError> {
    let mut ustar = true;
    let mut pax: BTreeMap<String, Vec<u8>> = BTreeMap::new();

    // Strings.
    if !h.name.is_ascii() || h.name.len() > NAME_SIZE {
        if split_ustar(&h.name).is_none() {
            ustar = false;
        }
        pax.insert("path".into(), h.name.clone());
    }
    if !h.linkname.is_ascii() || h.linkname.len() > NAME_SIZE {
        ustar = false;
        pax.insert("linkpath".into(), h.linkname.clone());
    }
    // Numbers.
    for (v, width, key, what) in [
        (h.mode, 8, None, "mode"),
        (h.uid, 8, Some("uid"), "uid"),
        (h.gid, 8, Some("gid"), "gid"),
        (h.size, 12, Some("size"), "size"),
        (h.devmajor, 8, None, "device major"),
        (h.devminor, 8, None, "device minor"),
    ] {
        if !fits_octal(width, v) {
            ustar = false;
            match key {
                Some(k) => {
                    pax.insert(k.into(), v.to_string().into_bytes());
                }
                None => return Err(HeaderError::TooLarge(what)),
            }
        }
    }
    if !fits_octal(12, h.mtime) {
        ustar = false;
        pax.insert("mtime".into(), h.mtime.to_string().into_bytes());
    }
    for (t, key) in [(h.atime, "atime"), (h.ctime, "ctime")] {
        if let Some(t) = t {
            ustar = false;
            pax.insert(key.into(), t.to_string().into_bytes());
        }
    }
    if !h.pax.is_empty() {
        ustar = false;
        for (k, v) in &h.pax {
            pax.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    // `want_pax` only rules out GNU, which is never chosen here anyway: USTAR when it fits,
    // PAX otherwise, as Go's writer decides for both containerd's entries and its whiteouts.
    let _ = h.want_pax;

    let mut out = Vec::with_capacity(BLOCK * 3);
    if ustar {
        let (prefix, name) = split_ustar(&h.name).unwrap_or((&[], &h.name));
        let mut blk = template(h, name, &h.linkname);
        put_str(&mut blk[345..500], prefix);
        checksum_and_magic(&mut blk);
        out.extend_from_slice(&blk);
        return Ok(out);
    }

    // The extended header: "<dir>/PaxHeaders.0/<base>".
    let data: Vec<u8> = pax.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
    let split = h.name.iter().rposition(|&c| c == b'/').map_or(0, |i| i + 1);
    let (dir, file) = h.name.split_at(split);
    let mut xname = dir.to_vec();
    xname.extend_from_slice(b"PaxHeaders.0");
    if !file.is_empty() {
        xname.push(b'/');
        xname.extend_from_slice(file);
    }
    let mut xname = to_ascii(&xname);
    xname.truncate(NAME_SIZE);
    while xname.last() == Some(&b'/') {
        xname.pop();
    }
    let mut xblk = [0u8; BLOCK];
    xblk[156] = TYPE_PAX;
    put_str(&mut xblk[0..100], &xname);
    put_octal(&mut xblk[100..108], 0);
    put_octal(&mut xblk[108..116], 0);
    put_octal(&mut xblk[116..124], 0);
    put_octal(&mut xblk[124..136], data.len() as i64);
    put_octal(&mut xblk[136..148], 0);
    checksum_and_magic(&mut xblk);
    out.extend_from_slice(&xblk);
    out.extend_from_slice(&data);
    out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);

    let mut blk = template(h, &to_ascii(&h.name), &to_ascii(&h.linkname));
    checksum_and_magic(&mut blk);
    out.extend_from_slice(&blk);
    Ok(out)
}

/// A stream of entries: headers, file data padded to blocks, and the end marker.
pub struct TarWriter<W: Write> {
    out: W,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        TarWriter { out }
    }

    pub fn header(&mut self, h: &Header) -> io::Result<()> {
        let bytes = encode_header(h).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: {e}", String::from_utf8_lossy(&h.name)),
            )
        })?;
        self.out.write_all(&bytes)
    }

    /// Data of the entry just written; `size` must be what its header declared.
    pub fn data(&mut self, mut src: impl io::Read, size: u64) -> io::Result<()> {
        let n = io::copy(&mut io::Read::take(&mut src, size), &mut self.out)?;
        if n != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file shrank while being read: {n} of {size} bytes"),
            ));
        }
        let pad = (BLOCK - (size % BLOCK as u64) as usize) % BLOCK;
        self.out.write_all(&[0u8; BLOCK][..pad])
    }

    /// Two zero blocks, as Go's `Writer.Close`; returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; BLOCK * 2])?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(name: &str) -> Header {
        Header {
            name: name.as_bytes().to_vec(),
            typeflag: TYPE_REG,
            mode: 0o644,
            mtime: 1_700_000_000,
            want_pax: true,
            ..Header::default()
        }
    }

    fn field(blk: &[u8], r: std::ops::Range<usize>) -> &[u8] {
        &blk[r]
    }

    #[test]
    fn ustar_header_bytes_are_gos() {
        let b = encode_header(&reg("etc/hosts")).unwrap();
        assert_eq!(b.len(), BLOCK);
        assert_eq!(field(&b, 0..10), b"etc/hosts\0");
        assert_eq!(field(&b, 100..108), b"0000644\0");
        assert_eq!(field(&b, 108..116), b"0000000\0");
        assert_eq!(field(&b, 124..136), b"00000000000\0");
        assert_eq!(field(&b, 136..148), b"14524770400\0");
        assert_eq!(b[156], b'0');
        assert_eq!(field(&b, 257..265), b"ustar\x0000");
        assert_eq!(field(&b, 329..337), b"0000000\0");
        // Checksum: six digits, NUL, space; and it checks.
        assert_eq!(b[154], 0);
        assert_eq!(b[155], b' ');
        let mut copy = b.clone();
        copy[148..156].fill(b' ');
        let sum: u32 = copy.iter().map(|&c| u32::from(c)).sum();
        let text = std::str::from_utf8(&b[148..154]).unwrap();
        assert_eq!(u32::from_str_radix(text, 8).unwrap(), sum);
        // The tar crate reads it back.
        let mut ar = tar::Archive::new(&b[..]);
        let _ = ar.entries().unwrap().count();
    }

    #[test]
    fn long_names_split_into_prefix_or_go_pax() {
        let long_dir = "d".repeat(120);
        let name = format!("{long_dir}/file");
        let b = encode_header(&reg(&name)).unwrap();
        assert_eq!(b.len(), BLOCK, "splittable: plain USTAR");
        assert_eq!(&b[0..5], b"file\0");
        assert_eq!(&b[345..465], long_dir.as_bytes());

        let name = "f".repeat(150);
        let b = encode_header(&reg(&name)).unwrap();
        assert_eq!(b[156], b'x');
        assert_eq!(&b[0..13], b"PaxHeaders.0/");
        let rec = format!("160 path={name}\n");
        assert_eq!(&b[BLOCK..BLOCK + rec.len()], rec.as_bytes());
        assert_eq!(b.len(), BLOCK * 3);
    }

    #[test]
    fn pax_records_count_their_own_length() {
        assert_eq!(pax_record("atime", b"0"), b"11 atime=0\n");
        assert_eq!(pax_record("path", b"x"), b"9 path=x\n");
        // 98 bytes plus two digits is 100, which needs three: the length is recounted.
        let v = vec![b'a'; 91];
        let r = pax_record("path", &v);
        assert_eq!(r.len(), 101);
        assert!(r.starts_with(b"101 path="));
    }

    #[test]
    fn whiteouts_and_xattrs_are_pax_sorted() {
        let mut h = reg("a/.wh.b");
        h.mode = 0;
        h.mtime = 0;
        h.atime = Some(0);
        h.ctime = Some(0);
        h.want_pax = false;
        let b = encode_header(&h).unwrap();
        assert_eq!(&b[0..21], b"a/PaxHeaders.0/.wh.b\0");
        assert_eq!(&b[BLOCK..BLOCK + 22], b"11 atime=0\n11 ctime=0\n");

        let mut h = reg("bin/ping");
        h.pax.insert("SCHILY.xattr.user.z".into(), b"1".to_vec());
        h.pax
            .insert("SCHILY.xattr.security.capability".into(), vec![1, 0, 0, 2]);
        let b = encode_header(&h).unwrap();
        let data = &b[BLOCK..2 * BLOCK];
        let s = String::from_utf8_lossy(data);
        let cap = s.find("security.capability").unwrap();
        let user = s.find("user.z").unwrap();
        assert!(cap < user);
        let mut ar = tar::Archive::new(&b[..]);
        let mut entries = ar.entries().unwrap();
        let mut e = entries.next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_str(), Some("bin/ping"));
        let exts: Vec<String> = e
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|x| x.unwrap().key().unwrap().to_string())
            .collect();
        assert_eq!(
            exts,
            ["SCHILY.xattr.security.capability", "SCHILY.xattr.user.z"]
        );
    }

    #[test]
    fn large_ids_and_sizes_go_to_pax() {
        let mut h = reg("f");
        h.uid = 100_000_000;
        let b = encode_header(&h).unwrap();
        assert_eq!(b[156], b'x');
        assert!(String::from_utf8_lossy(&b[BLOCK..2 * BLOCK]).contains("uid=100000000\n"));
        // The main header carries 0 where the number does not fit.
        assert_eq!(&b[2 * BLOCK + 108..2 * BLOCK + 116], b"0000000\0");
        h.uid = 0;
        h.devmajor = 1 << 30;
        assert!(encode_header(&h).is_err());
    }

    #[test]
    fn data_is_padded_and_the_end_is_two_blocks() {
        let mut w = TarWriter::new(Vec::new());
        let mut h = reg("f");
        h.size = 3;
        w.header(&h).unwrap();
        w.data(&b"abc"[..], 3).unwrap();
        let out = w.finish().unwrap();
        assert_eq!(out.len(), BLOCK * 4);
        let mut w = TarWriter::new(Vec::new());
        w.header(&h).unwrap();
        assert!(w.data(&b"ab"[..], 3).is_err());
    }
}
