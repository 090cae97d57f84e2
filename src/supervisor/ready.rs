//! One readiness judgement: whether a container meets a `depends_on` condition (for starting
//! its dependents) or is up as `up --wait` means it, from its status, exit code and health.
//! The engine and the CLI's `--wait` both ask here.

use super::state::{ContainerRecord, Health, Status};

/// What is awaited of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// `service_started`: it was started (running now, or already exited).
    Started,
    /// `service_healthy`: its healthcheck passed.
    Healthy,
    /// `service_completed_successfully`: it exited 0.
    CompletedSuccessfully,
    /// `up --wait`: running (healthy when it has a healthcheck), or a one-shot that exited 0.
    Up,
}

impl Condition {
    /// A `depends_on` condition by its compose name (unknown ones: started).
    pub fn of_depends_on(condition: &str) -> Condition {
        use crate::compose::model::{CONDITION_COMPLETED_SUCCESSFULLY, CONDITION_HEALTHY};
        match condition {
            CONDITION_HEALTHY => Condition::Healthy,
            CONDITION_COMPLETED_SUCCESSFULLY => Condition::CompletedSuccessfully,
            _ => Condition::Started,
        }
    }
}

/// Where a container stands against a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Met, with the word docker compose prints for it (`Healthy`, `Exited`, `Started`).
    Ready(&'static str),
    /// Cannot be met any more: why (`is unhealthy`, `exited (3)`).
    Failed(String),
    Pending,
}

/// What the judgement looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub status: Status,
    pub exit_code: Option<i32>,
    pub health: Option<Health>,
    pub has_healthcheck: bool,
    /// It was started at least once.
    pub started: bool,
}

impl Seen {
    pub fn of(r: &ContainerRecord) -> Seen {
        Seen {
            status: r.status,
            exit_code: r.exit_code,
            health: r.health,
            has_healthcheck: r.runtime.healthcheck.is_some(),
            started: r.started_at.is_some(),
        }
    }
}

pub fn judge(condition: Condition, s: &Seen) -> Readiness {
    let exited = matches!(s.status, Status::Exited | Status::Dead);
    let code = s.exit_code.unwrap_or(-1);
    match condition {
        Condition::Started => {
            if s.status.is_active() || (exited && s.started) {
                Readiness::Ready("Started")
            } else {
                Readiness::Pending
            }
        }
        Condition::Healthy => {
            if !s.has_healthcheck {
                Readiness::Failed("has no healthcheck configured".into())
            } else if s.health == Some(Health::Healthy) && !exited {
                Readiness::Ready("Healthy")
            } else if s.health == Some(Health::Unhealthy) || exited {
                Readiness::Failed("is unhealthy".into())
            } else {
                Readiness::Pending
            }
        }
        Condition::CompletedSuccessfully => match (exited, s.exit_code) {
            (true, Some(0)) => Readiness::Ready("Exited"),
            (true, Some(_)) => Readiness::Failed(format!("exited ({code})")),
            _ => Readiness::Pending,
        },
        Condition::Up => match s.status {
            _ if exited && s.exit_code == Some(0) => Readiness::Ready("Exited"),
            _ if exited => Readiness::Failed(format!("exited ({code})")),
            Status::Running if !s.has_healthcheck => Readiness::Ready("Healthy"),
            Status::Running => match s.health {
                Some(Health::Healthy) => Readiness::Ready("Healthy"),
                Some(Health::Unhealthy) => Readiness::Failed("is unhealthy".into()),
                _ => Readiness::Pending,
            },
            _ => Readiness::Pending,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(status: Status, code: Option<i32>, health: Option<Health>, check: bool) -> Seen {
        Seen {
            status,
            exit_code: code,
            health,
            has_healthcheck: check,
            started: status != Status::Created,
        }
    }

    #[test]
    fn every_condition_on_every_state() {
        use Condition::*;
        use Readiness::*;
        let running = seen(Status::Running, None, None, false);
        let starting = seen(Status::Running, None, Some(Health::Starting), true);
        let healthy = seen(Status::Running, None, Some(Health::Healthy), true);
        let unhealthy = seen(Status::Running, None, Some(Health::Unhealthy), true);
        let ok = seen(Status::Exited, Some(0), None, false);
        let bad = seen(Status::Exited, Some(3), None, false);
        let created = seen(Status::Created, None, None, true);
        let cases = [
            (Started, running, Ready("Started")),
            (Started, bad, Ready("Started")),
            (Started, created, Pending),
            (
                Healthy,
                running,
                Failed("has no healthcheck configured".into()),
            ),
            (Healthy, starting, Pending),
            (Healthy, healthy, Ready("Healthy")),
            (Healthy, unhealthy, Failed("is unhealthy".into())),
            (
                Healthy,
                seen(Status::Exited, Some(0), Some(Health::Healthy), true),
                Failed("is unhealthy".into()),
            ),
            (CompletedSuccessfully, running, Pending),
            (CompletedSuccessfully, ok, Ready("Exited")),
            (CompletedSuccessfully, bad, Failed("exited (3)".into())),
            (Up, running, Ready("Healthy")),
            (Up, starting, Pending),
            (Up, healthy, Ready("Healthy")),
            (Up, unhealthy, Failed("is unhealthy".into())),
            (Up, ok, Ready("Exited")),
            (Up, bad, Failed("exited (3)".into())),
            (Up, created, Pending),
        ];
        for (condition, s, want) in cases {
            assert_eq!(judge(condition, &s), want, "{condition:?} on {s:?}");
        }
        assert_eq!(Condition::of_depends_on("service_healthy"), Healthy);
        assert_eq!(Condition::of_depends_on("service_started"), Started);
    }
}
