//! The stat cache: the content sums of a context's files, valid while their stat is unchanged,
//! so that a build with nothing changed reads no file.
//!
//! It is kept per context as a compact binary file and used as it was read: the bytes stay as
//! they are, indexed by a hash table of their paths built in one pass, and an entry is
//! decoded only when looked up. Loading a 5,000-file cache allocates nothing per entry (a map
//! of 5,000 decoded entries took most of a millisecond and several hundred page faults, in a
//! build with nothing changed that takes ten). Entries this build filled are kept beside it,
//! and win; saving copies the records still wanted as they are.
//!
//! Layout, little-endian: the magic `RCSTAT2\n`, the entry count (u32), then per entry the
//! path relative to the context (u16 length, bytes), dev, ino, size (u64), mtime and ctime
//! (i64 seconds, i64 nanoseconds each), the content's sha256 (32 bytes), and the kept xattrs: a
//! u16 count (0xffff for "not recorded") then each name (u16 length, bytes) and value (u32
//! length, bytes). A file that does not parse to its end is ignored whole: it is only a cache.

use std::collections::HashMap;
use std::hash::BuildHasher;

use super::{StatEntry, StatKey};

const MAGIC: &[u8; 8] = b"RCSTAT2\n";
/// The xattr count meaning "not recorded" (the file's xattrs are read again).
const NO_XATTRS: u16 = u16::MAX;
/// The bytes of a record after its path and before its xattrs.
const FIXED: usize = 7 * 8 + 32;

/// Where an entry found by [`StatCache::find`] is, for [`StatCache::mark_used`].
#[derive(Debug, Clone, Copy)]
pub(super) enum Slot {
    Fresh,
    Loaded(usize),
}

/// An entry as [`StatCache::find`] decodes it.
#[derive(Debug)]
pub(super) struct Found {
    pub slot: Slot,
    pub key: StatKey,
    pub sha256: [u8; 32],
    pub xattrs: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

/// Kept xattrs (name, value) as [`StatCache::hit`] lends them.
pub(super) type XattrRefs<'a> = Vec<(&'a [u8], &'a [u8])>;

#[derive(Debug, Default)]
pub(super) struct StatCache {
    /// The file as read.
    data: Vec<u8>,
    /// (start, end) of each record of `data`.
    records: Vec<(u32, u32)>,
    /// An open-addressing table over `records`: (high half of the path's hash, record + 1),
    /// (0, 0) for a free slot; its length a power of two at least twice the records'.
    table: Vec<(u32, u32)>,
    /// For each record: hit since it was loaded (the records kept first when the cache
    /// outgrows its limit).
    used: Vec<bool>,
    /// Entries this build filled (they win over `data`'s).
    fresh: HashMap<Vec<u8>, StatEntry, foldhash::fast::RandomState>,
}

/// The hash of a path in the table (a fixed seed: a run is reproducible).
fn path_hash(path: &[u8]) -> u64 {
    foldhash::fast::FixedState::with_seed(0x5743_5441_5443_4352).hash_one(path)
}

/// A stat as a record stores it.
fn key_bytes(k: &StatKey) -> [u8; 56] {
    let mut out = [0u8; 56];
    let fields = [
        k.dev.to_le_bytes(),
        k.ino.to_le_bytes(),
        k.size.to_le_bytes(),
        k.mtime.0.to_le_bytes(),
        k.mtime.1.to_le_bytes(),
        k.ctime.0.to_le_bytes(),
        k.ctime.1.to_le_bytes(),
    ];
    for (chunk, f) in out.chunks_exact_mut(8).zip(fields) {
        chunk.copy_from_slice(&f);
    }
    out
}

/// Whether `data` is a stat cache of an earlier format (its entries are simply read again,
/// nothing to warn about).
pub(super) fn is_older_format(data: &[u8]) -> bool {
    data.starts_with(b"RCSTAT") && !data.starts_with(MAGIC)
}

impl StatCache {
    /// Reads a file written by [`StatCache::encode`]; `None` when it is not one (or is cut
    /// short).
    pub(super) fn load(data: Vec<u8>) -> Option<StatCache> {
        let mut r = Reader { data: &data, at: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return None;
        }
        let count = r.u32()? as usize;
        // Each entry takes at least 92 bytes: a count beyond what the file can hold is a lie.
        // Offsets are u32: a larger file is not one this writes.
        if count > data.len() / 92 + 1 || u32::try_from(data.len()).is_err() {
            return None;
        }
        let size = (count * 2).max(16).next_power_of_two();
        let mask = size - 1;
        let mut table = vec![(0u32, 0u32); size];
        let mut records = Vec::with_capacity(count);
        for n in 0..count {
            let start = r.at;
            let len = usize::from(r.u16()?);
            let path = r.take(len)?;
            let hash = path_hash(path);
            r.take(FIXED)?;
            let x = r.u16()?;
            if x != NO_XATTRS {
                for _ in 0..x {
                    let name_len = usize::from(r.u16()?);
                    r.take(name_len)?;
                    let value_len = r.u32()? as usize;
                    r.take(value_len)?;
                }
            }
            records.push((start as u32, r.at as u32));
            let mut i = hash as usize & mask;
            while table[i].1 != 0 {
                i = (i + 1) & mask;
            }
            table[i] = ((hash >> 32) as u32, n as u32 + 1);
        }
        if r.at != data.len() {
            return None;
        }
        Some(StatCache {
            used: vec![false; records.len()],
            records,
            table,
            data,
            fresh: HashMap::default(),
        })
    }

