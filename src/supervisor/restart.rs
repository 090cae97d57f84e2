//! Restart policies (`restart:` and `deploy.restart_policy`) and docker's restart backoff.

use std::time::Duration;

use crate::compose::model::ServiceConfig;

#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    #[error("service {service}: invalid restart policy {value:?}")]
    Invalid { service: String, value: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Policy {
    #[default]
    No,
    Always,
    /// Restart after a non-zero exit, at most `max` times (0: no limit).
    OnFailure {
        max: u32,
    },
    UnlessStopped,
}

impl Policy {
    /// The service's policy: `restart:` wins over `deploy.restart_policy` (as docker compose
    /// does for a non-swarm engine, where `deploy.restart_policy` maps to the same four).
    pub fn of(service: &ServiceConfig) -> Result<Policy, RestartError> {
        let invalid = |value: &str| RestartError::Invalid {
            service: service.name.clone(),
            value: value.to_string(),
        };
        if !service.restart.is_empty() {
            return Policy::parse(&service.restart).ok_or_else(|| invalid(&service.restart));
        }
        let Some(rp) = service
            .deploy
            .as_ref()
            .and_then(|d| d.restart_policy.as_ref())
        else {
            return Ok(Policy::No);
        };
        let max = rp
            .max_attempts
            .map(|m| u32::try_from(m).unwrap_or(u32::MAX))
            .unwrap_or(0);
        match rp.condition.as_str() {
            "none" => Ok(Policy::No),
            "on-failure" => Ok(Policy::OnFailure { max }),
            // docker compose maps "any" (the default) to always, bounded by max_attempts.
            "" | "any" if max > 0 => Ok(Policy::OnFailure { max }),
            "" | "any" => Ok(Policy::Always),
            other => Err(invalid(other)),
        }
    }

    pub fn parse(value: &str) -> Option<Policy> {
        match value {
            "no" | "" => Some(Policy::No),
            "always" => Some(Policy::Always),
            "unless-stopped" => Some(Policy::UnlessStopped),
            "on-failure" => Some(Policy::OnFailure { max: 0 }),
            v => {
                let n = v.strip_prefix("on-failure:")?;
                n.parse().ok().map(|max| Policy::OnFailure { max })
            }
        }
    }

    /// Whether a container that exited with `code` restarts, after `restarts` restarts so far.
    /// A container stopped by a command never restarts (not even with `always`, until the
    /// next start, as docker does).
    pub fn should_restart(self, code: i32, restarts: u32, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match self {
            Policy::No => false,
            Policy::Always | Policy::UnlessStopped => true,
            Policy::OnFailure { max } => code != 0 && (max == 0 || restarts < max),
        }
    }

    /// Whether containers with this policy come back when a new supervisor adopts a project
    /// whose supervisor died (docker's behaviour when its daemon restarts).
    pub fn restarts_on_adopt(self, stopped_by_user: bool) -> bool {
        match self {
            Policy::Always => true,
            Policy::UnlessStopped => !stopped_by_user,
            _ => false,
        }
    }
}

/// Docker's backoff: 100 ms, doubling up to a minute; back to 100 ms once a container ran for
/// 10 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

pub const BACKOFF_START: Duration = Duration::from_millis(100);
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(10);

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: BACKOFF_START,
        }
    }
}

impl Backoff {
    /// The delay before the next restart of a container that ran for `ran`.
    pub fn delay(&mut self, ran: Duration) -> Duration {
        if ran >= BACKOFF_RESET_AFTER {
            self.next = BACKOFF_START;
        }
        let d = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_policies() {
        assert_eq!(Policy::parse("no"), Some(Policy::No));
        assert_eq!(Policy::parse("always"), Some(Policy::Always));
        assert_eq!(Policy::parse("unless-stopped"), Some(Policy::UnlessStopped));
        assert_eq!(
            Policy::parse("on-failure:3"),
            Some(Policy::OnFailure { max: 3 })
        );
        assert_eq!(Policy::parse("on-failure:x"), None);
        assert_eq!(Policy::parse("sometimes"), None);
    }

    #[test]
    fn decides_like_docker() {
        let f = Policy::OnFailure { max: 2 };
        assert!(f.should_restart(1, 0, false));
        assert!(f.should_restart(1, 1, false));
        assert!(!f.should_restart(1, 2, false));
        assert!(!f.should_restart(0, 0, false));
        assert!(Policy::OnFailure { max: 0 }.should_restart(3, 1000, false));
        assert!(Policy::Always.should_restart(0, 5, false));
        assert!(!Policy::Always.should_restart(0, 5, true));
        assert!(!Policy::No.should_restart(1, 0, false));
        assert!(Policy::UnlessStopped.restarts_on_adopt(false));
        assert!(!Policy::UnlessStopped.restarts_on_adopt(true));
        assert!(!Policy::OnFailure { max: 0 }.restarts_on_adopt(false));
    }

    #[test]
    fn deploy_restart_policy() {
        let mut s = ServiceConfig {
            name: "web".into(),
            ..Default::default()
        };
        assert_eq!(Policy::of(&s).unwrap(), Policy::No);
        s.deploy = Some(crate::compose::model::DeployConfig {
            restart_policy: Some(crate::compose::model::RestartPolicy {
                condition: "on-failure".into(),
                max_attempts: Some(4),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(Policy::of(&s).unwrap(), Policy::OnFailure { max: 4 });
        s.restart = "always".into();
        assert_eq!(Policy::of(&s).unwrap(), Policy::Always);
        s.restart = "bogus".into();
        let e = Policy::of(&s).unwrap_err().to_string();
        assert!(e.contains("web") && e.contains("bogus"), "{e}");
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::default();
        let short = Duration::from_millis(5);
        let ms = |d: Duration| d.as_millis();
        assert_eq!(ms(b.delay(short)), 100);
        assert_eq!(ms(b.delay(short)), 200);
        assert_eq!(ms(b.delay(short)), 400);
        for _ in 0..20 {
            b.delay(short);
        }
        assert_eq!(b.delay(short), BACKOFF_MAX);
        assert_eq!(ms(b.delay(Duration::from_secs(11))), 100);
        assert_eq!(ms(b.delay(short)), 200);
    }
}
