//! The descriptors the DNS servers of this process may hold together.
//!
//! Every TCP connection from a container and every socket to an upstream resolver is a
//! descriptor of the supervisor, which also needs them for its control socket and for the
//! containers it runs. DNS gets a quarter of the open-files limit (taken when first needed,
//! after the supervisor raised it), between [`MIN`] and [`MAX`]; a server that has none left
//! pauses its TCP accepts and answers what it would forward with SERVFAIL.

use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;

pub const MIN: usize = 64;
pub const MAX: usize = 16_384;

/// The budget's size for a soft open-files limit.
pub fn share(soft_limit: Option<u64>) -> usize {
    let soft = soft_limit.map_or(1024, |s| usize::try_from(s).unwrap_or(usize::MAX));
    (soft / 4).clamp(MIN, MAX)
}

/// The process-wide budget of DNS descriptors.
pub fn budget() -> Arc<Semaphore> {
    static BUDGET: OnceLock<Arc<Semaphore>> = OnceLock::new();
    BUDGET
        .get_or_init(|| Arc::new(Semaphore::new(share(crate::runtime::nofile::soft_limit()))))
        .clone()
}
