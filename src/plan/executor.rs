//! Runs a plan through a host: every step once the steps it follows succeeded, as many at
//! once as the edges allow; after a failure nothing new starts, and what this run created is
//! undone in reverse order.
//!
//! Scheduling happens in one task: the ready steps' `Host::apply` futures sit in a
//! `FuturesUnordered`, so concurrency comes from the host's futures waiting (on a process, a
//! pull, a health check), not from spawned tasks. Ready steps are started lowest id first, so a
//! deterministic host gives a deterministic run.

use std::collections::BTreeSet;

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::host::{Host, HostError};
use super::ops::{Op, Plan, StepId};

/// How to run a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOptions {
    /// After a failure, undo what this run created (containers, networks, volumes).
    pub rollback: bool,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions { rollback: true }
    }
}

/// What a successful run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every step, in the order they completed.
    pub done: Vec<StepId>,
    /// Steps undone (always empty after a success: a rollback only follows a failure, and its
    /// undone steps are in [`ExecError::Step`]).
    pub undone: Vec<StepId>,
    /// What the host warned about during the run ([`Host::take_warnings`]).
    pub warnings: Vec<String>,
}

/// Why a plan did not run to the end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// A step failed. The steps already applied were undone (with rollback on) except where
    /// undoing them failed; `undo_errors` says where. Steps that were running at the time and
    /// failed too are not named here (the host reports each operation's outcome): like docker
    /// compose, the run fails with its first error.
    #[error("cannot {op}: {source}{}", rollback_tail(.undo_errors))]
    Step {
        /// The step that failed first.
        step: StepId,
        /// Its operation's text.
        op: String,
        source: HostError,
        /// Steps rolled back, in the order they were undone.
        undone: Vec<StepId>,
        /// Undos that failed, as "cannot undo <op>: <error>".
        undo_errors: Vec<String>,
    },
    /// A step follows itself, a later step or a step the plan does not have.
    #[error("invalid plan: {0}")]
    InvalidPlan(String),
}

/// The end of a step error's message: the undos that failed, named.
fn rollback_tail(undo_errors: &[String]) -> String {
    if undo_errors.is_empty() {
        String::new()
    } else {
        format!("; rollback incomplete: {}", undo_errors.join("; "))
    }
}

/// Checks that every `after` names an earlier step, so the plan cannot wait for ever. Steps are
/// numbered from 1 in the message, as `--dry-run` prints them.
fn validate(plan: &Plan) -> Result<(), ExecError> {
    for (id, step) in plan.steps.iter().enumerate() {
        if let Some(bad) = step.after.iter().find(|a| **a >= id) {
            let what = if *bad >= plan.steps.len() {
                "which the plan does not have"
            } else if *bad == id {
                "itself"
            } else {
                "which comes later"
            };
            return Err(ExecError::InvalidPlan(format!(
                "step {} ({}) follows step {}, {what}",
                id + 1,
                step.op,
                bad + 1
            )));
        }
    }
    Ok(())
}

/// Runs `plan` through `host`: each step once every step in its `after` succeeded, ready steps
/// concurrently (started lowest id first). On the first failure nothing new starts, running
/// steps finish, and with `opts.rollback` the applied steps that created something are undone
/// in reverse order of completion (see [`rollback_set`] for the ones that stay) — unless what
/// failed is a container at run time (its start, or a condition awaited on it): those stay,
/// as docker compose leaves them, for their logs.
pub async fn execute<H: Host + ?Sized>(
    plan: &Plan,
    host: &H,
    opts: &ExecOptions,
) -> Result<Report, ExecError> {
    validate(plan)?;
    let steps = &plan.steps;

    // How many distinct predecessors each step still waits for, and who waits for whom.
    let mut waiting: Vec<usize> = Vec::with_capacity(steps.len());
    let mut dependents: Vec<Vec<StepId>> = vec![Vec::new(); steps.len()];
    for (id, step) in steps.iter().enumerate() {
        let after: BTreeSet<StepId> = step.after.iter().copied().collect();
        waiting.push(after.len());
        for a in after {
            dependents[a].push(id);
        }
    }
    let mut ready: BTreeSet<StepId> = (0..steps.len()).filter(|i| waiting[*i] == 0).collect();

    let mut running = FuturesUnordered::new();
    let mut done: Vec<StepId> = Vec::new();
    let mut failed: Option<(StepId, HostError)> = None;
    loop {
        if failed.is_none() {
            // FuturesUnordered polls new futures in the order they were pushed.
            for id in std::mem::take(&mut ready) {
                let step = &steps[id];
                running.push(async move { (id, host.apply(step).await) });
            }
        }
        let Some((id, result)) = running.next().await else {
            break;
        };
        match result {
            Ok(()) => {
                done.push(id);
                for &d in &dependents[id] {
                    waiting[d] -= 1;
                    if waiting[d] == 0 {
                        ready.insert(d);
                    }
                }
            }
            Err(e) => {
                failed.get_or_insert((id, e));
            }
        }
    }

    let Some((step, source)) = failed else {
        return Ok(Report {
            done,
            undone: Vec::new(),
            warnings: host.take_warnings(),
        });
    };

    let mut undone = Vec::new();
    let mut undo_errors = Vec::new();
    // A container that was made and started, and then failed at run time (its command, its
    // healthcheck, a condition), stays with what was made beside it, as docker compose leaves
    // it: its logs say why. What failed to be made is undone.
    let ran = matches!(
        steps[step].op,
        Op::StartContainer { .. } | Op::WaitContainer { .. }
    );
    if opts.rollback && !ran {
        for id in rollback_set(plan, &done) {
            match host.undo(&steps[id]).await {
                Ok(()) => undone.push(id),
                Err(e) => undo_errors.push(format!("cannot undo {}: {e}", steps[id].op)),
            }
        }
    }
    Err(ExecError::Step {
        step,
        op: steps[step].op.to_string(),
        source,
        undone,
        undo_errors,
    })
}

