//! The context sources of COPY/ADD steps, resolved and digested ahead of their steps.
//!
//! A build with nothing changed is mostly walks of the context (one `stat` per file) and their
//! digests, one COPY after the other, each waiting for the steps before it, and the steps of a
//! stage that copies from another waiting for that stage. Yet which context files a COPY reads
//! is known from the Dockerfile alone when its arguments use no variable. Those sources are
//! resolved and digested on worker threads from the start of the build, in the order of the
//! steps, so the walks overlap each other, the stat cache's load and the steps' own work. A
//! step takes its sources from here, waiting for them if they are being read; a source that
//! could not be read is read again by the step itself, so every error reads as before.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

use super::context::{Context, Source};
use crate::image::digest::Digest;

/// What a COPY/ADD from the context resolves: its sources, `--exclude` patterns and whether
/// it keeps parents (`--parents`), all expanded.
pub(crate) type SourcesKey = (Vec<String>, Vec<String>, bool);

/// Resolved sources and their content digest.
pub(crate) type Resolved = (Vec<Source>, Digest);

/// Most walked entries held for steps that have not taken them yet: past it, the sources left
/// are read by their steps, one at a time, as before (a Dockerfile copying a huge context
/// several times would otherwise hold every walk at once).
pub(crate) const MAX_HELD_ENTRIES: usize = 300_000;

#[derive(Default)]
pub(crate) struct Prefetch {
    state: Mutex<State>,
    ready: Condvar,
}

#[derive(Default)]
struct State {
    /// Keys no worker has taken yet, in the order of the steps.
    queue: VecDeque<SourcesKey>,
    slots: HashMap<SourcesKey, Slot>,
    /// Entries read and not yet taken by their last step.
    held: usize,
}

fn entries(r: &Resolved) -> usize {
    r.0.iter().map(|s| s.entries.len()).sum()
}

struct Slot {
    /// Steps still to take it (the same sources in several steps are read once).
    uses: usize,
    /// `None` while being read; `Some(None)` when reading failed (the step reads again).
    result: Option<Option<Resolved>>,
}

impl Prefetch {
    /// Queues `keys` (in step order; repeats counted as uses).
    pub(crate) fn plan(&self, keys: impl IntoIterator<Item = SourcesKey>) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        for key in keys {
            match st.slots.get_mut(&key) {
                Some(slot) => slot.uses += 1,
                None => {
                    st.slots.insert(
                        key.clone(),
                        Slot {
                            uses: 1,
                            result: None,
                        },
                    );
                    st.queue.push_back(key);
                }
            }
        }
    }

    /// How many keys are queued.
    pub(crate) fn queued(&self) -> usize {
        self.state.lock().map_or(0, |st| st.queue.len())
    }

    /// A worker: reads queued keys until none is left or `stop` is set (then the rest are
    /// marked failed, for their steps to read themselves).
    pub(crate) fn work(&self, ctx: &Context, stop: &AtomicBool, cancel: &AtomicBool) {
        self.work_holding(ctx, stop, cancel, MAX_HELD_ENTRIES)
    }

    fn work_holding(&self, ctx: &Context, stop: &AtomicBool, cancel: &AtomicBool, max: usize) {
        loop {
            let key = {
                let Ok(mut st) = self.state.lock() else {
                    return;
                };
                if stop.load(Ordering::Relaxed) || cancel.load(Ordering::Relaxed) || st.held >= max
                {
                    drop(st);
                    self.abandon();
                    return;
                }
                match st.queue.pop_front() {
                    Some(k) => k,
                    None => return,
                }
            };
            // Whatever happens below (a panic included), the slot ends filled: a step
            // waiting for it must not wait forever.
            let mut guard = Fill {
                prefetch: self,
                key: &key,
                result: None,
            };
            guard.result = ctx
                .resolve_with(&key.0, &key.1, key.2)
                .ok()
                .and_then(|sources| Some((ctx.digest(&sources).ok()?, sources)))
                .map(|(digest, sources)| (sources, digest));
        }
    }

    /// Marks every key not taken by a worker as failed (no worker will read it).
    pub(crate) fn abandon(&self) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let st = &mut *st;
        for key in st.queue.drain(..) {
            if let Some(slot) = st.slots.get_mut(&key) {
                slot.result = Some(None);
            }
        }
        self.ready.notify_all();
    }

    /// The sources of `key` when they were planned and read, waiting while they are being
    /// read; `None` when the step has to read them itself.
    pub(crate) fn take(&self, key: &SourcesKey) -> Option<Resolved> {
        let mut st = self.state.lock().ok()?;
        loop {
            let slot = st.slots.get(key)?;
            if slot.result.is_some() {
                break;
            }
            st = self.ready.wait(st).ok()?;
        }
        let slot = st.slots.get_mut(key)?;
        slot.uses = slot.uses.saturating_sub(1);
        if slot.uses == 0 {
            let taken = st.slots.remove(key)?.result.flatten();
            st.held = st.held.saturating_sub(taken.as_ref().map_or(0, entries));
            return taken;
        }
        slot.result.clone().flatten()
    }

    fn fill(&self, key: &SourcesKey, result: Option<Resolved>) {
        if let Ok(mut st) = self.state.lock() {
            let n = result.as_ref().map_or(0, entries);
            if let Some(slot) = st.slots.get_mut(key) {
                slot.result = Some(result);
                st.held += n;
            }
        }
        self.ready.notify_all();
    }
}

