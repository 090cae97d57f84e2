//! The seam between plans and the machine: a [`Host`] applies one operation (and undoes one
//! when a run is rolled back). The supervisor's host runs containers, networks and volumes for
//! real; the recording double in this module's tests writes down what it was asked, so the
//! executor and plans are tested without root.

use futures_util::future::BoxFuture;

use super::ops::Step;

/// Why a host could not apply an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The operation failed; the message says what and on what.
    #[error("{0}")]
    Failed(String),
    /// The object the operation names does not exist.
    #[error("no such {kind}: {name}")]
    NotFound { kind: &'static str, name: String },
}

/// Applies operations on a machine.
pub trait Host: Send + Sync {
    /// Does one step's operation.
    fn apply<'a>(&'a self, step: &'a Step) -> BoxFuture<'a, Result<(), HostError>>;

    /// Undoes a step this run applied, when a later step failed: removes what it created
    /// (a container is stopped first). Only steps whose `op.creates()` are undone.
    fn undo<'a>(&'a self, step: &'a Step) -> BoxFuture<'a, Result<(), HostError>>;

    /// Warnings produced since the last call (an optional `depends_on` wait that failed, ...);
    /// the executor puts them in its report after a successful run. A host that prints its
    /// warnings as they happen keeps the default.
    fn take_warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

#[cfg(test)]
pub mod testing {
    //! A [`Host`] that writes down what it is asked, for executor and plan tests: it records
    //! "apply <op>" and "undo <op>" lines in order, fails the operations it is told to, and
    //! can hold an operation until the test releases it (to prove that steps overlap).

    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use futures_util::future::BoxFuture;
    use tokio::sync::Notify;

    use super::{Host, HostError};
    use crate::plan::ops::{Op, Step};

    type Pred = Box<dyn Fn(&Op) -> bool + Send + Sync>;

    /// An operation held by [`RecordingHost::hold`]: the host stops in it until released.
    #[derive(Default)]
    pub struct Gate {
        entered: Notify,
        release: Notify,
    }

    impl Gate {
        /// Waits until the held operation has started (it is then in flight).
        pub async fn entered(&self) {
            self.entered.notified().await
        }

        /// Lets the held operation finish (also when it has not started yet).
        pub fn release(&self) {
            self.release.notify_one()
        }
    }

    #[derive(Default)]
    pub struct RecordingHost {
        log: Mutex<Vec<String>>,
        fail_apply: Mutex<Vec<(Pred, String)>>,
        fail_undo: Mutex<Vec<(String, String)>>,
        holds: Mutex<HashMap<String, Arc<Gate>>>,
        warnings: Mutex<Vec<String>>,
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    impl RecordingHost {
        pub fn new() -> RecordingHost {
            RecordingHost::default()
        }

        /// Applying the operation whose text is `op` fails with `message`.
        pub fn fail(&self, op: &str, message: &str) -> &Self {
            let op = op.to_string();
            self.fail_when(move |o| o.to_string() == op, message)
        }

        /// Applying an operation that matches `pred` fails with `message`. An optional wait
        /// (`WaitContainer { required: false }`) that fails is a warning, as on a real host.
        pub fn fail_when(
            &self,
            pred: impl Fn(&Op) -> bool + Send + Sync + 'static,
            message: &str,
        ) -> &Self {
            lock(&self.fail_apply).push((Box::new(pred), message.to_string()));
            self
        }

        /// Undoing the operation whose text is `op` fails with `message`.
        pub fn fail_undo(&self, op: &str, message: &str) -> &Self {
            lock(&self.fail_undo).push((op.to_string(), message.to_string()));
            self
        }

        /// Holds the operation whose text is `op` once it has started, until the gate is
        /// released.
        pub fn hold(&self, op: &str) -> Arc<Gate> {
            lock(&self.holds).entry(op.to_string()).or_default().clone()
        }

        /// Every "apply <op>" and "undo <op>" line so far, in order.
        pub fn log(&self) -> Vec<String> {
            lock(&self.log).clone()
        }

        fn failure(&self, op: &Op) -> Option<String> {
            lock(&self.fail_apply)
                .iter()
                .find(|(pred, _)| pred(op))
                .map(|(_, m)| m.clone())
        }
    }

    impl Host for RecordingHost {
        fn apply<'a>(&'a self, step: &'a Step) -> BoxFuture<'a, Result<(), HostError>> {
            Box::pin(async move {
                let text = step.op.to_string();
                lock(&self.log).push(format!("apply {text}"));
                let gate = lock(&self.holds).get(&text).cloned();
                if let Some(gate) = gate {
                    gate.entered.notify_one();
                    gate.release.notified().await;
                }
                match (self.failure(&step.op), &step.op) {
                    (None, _) => Ok(()),
                    (
                        Some(m),
                        Op::WaitContainer {
                            required: false, ..
                        },
                    ) => {
                        lock(&self.warnings).push(format!("{text}: {m}"));
                        Ok(())
                    }
                    (Some(m), _) => Err(HostError::Failed(m)),
                }
            })
        }

        fn undo<'a>(&'a self, step: &'a Step) -> BoxFuture<'a, Result<(), HostError>> {
            Box::pin(async move {
                let text = step.op.to_string();
                lock(&self.log).push(format!("undo {text}"));
                let failure = lock(&self.fail_undo)
                    .iter()
                    .find(|(op, _)| *op == text)
                    .map(|(_, m)| m.clone());
                failure.map_or(Ok(()), |m| Err(HostError::Failed(m)))
            })
        }

        fn take_warnings(&self) -> Vec<String> {
            std::mem::take(&mut *lock(&self.warnings))
        }
    }
}