    /// How many entries it holds (an entry refilled by this build counted twice).
    pub(super) fn len(&self) -> usize {
        self.records.len() + self.fresh.len()
    }

    /// The loaded record of `path`: its number and bytes.
    fn record(&self, path: &[u8]) -> Option<(usize, &[u8])> {
        if self.table.is_empty() {
            return None;
        }
        let hash = path_hash(path);
        let mask = self.table.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let (high, n) = *self.table.get(i)?;
            if n == 0 {
                return None;
            }
            if high == (hash >> 32) as u32 {
                let n = n as usize - 1;
                let &(start, end) = self.records.get(n)?;
                let record = self.data.get(start as usize..end as usize)?;
                if record_path(record) == path {
                    return Some((n, record));
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// The content sum and kept xattrs of `path` when its stat is `key` and its xattrs were
    /// recorded; marks it used. Decodes and allocates nothing for a file with no xattrs: a
    /// build with nothing changed is thousands of these.
    pub(super) fn hit(&mut self, path: &[u8], key: &StatKey) -> Option<([u8; 32], XattrRefs<'_>)> {
        if !self.fresh.is_empty() && self.fresh.contains_key(path) {
            let e = self.fresh.get(path)?;
            if e.key != *key {
                return None;
            }
            let x = e.xattrs.as_ref()?;
            return Some((
                e.sha256,
                x.iter()
                    .map(|(k, v)| (k.as_slice(), v.as_slice()))
                    .collect(),
            ));
        }
        let (n, _) = self.record(path)?;
        // The record's fields after the path (checked when loaded).
        let (start, end) = *self.records.get(n)?;
        let record = self.data.get(start as usize..end as usize)?;
        let rest = record.get(2 + path.len()..)?;
        if rest.get(..56)? != key_bytes(key) {
            return None;
        }
        let sha256: [u8; 32] = rest.get(56..88)?.try_into().ok()?;
        let mut r = Reader {
            data: rest,
            at: FIXED,
        };
        let count = r.u16()?;
        if count == NO_XATTRS {
            return None;
        }
        let mut xattrs = Vec::new();
        for _ in 0..count {
            let name_len = usize::from(r.u16()?);
            let name = r.take(name_len)?;
            let value_len = r.u32()? as usize;
            xattrs.push((name, r.take(value_len)?));
        }
        if let Some(u) = self.used.get_mut(n) {
            *u = true;
        }
        Some((sha256, xattrs))
    }

    /// The entry of `path` (relative to the context), decoded.
    pub(super) fn find(&self, path: &[u8]) -> Option<Found> {
        if let Some(e) = self.fresh.get(path) {
            return Some(Found {
                slot: Slot::Fresh,
                key: e.key.clone(),
                sha256: e.sha256,
                xattrs: e.xattrs.clone(),
            });
        }
        let (n, record) = self.record(path)?;
        parse(record).map(|(_, found)| Found {
            slot: Slot::Loaded(n),
            ..found
        })
    }

    pub(super) fn mark_used(&mut self, slot: Slot) {
        if let Slot::Loaded(i) = slot {
            if let Some(u) = self.used.get_mut(i) {
                *u = true;
            }
        }
    }

    /// Records what this build read of `path` (it wins over a loaded entry).
    pub(super) fn insert(&mut self, path: Vec<u8>, entry: StatEntry) {
        self.fresh.insert(path, entry);
    }

    /// Takes in a cache loaded meanwhile: the entries this one filled win.
    pub(super) fn absorb(&mut self, mut loaded: StatCache) {
        if self.records.is_empty() {
            loaded.fresh.extend(std::mem::take(&mut self.fresh));
            *self = loaded;
            return;
        }
        // Two loads (not what a build does): the other's entries join the filled ones.
        for &(start, end) in &loaded.records {
            let Some(record) = loaded.data.get(start as usize..end as usize) else {
                continue;
            };
            if let Some((path, found)) = decode_any(record) {
                if self.find(&path).is_none() {
                    self.fresh.insert(
                        path,
                        StatEntry {
                            key: found.key,
                            sha256: found.sha256,
                            xattrs: found.xattrs,
                        },
                    );
                }
            }
        }
        for (path, e) in loaded.fresh {
            self.fresh.entry(path).or_insert(e);
        }
    }

    /// The file to save: at most `max` entries, all of them when they fit, else those used
    /// since loading (loaded ones copied as they are).
    pub(super) fn encode(&self, max: usize) -> Vec<u8> {
        let keep_all = self.len() <= max;
        let mut out = Vec::with_capacity(self.data.len() + 128 * self.fresh.len() + 12);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&0u32.to_le_bytes());
        let mut count: u32 = 0;
        for (path, e) in &self.fresh {
            if count as usize >= max {
                break;
            }
            if encode_entry(&mut out, path, e) {
                count += 1;
            }
        }
        for (&(start, end), &used) in self.records.iter().zip(&self.used) {
            if count as usize >= max {
                break;
            }
            if !(keep_all || used) {
                continue;
            }
            let Some(record) = self.data.get(start as usize..end as usize) else {
                continue;
            };
            if !self.fresh.is_empty() && self.fresh.contains_key(record_path(record)) {
                continue;
            }
            out.extend_from_slice(record);
            count += 1;
        }
        out[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&count.to_le_bytes());
        out
    }
}

/// Appends one entry; false (nothing written) when it does not fit the format.
fn encode_entry(out: &mut Vec<u8>, path: &[u8], e: &StatEntry) -> bool {
    let Ok(len) = u16::try_from(path.len()) else {
        return false;
    };
    let xattrs = e.xattrs.as_ref().filter(|x| {
        x.len() < usize::from(NO_XATTRS)
            && x.iter()
                .all(|(k, v)| k.len() <= usize::from(u16::MAX) && u32::try_from(v.len()).is_ok())
    });
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(path);
    let k = &e.key;
    for v in [k.dev, k.ino, k.size] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in [k.mtime.0, k.mtime.1, k.ctime.0, k.ctime.1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&e.sha256);
    match xattrs {
        None => out.extend_from_slice(&NO_XATTRS.to_le_bytes()),
        Some(x) => {
            out.extend_from_slice(&(x.len() as u16).to_le_bytes());
            for (name, value) in x {
                out.extend_from_slice(&(name.len() as u16).to_le_bytes());
                out.extend_from_slice(name);
                out.extend_from_slice(&(value.len() as u32).to_le_bytes());
                out.extend_from_slice(value);
            }
        }
    }
    true
}

/// The path of a record (checked when loaded).
fn record_path(record: &[u8]) -> &[u8] {
    let len = record
        .get(..2)
        .map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])));
    record.get(2..2 + len).unwrap_or_default()
}