/// Fills a slot when dropped: with the result, or as failed when reading it panicked.
struct Fill<'a> {
    prefetch: &'a Prefetch,
    key: &'a SourcesKey,
    result: Option<Resolved>,
}

impl Drop for Fill<'_> {
    fn drop(&mut self) {
        self.prefetch.fill(self.key, self.result.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> SourcesKey {
        (vec![s.to_string()], Vec::new(), false)
    }

    fn context() -> (tempfile::TempDir, Context) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("b.txt"), "b").unwrap();
        let ctx = Context::open_dir_without_ignore(dir.path()).unwrap();
        (dir, ctx)
    }

    #[test]
    fn planned_sources_are_read_once_and_match_a_direct_read() {
        let (_dir, ctx) = context();
        let p = Prefetch::default();
        p.plan([key("src"), key("b.txt"), key("src")]);
        assert_eq!(p.queued(), 2);
        let (stop, cancel) = (AtomicBool::new(false), AtomicBool::new(false));
        p.work(&ctx, &stop, &cancel);
        assert_eq!(p.queued(), 0);
        let direct = ctx.resolve(&["src".to_string()], &[]).unwrap();
        let want = ctx.digest(&direct).unwrap();
        for _ in 0..2 {
            let (sources, digest) = p.take(&key("src")).expect("prefetched");
            assert_eq!(digest, want);
            assert_eq!(sources.len(), direct.len());
            assert_eq!(sources[0].entries.len(), direct[0].entries.len());
        }
        // Both uses taken: the step after would read it itself.
        assert!(p.take(&key("src")).is_none());
        assert!(p.take(&key("b.txt")).is_some());
        assert!(p.take(&key("never-planned")).is_none());
    }

    #[test]
    fn a_source_that_cannot_be_read_is_left_to_its_step() {
        let (_dir, ctx) = context();
        let p = Prefetch::default();
        p.plan([key("missing"), key("b.txt")]);
        let (stop, cancel) = (AtomicBool::new(false), AtomicBool::new(false));
        p.work(&ctx, &stop, &cancel);
        assert!(p.take(&key("missing")).is_none());
        assert!(p.take(&key("b.txt")).is_some());
    }

    #[test]
    fn a_stopped_prefetch_never_leaves_a_step_waiting() {
        let (_dir, ctx) = context();
        let p = Prefetch::default();
        p.plan([key("src"), key("b.txt")]);
        let (stop, cancel) = (AtomicBool::new(true), AtomicBool::new(false));
        p.work(&ctx, &stop, &cancel);
        assert!(p.take(&key("src")).is_none());
        assert!(p.take(&key("b.txt")).is_none());
    }

    #[test]
    fn past_the_entries_it_may_hold_the_rest_is_left_to_the_steps() {
        let (_dir, ctx) = context();
        let p = Prefetch::default();
        p.plan([key("src"), key("b.txt")]);
        let (stop, cancel) = (AtomicBool::new(false), AtomicBool::new(false));
        // "src" is two entries (the directory and its file): the limit is reached after it.
        p.work_holding(&ctx, &stop, &cancel, 2);
        assert!(p.take(&key("b.txt")).is_none());
        assert!(p.take(&key("src")).is_some());
        assert_eq!(p.state.lock().unwrap().held, 0);
    }

    #[test]
    fn a_step_waits_for_sources_being_read() {
        let (_dir, ctx) = context();
        let p = Prefetch::default();
        p.plan([key("src")]);
        let (stop, cancel) = (AtomicBool::new(false), AtomicBool::new(false));
        std::thread::scope(|s| {
            let taken = s.spawn(|| p.take(&key("src")));
            s.spawn(|| p.work(&ctx, &stop, &cancel));
            assert!(taken.join().unwrap().is_some());
        });
    }
}
