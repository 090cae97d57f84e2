//! Batches a burst of file events into one change set: a batch is ready once no event arrived
//! for the quiet period, or when its first event is older than the latency cap (a tool that
//! writes without pause still gets its changes synced).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Quiet period: long enough to cover an editor's save (write, rename, chmod) or a `git
/// checkout`, short enough that a sync lands well within a second.
pub const QUIET: Duration = Duration::from_millis(150);
/// The longest a change waits while events keep coming.
pub const MAX_LATENCY: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct Debouncer {
    quiet: Duration,
    max_latency: Duration,
    pending: BTreeSet<PathBuf>,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Default for Debouncer {
    fn default() -> Self {
        Debouncer::new(QUIET, MAX_LATENCY)
    }
}

impl Debouncer {
    pub fn new(quiet: Duration, max_latency: Duration) -> Debouncer {
        Debouncer {
            quiet,
            max_latency,
            pending: BTreeSet::new(),
            first: None,
            last: None,
        }
    }

    /// Records a changed path (a path changed twice is in the batch once).
    pub fn push(&mut self, path: PathBuf, now: Instant) {
        self.pending.insert(path);
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When the pending batch becomes ready; `None` when nothing is pending.
    pub fn deadline(&self) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        Some((last + self.quiet).min(first + self.max_latency))
    }

    /// The batch, sorted, when it is ready at `now`.
    pub fn take_ready(&mut self, now: Instant) -> Option<Vec<PathBuf>> {
        if self.deadline()? > now {
            return None;
        }
        self.first = None;
        self.last = None;
        Some(std::mem::take(&mut self.pending).into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_burst_becomes_one_batch_after_the_quiet_period() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(ms(100), ms(1000));
        assert_eq!(d.deadline(), None);
        assert_eq!(d.take_ready(t0), None);
        for i in 0..1000u64 {
            d.push(PathBuf::from(format!("/p/f{}", i % 500)), t0 + ms(i / 20));
        }
        let last = t0 + ms(999 / 20);
        assert_eq!(d.deadline(), Some(last + ms(100)));
        assert_eq!(d.take_ready(last + ms(99)), None);
        let batch = d.take_ready(last + ms(100)).unwrap();
        assert_eq!(batch.len(), 500, "duplicates are merged");
        assert!(batch.windows(2).all(|w| w[0] < w[1]), "sorted");
        assert_eq!(d.deadline(), None);
        assert_eq!(d.take_ready(last + ms(500)), None);
    }

    #[test]
    fn continuous_events_are_flushed_at_the_latency_cap() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(ms(100), ms(300));
        for i in 0..10u64 {
            d.push(PathBuf::from("/p/busy"), t0 + ms(i * 50));
        }
        // The last event (450 ms) would push the quiet deadline to 550 ms: the cap says 300.
        assert_eq!(d.deadline(), Some(t0 + ms(300)));
        assert_eq!(d.take_ready(t0 + ms(300)).unwrap().len(), 1);
        d.push(PathBuf::from("/p/next"), t0 + ms(310));
        assert_eq!(d.deadline(), Some(t0 + ms(410)));
    }
}