/// The completed steps a rollback undoes, in the order to undo them: those whose op creates
/// something, latest completed first, except a created object whose predecessor this run
/// already removed — a replacement container renamed into place or whose old container was
/// removed, a container or network recreated under the same name. The old one is gone, so
/// removing the new one would leave the service (or network) with nothing.
pub fn rollback_set(plan: &Plan, done: &[StepId]) -> Vec<StepId> {
    let completed: Vec<&Op> = done.iter().map(|&i| &plan.steps[i].op).collect();
    let removed_container = |n: &str| {
        completed
            .iter()
            .any(|op| matches!(op, Op::RemoveContainer { name, .. } if name == n))
    };
    let renamed_from = |n: &str| {
        completed
            .iter()
            .any(|op| matches!(op, Op::RenameContainer { from, .. } if from == n))
    };
    let removed_network = |n: &str| {
        completed
            .iter()
            .any(|op| matches!(op, Op::RemoveNetwork { name, .. } if name == n))
    };
    done.iter()
        .rev()
        .copied()
        .filter(|&id| {
            let op = &plan.steps[id].op;
            if !op.creates() {
                return false;
            }
            match op {
                Op::CreateContainer { name, replaces, .. } => {
                    let replaced_gone = replaces.as_deref().is_some_and(removed_container);
                    !(replaced_gone || renamed_from(name) || removed_container(name))
                }
                Op::CreateNetwork { name, .. } => !removed_network(name),
                _ => true,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::time::Duration;

    use super::*;
    use crate::plan::host::testing::RecordingHost;
    use crate::plan::ops::Cause;

    fn net(name: &str) -> Op {
        Op::CreateNetwork {
            key: name.into(),
            name: name.into(),
        }
    }

    fn vol(name: &str) -> Op {
        Op::CreateVolume {
            key: name.into(),
            name: name.into(),
        }
    }

    fn create(name: &str) -> Op {
        Op::CreateContainer {
            service: "web".into(),
            number: 1,
            name: name.into(),
            replaces: None,
            renew_anon_volumes: false,
        }
    }

    fn replace(name: &str, old: &str) -> Op {
        Op::CreateContainer {
            service: "web".into(),
            number: 1,
            name: name.into(),
            replaces: Some(old.into()),
            renew_anon_volumes: false,
        }
    }

    fn start(name: &str) -> Op {
        Op::StartContainer { name: name.into() }
    }

    fn stop(name: &str) -> Op {
        Op::StopContainer {
            name: name.into(),
            timeout: None,
        }
    }

    fn remove(name: &str) -> Op {
        Op::RemoveContainer {
            name: name.into(),
            volumes: false,
        }
    }

    fn plan(steps: &[(Op, &[StepId])]) -> Plan {
        let mut p = Plan::default();
        for (op, after) in steps {
            p.push(op.clone(), Cause::Missing, after.to_vec());
        }
        p
    }

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Turns a run that hangs (steps that should overlap did not) into a failure.
    async fn within<F: Future>(f: F) -> F::Output {
        match tokio::time::timeout(Duration::from_secs(60), f).await {
            Ok(out) => out,
            Err(_) => panic!("the run hung: steps that should be in flight together were not"),
        }
    }

    async fn run(p: &Plan, host: &RecordingHost) -> Result<Report, ExecError> {
        execute(p, host, &ExecOptions::default()).await
    }

    #[tokio::test]
    async fn an_empty_plan_does_nothing() {
        let host = RecordingHost::new();
        let report = run(&Plan::default(), &host).await.unwrap();
        assert_eq!(report, Report::default());
        assert!(host.log().is_empty());
    }

    #[tokio::test]
    async fn a_chain_runs_in_order() {
        let host = RecordingHost::new();
        let p = plan(&[
            (net("demo_default"), &[]),
            (create("demo-web-1"), &[0]),
            (start("demo-web-1"), &[1]),
        ]);
        // Through a trait object, as the engine holds its host; the run can move between
        // threads (`tokio::spawn`).
        let dyn_host: &dyn Host = &host;
        let opts = ExecOptions::default();
        let fut = execute(&p, dyn_host, &opts);
        fn assert_send<T: Send>(_: &T) {}
        assert_send(&fut);
        let report = fut.await.unwrap();
        assert_eq!(report.done, vec![0, 1, 2]);
        assert_eq!(
            host.log(),
            lines(&[
                "apply create network demo_default",
                "apply create container demo-web-1",
                "apply start container demo-web-1",
            ])
        );
    }

    #[tokio::test]
    async fn independent_steps_are_in_flight_at_once() {
        let host = RecordingHost::new();
        let p = plan(&[(create("a"), &[]), (create("b"), &[]), (start("a"), &[0])]);
        let a = host.hold("create container a");
        let b = host.hold("create container b");
        let driver = async {
            // Both held at once: a sequential executor would never start b while a waits.
            a.entered().await;
            b.entered().await;
            b.release();
            a.release();
        };
        let (result, ()) = within(async { tokio::join!(run(&p, &host), driver) }).await;
        let report = result.unwrap();
        assert_eq!(report.done, vec![1, 0, 2]);
        assert_eq!(
            host.log(),
            lines(&[
                "apply create container a",
                "apply create container b",
                "apply start container a",
            ])
        );
    }

    #[tokio::test]
    async fn a_diamond_joins_on_both_branches() {
        let host = RecordingHost::new();
        let mut p = plan(&[
            (net("n"), &[]),
            (create("a"), &[0]),
            (create("b"), &[0]),
            (start("a"), &[1, 2]),
        ]);
        // A repeated edge counts once (`Plan::push` dedups, but `steps` is public).
        p.steps[3].after = vec![1, 2, 1];
        let a = host.hold("create container a");
        let driver = async {
            a.entered().await;
            // b is done, a is held: the join must not have started.
            assert_eq!(
                host.log(),
                lines(&[
                    "apply create network n",
                    "apply create container a",
                    "apply create container b",
                ])
            );
            a.release();
        };
        let (result, ()) = within(async { tokio::join!(run(&p, &host), driver) }).await;
        assert_eq!(result.unwrap().done, vec![0, 2, 1, 3]);
        assert_eq!(host.log().last().unwrap(), "apply start container a");
    }

    #[tokio::test]
    async fn a_failure_stops_dependents_and_steps_not_started() {
        let host = RecordingHost::new();
        host.fail("create container a", "port 80 is taken");
        let p = plan(&[
            (create("a"), &[]),
            (stop("old"), &[]),
            (start("a"), &[0]),
            (remove("old"), &[1]),
        ]);
        let err = run(&p, &host).await.unwrap_err();
        // stop old was already running when create a failed: it finishes, but remove old,
        // ready only then, never starts.
        assert_eq!(
            host.log(),
            lines(&["apply create container a", "apply stop container old"])
        );
        match err {
            ExecError::Step { step, undone, .. } => {
                assert_eq!(step, 0);
                assert!(undone.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn running_steps_finish_after_a_failure_and_count() {
        let host = RecordingHost::new();
        host.fail("create container a", "no such image");
        let p = plan(&[
            (create("a"), &[]),
            (vol("data"), &[]),
            (start("a"), &[0]),
            (create("b"), &[1]),
        ]);
        let a = host.hold("create container a");
        let v = host.hold("create volume data");
        let driver = async {
            a.entered().await;
            v.entered().await;
            // a fails while the volume is still being created.
            a.release();
            v.release();
        };
        let (result, ()) = within(async { tokio::join!(run(&p, &host), driver) }).await;
        match result.unwrap_err() {
            ExecError::Step { step, undone, .. } => {
                assert_eq!(step, 0);
                // The volume finished after the failure: it counts, and is rolled back.
                assert_eq!(undone, vec![1]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            host.log(),
            lines(&[
                "apply create container a",
                "apply create volume data",
                "undo create volume data",
            ])
        );
    }

    #[tokio::test]
    async fn rollback_undoes_what_was_created_in_reverse_completion_order() {
        let host = RecordingHost::new();
        host.fail("create container c", "no space left on device");
        let p = plan(&[
            (net("n"), &[]),
            (vol("v"), &[]),
            (create("a"), &[0]),
            (start("a"), &[2]),
            (create("b"), &[1]),
            (start("b"), &[4]),
            (create("c"), &[4]),
        ]);
        // The volume completes after container a: completion order is not id order.
        let v = host.hold("create volume v");
        let driver = async {
            v.entered().await;
            v.release();
        };
        let (result, ()) = within(async { tokio::join!(run(&p, &host), driver) }).await;
        match result.unwrap_err() {
            ExecError::Step {
                step,
                undone,
                undo_errors,
                ..
            } => {
                assert_eq!(step, 6);
                // Completed: 0, 2, 3, then 1 (released), 4 (and 5 beside 6).
                // Starts are not undone (undoing a create stops the container first).
                assert_eq!(undone, vec![4, 1, 2, 0]);
                assert!(undo_errors.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
        let log = host.log();
        assert_eq!(
            log[log.len() - 4..],
            lines(&[
                "undo create container b",
                "undo create volume v",
                "undo create container a",
                "undo create network n",
            ])
        );
    }

    /// docker compose's recreation: the replacement under a temporary name, then the old one
    /// stopped, removed, and the replacement renamed into place.
    fn recreation(fail_at: &str) -> (Plan, RecordingHost) {
        let host = RecordingHost::new();
        host.fail(fail_at, "boom");
        let p = plan(&[
            (replace("tmp_web-1", "web-1"), &[]),
            (stop("web-1"), &[0]),
            (remove("web-1"), &[1]),
            (
                Op::RenameContainer {
                    from: "tmp_web-1".into(),
                    to: "web-1".into(),
                },
                &[2],
            ),
            (create("worker-1"), &[]),
            (start("web-1"), &[3, 4]),
        ]);
        (p, host)
    }

    fn undone_of(err: ExecError) -> Vec<StepId> {
        match err {
            ExecError::Step { undone, .. } => undone,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn rollback_keeps_a_replacement_once_the_old_container_is_gone() {
        // Renamed into place, then the start fails: a failure at run time undoes nothing
        // (docker compose's containers stay for their logs).
        let (p, host) = recreation("start container web-1");
        assert_eq!(
            undone_of(run(&p, &host).await.unwrap_err()),
            Vec::<StepId>::new()
        );

        // The old one removed, the rename fails: the replacement is all there is, it stays.
        let (p, host) = recreation("rename container tmp_web-1 to web-1");
        assert_eq!(undone_of(run(&p, &host).await.unwrap_err()), vec![4]);

        // The old one could not be removed: it is still there, so the replacement goes.
        let (p, host) = recreation("remove container web-1");
        assert_eq!(undone_of(run(&p, &host).await.unwrap_err()), vec![4, 0]);
        assert!(host.log().contains(
            &"undo create container tmp_web-1 (replacing web-1, its anonymous volumes)".to_string()
        ));
    }

    #[tokio::test]
    async fn a_failure_at_run_time_keeps_what_was_made() {
        for failing in ["start container a", "wait for container a: service_healthy"] {
            let host = RecordingHost::new();
            host.fail(failing, "unhealthy");
            let p = plan(&[
                (net("n"), &[]),
                (create("a"), &[0]),
                (start("a"), &[1]),
                (
                    Op::WaitContainer {
                        name: "a".into(),
                        condition: "service_healthy".into(),
                        required: true,
                    },
                    &[2],
                ),
                (create("b"), &[0]),
                (start("b"), &[3, 4]),
            ]);
            let err = run(&p, &host).await.unwrap_err();
            assert!(undone_of(err).is_empty(), "{failing}");
            assert!(
                host.log().iter().all(|l| l.starts_with("apply ")),
                "{failing}"
            );
        }
    }

    #[tokio::test]
    async fn rollback_keeps_a_network_recreated_under_its_name() {
        let host = RecordingHost::new();
        host.fail("create container a", "boom");
        let p = plan(&[
            (
                Op::RemoveNetwork {
                    key: "n".into(),
                    name: "n".into(),
                },
                &[],
            ),
            (net("n"), &[0]),
            (net("other"), &[]),
            (create("a"), &[1, 2]),
        ]);
        assert_eq!(undone_of(run(&p, &host).await.unwrap_err()), vec![2]);
    }

    #[tokio::test]
    async fn without_rollback_nothing_is_undone() {
        let host = RecordingHost::new();
        host.fail("start container a", "boom");
        let p = plan(&[(net("n"), &[]), (create("a"), &[0]), (start("a"), &[1])]);
        let err = execute(&p, &host, &ExecOptions { rollback: false })
            .await
            .unwrap_err();
        assert!(undone_of(err).is_empty());
        assert!(host.log().iter().all(|l| l.starts_with("apply ")));
    }

    #[tokio::test]
    async fn undo_errors_are_reported_and_every_undo_is_tried() {
        let host = RecordingHost::new();
        host.fail("create container b", "boom")
            .fail_undo("create container a", "device or resource busy");
        let p = plan(&[
            (net("n"), &[]),
            (vol("v"), &[]),
            (create("a"), &[0, 1]),
            (create("b"), &[2]),
        ]);
        let err = run(&p, &host).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot create container b: boom; rollback incomplete: cannot undo create container \
             a: device or resource busy"
        );
        match err {
            ExecError::Step {
                undone,
                undo_errors,
                ..
            } => {
                assert_eq!(undone, vec![1, 0]);
                assert_eq!(undo_errors.len(), 1);
            }
            other => panic!("unexpected {other:?}"),
        }
        let log = host.log();
        assert_eq!(
            log[log.len() - 3..],
            lines(&[
                "undo create container a",
                "undo create volume v",
                "undo create network n",
            ])
        );
    }

    #[tokio::test]
    async fn an_invalid_plan_is_refused_before_anything_runs() {
        let host = RecordingHost::new();
        let mut p = plan(&[(net("n"), &[]), (create("a"), &[0]), (start("a"), &[1])]);
        p.steps[1].after = vec![2];
        assert_eq!(
            run(&p, &host).await.unwrap_err(),
            ExecError::InvalidPlan(
                "step 2 (create container a) follows step 3, which comes later".into()
            )
        );
        p.steps[1].after = vec![1];
        assert!(run(&p, &host)
            .await
            .unwrap_err()
            .to_string()
            .ends_with("follows step 2, itself"));
        p.steps[1].after = vec![9];
        assert_eq!(
            run(&p, &host).await.unwrap_err().to_string(),
            "invalid plan: step 2 (create container a) follows step 10, which the plan does not \
             have"
        );
        assert!(host.log().is_empty());
    }

    #[tokio::test]
    async fn the_error_names_the_operation_and_the_cause() {
        let host = RecordingHost::new();
        host.fail("create container demo-web-1", "port 80 is taken");
        let p = plan(&[(create("demo-web-1"), &[])]);
        let err = run(&p, &host).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot create container demo-web-1: port 80 is taken"
        );
        match err {
            ExecError::Step {
                step, op, source, ..
            } => {
                assert_eq!(step, 0);
                assert_eq!(op, "create container demo-web-1");
                assert_eq!(source, HostError::Failed("port 80 is taken".into()));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn of_steps_failing_together_the_first_is_the_error() {
        let host = RecordingHost::new();
        host.fail("create container a", "boom")
            .fail("create container b", "bang");
        let p = plan(&[(create("a"), &[]), (create("b"), &[]), (net("n"), &[])]);
        assert_eq!(
            run(&p, &host).await.unwrap_err().to_string(),
            "cannot create container a: boom"
        );
        // Both were in flight and ran to their end; the network was too, and is undone.
        assert_eq!(
            host.log(),
            lines(&[
                "apply create container a",
                "apply create container b",
                "apply create network n",
                "undo create network n",
            ])
        );
    }

    #[tokio::test]
    async fn an_optional_wait_that_fails_is_a_warning() {
        let wait = |required| Op::WaitContainer {
            name: "db-1".into(),
            condition: "service_healthy".into(),
            required,
        };
        let host = RecordingHost::new();
        host.fail_when(|op| matches!(op, Op::WaitContainer { .. }), "unhealthy");
        let p = plan(&[(wait(false), &[]), (start("web-1"), &[0])]);
        let report = run(&p, &host).await.unwrap();
        assert_eq!(report.done, vec![0, 1]);
        assert_eq!(
            report.warnings,
            lines(&["wait for container db-1: service_healthy (optional): unhealthy"])
        );

        let p = plan(&[(wait(true), &[]), (start("web-1"), &[0])]);
        assert_eq!(
            run(&p, &host).await.unwrap_err().to_string(),
            "cannot wait for container db-1: service_healthy: unhealthy"
        );
    }
}