/// A record's path and entry, owned.
fn decode_any(record: &[u8]) -> Option<(Vec<u8>, Found)> {
    parse(record).map(|(p, f)| (p.to_vec(), f))
}

fn parse(record: &[u8]) -> Option<(&[u8], Found)> {
    let mut r = Reader {
        data: record,
        at: 0,
    };
    let len = usize::from(r.u16()?);
    let path = r.take(len)?;
    let key = StatKey {
        dev: r.u64()?,
        ino: r.u64()?,
        size: r.u64()?,
        mtime: (r.i64()?, r.i64()?),
        ctime: (r.i64()?, r.i64()?),
    };
    let sha256: [u8; 32] = r.array()?;
    let xattrs = match r.u16()? {
        NO_XATTRS => None,
        n => {
            let mut x = Vec::with_capacity(usize::from(n));
            for _ in 0..n {
                let name_len = usize::from(r.u16()?);
                let name = r.take(name_len)?.to_vec();
                let value_len = r.u32()? as usize;
                let value = r.take(value_len)?.to_vec();
                x.push((name, value));
            }
            Some(x)
        }
    };
    Some((
        path,
        Found {
            slot: Slot::Fresh,
            key,
            sha256,
            xattrs,
        },
    ))
}

/// A cursor over bytes; every read fails past the end.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.data.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(out)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64, xattrs: Option<Vec<(Vec<u8>, Vec<u8>)>>) -> StatEntry {
        StatEntry {
            key: StatKey {
                dev: n,
                ino: n + 1,
                size: n + 2,
                mtime: (-3, 4),
                ctime: (5, 999_999_999),
            },
            sha256: [n as u8; 32],
            xattrs,
        }
    }

    fn filled(entries: &[(&[u8], StatEntry)]) -> StatCache {
        let mut c = StatCache::default();
        for (p, e) in entries {
            c.insert(p.to_vec(), e.clone());
        }
        c
    }

    #[test]
    fn round_trips_and_refuses_anything_else() {
        let x = vec![(b"user.x".to_vec(), vec![0, 1, 2])];
        let written = filled(&[
            (b"a", entry(1, Some(Vec::new()))),
            (b"dir/\xffb", entry(2, Some(x.clone()))),
            (b"c", entry(3, None)),
        ]);
        let data = written.encode(usize::MAX);
        let mut back = StatCache::load(data.clone()).expect("loads");
        assert_eq!(back.len(), 3);
        for (path, n) in [(&b"a"[..], 1), (b"dir/\xffb", 2), (b"c", 3)] {
            let f = back.find(path).expect("found");
            let want = written.fresh[path].clone();
            assert_eq!(
                (&f.key, f.sha256, &f.xattrs),
                (&want.key, want.sha256, &want.xattrs)
            );
            // A hit needs the same stat, and recorded xattrs.
            assert!(back.hit(path, &entry(n + 10, None).key).is_none());
            let hit = back.hit(path, &want.key).map(|(sum, x)| {
                (
                    sum,
                    x.iter()
                        .map(|(k, v)| (k.to_vec(), v.to_vec()))
                        .collect::<Vec<_>>(),
                )
            });
            match &want.xattrs {
                Some(wx) => assert_eq!(hit, Some((want.sha256, wx.clone()))),
                None => assert_eq!(hit, None),
            }
        }
        assert!(back.find(b"missing").is_none());
        assert!(back.hit(b"missing", &entry(1, None).key).is_none());
        // Cut anywhere, grown, or another format: ignored whole.
        for cut in [0, 5, 12, data.len() / 2, data.len() - 1] {
            assert!(
                StatCache::load(data[..cut].to_vec()).is_none(),
                "cut at {cut}"
            );
        }
        let mut longer = data.clone();
        longer.push(0);
        assert!(StatCache::load(longer).is_none());
        assert!(StatCache::load(b"[[\"/ctx/a\",{}]]".to_vec()).is_none());
        let mut v1 = data.clone();
        v1[..8].copy_from_slice(b"RCSTAT1\n");
        assert!(is_older_format(&v1));
        assert!(StatCache::load(v1).is_none());
        assert!(!is_older_format(&data));
        let mut lying = data.clone();
        lying[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(StatCache::load(lying).is_none());
        // Empty.
        let empty = StatCache::default().encode(usize::MAX);
        assert_eq!(StatCache::load(empty).map(|c| c.len()), Some(0));
    }

    #[test]
    fn thousands_of_paths_are_all_found() {
        let mut c = StatCache::default();
        for n in 0..5000u64 {
            c.insert(
                format!("src/pkg{}/f{n}.txt", n / 100).into_bytes(),
                entry(n, Some(Vec::new())),
            );
        }
        let mut back = StatCache::load(c.encode(usize::MAX)).unwrap();
        for n in 0..5000u64 {
            let path = format!("src/pkg{}/f{n}.txt", n / 100).into_bytes();
            let (sum, x) = back.hit(&path, &entry(n, None).key).expect("hit");
            assert_eq!((sum, x.len()), ([n as u8; 32], 0));
        }
    }

    #[test]
    fn saving_keeps_what_was_used_when_over_the_limit_and_filled_entries_win() {
        let c = filled(&[
            (b"a", entry(1, Some(Vec::new()))),
            (b"b", entry(2, Some(Vec::new()))),
            (b"c", entry(3, Some(Vec::new()))),
        ]);
        let mut back = StatCache::load(c.encode(usize::MAX)).unwrap();
        assert!(back.hit(b"b", &entry(2, None).key).is_some());
        // Refilled by this build: the new entry is saved, not the loaded one.
        back.insert(b"c".to_vec(), entry(30, Some(Vec::new())));
        let mut again = StatCache::load(back.encode(2)).unwrap();
        assert_eq!(again.len(), 2);
        assert!(again.hit(b"c", &entry(30, None).key).is_some());
        assert!(again.hit(b"b", &entry(2, None).key).is_some());
        assert!(again.find(b"a").is_none());
        // Under the limit: everything stays.
        let all = StatCache::load(back.encode(usize::MAX)).unwrap();
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn a_cache_loaded_later_is_merged_under_what_this_build_filled() {
        let on_disk = filled(&[
            (b"a", entry(1, Some(Vec::new()))),
            (b"b", entry(2, Some(Vec::new()))),
        ]);
        let loaded = StatCache::load(on_disk.encode(usize::MAX)).unwrap();
        let mut c = filled(&[(b"b", entry(20, Some(Vec::new())))]);
        c.absorb(loaded);
        assert!(c.hit(b"a", &entry(1, None).key).is_some());
        assert!(c.hit(b"b", &entry(20, None).key).is_some());
        assert!(c.hit(b"b", &entry(2, None).key).is_none());
        // A second load: its entries join, the filled ones still win.
        let other = filled(&[
            (b"b", entry(200, Some(Vec::new()))),
            (b"z", entry(9, Some(Vec::new()))),
        ]);
        c.absorb(StatCache::load(other.encode(usize::MAX)).unwrap());
        assert!(c.hit(b"z", &entry(9, None).key).is_some());
        assert!(c.hit(b"b", &entry(20, None).key).is_some());
    }
}
