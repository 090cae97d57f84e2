//! Healthchecks: the effective check of a container (the service's `healthcheck` over the
//! image's HEALTHCHECK, field by field as docker merges them) and docker's status machine.
//! Probes run inside the container (see the container task).

use std::time::Duration;

use super::state::Health;
use crate::compose::model::ServiceConfig;
use crate::image::config::Healthcheck as ImageHealthcheck;

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRIES: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("service {service}: invalid healthcheck test {test:?}: {why}")]
    Test {
        service: String,
        test: Vec<String>,
        why: &'static str,
    },
}

/// A container's healthcheck, resolved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Check {
    /// The command run in the container (`CMD-SHELL x` is `/bin/sh -c x`).
    pub command: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: u32,
}

impl Check {
    /// The check of a container of `service` whose image declares `image`; `None` when it has
    /// none (no test, `NONE`, `disable: true`).
    pub fn resolve(
        service: &ServiceConfig,
        image: Option<&ImageHealthcheck>,
    ) -> Result<Option<Check>, HealthError> {
        let svc = service.healthcheck.as_ref();
        if svc.is_some_and(|h| h.disable) {
            return Ok(None);
        }
        let nanos = |n: i64| (n > 0).then(|| Duration::from_nanos(n.unsigned_abs()));
        let test: Vec<String> = match svc.filter(|h| !h.test.is_empty()) {
            Some(h) => h.test.clone(),
            None => image.map(|i| i.test.clone()).unwrap_or_default(),
        };
        let bad = |why| HealthError::Test {
            service: service.name.clone(),
            test: test.clone(),
            why,
        };
        let command = match test.first().map(String::as_str) {
            None | Some("NONE") => return Ok(None),
            Some("CMD") if test.len() > 1 => test[1..].to_vec(),
            Some("CMD-SHELL") if test.len() == 2 => {
                vec!["/bin/sh".into(), "-c".into(), test[1].clone()]
            }
            Some("CMD") => return Err(bad("CMD needs a command")),
            Some("CMD-SHELL") => return Err(bad("CMD-SHELL takes one command string")),
            Some(_) => return Err(bad("the first word must be CMD, CMD-SHELL or NONE")),
        };
        let pick = |s: Option<Duration>, i: Option<Duration>, d: Duration| {
            s.filter(|d| !d.is_zero()).or(i).unwrap_or(d)
        };
        let retries = svc
            .and_then(|h| h.retries)
            .filter(|r| *r > 0)
            .map(|r| u32::try_from(r).unwrap_or(u32::MAX))
            .or_else(|| {
                image
                    .map(|i| i.retries)
                    .filter(|r| *r > 0)
                    .map(|r| u32::try_from(r).unwrap_or(u32::MAX))
            })
            .unwrap_or(DEFAULT_RETRIES);
        Ok(Some(Check {
            command,
            interval: pick(
                svc.and_then(|h| h.interval).map(|d| d.0),
                image.and_then(|i| nanos(i.interval)),
                DEFAULT_INTERVAL,
            ),
            timeout: pick(
                svc.and_then(|h| h.timeout).map(|d| d.0),
                image.and_then(|i| nanos(i.timeout)),
                DEFAULT_TIMEOUT,
            ),
            start_period: pick(
                svc.and_then(|h| h.start_period).map(|d| d.0),
                image.and_then(|i| nanos(i.start_period)),
                Duration::ZERO,
            ),
            start_interval: pick(
                svc.and_then(|h| h.start_interval).map(|d| d.0),
                image.and_then(|i| nanos(i.start_interval)),
                DEFAULT_START_INTERVAL,
            ),
            retries,
        }))
    }

    /// The wait before the next probe, `since_start` after the container started: the start
    /// interval during the start period, else the interval.
    pub fn next_wait(&self, since_start: Duration) -> Duration {
        if since_start < self.start_period {
            self.start_interval
        } else {
            self.interval
        }
    }
}

/// Docker's status machine for one run of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    status: Health,
    failing_streak: u32,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            status: Health::Starting,
            failing_streak: 0,
        }
    }
}

impl Tracker {
    pub fn status(&self) -> Health {
        self.status
    }

    /// Records a probe's result, `since_start` after the container started; returns the new
    /// status. A failure inside the start period does not count, a success always does.
    pub fn record(&mut self, check: &Check, ok: bool, since_start: Duration) -> Health {
        if ok {
            self.failing_streak = 0;
            self.status = Health::Healthy;
        } else if since_start >= check.start_period || self.status != Health::Starting {
            self.failing_streak += 1;
            if self.failing_streak >= check.retries {
                self.status = Health::Unhealthy;
            }
        }
        self.status
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::model::HealthCheckConfig;

    fn service(h: Option<HealthCheckConfig>) -> ServiceConfig {
        ServiceConfig {
            name: "db".into(),
            healthcheck: h,
            ..Default::default()
        }
    }

    fn secs(s: u64) -> Option<crate::compose::model::Duration> {
        Some(crate::compose::model::Duration(Duration::from_secs(s)))
    }

    #[test]
    fn resolves_service_over_image() {
        let image = ImageHealthcheck {
            test: vec!["CMD".into(), "true".into()],
            interval: 2_000_000_000,
            retries: 7,
            ..Default::default()
        };
        let c = Check::resolve(&service(None), Some(&image))
            .unwrap()
            .unwrap();
        assert_eq!(c.command, ["true"]);
        assert_eq!(c.interval, Duration::from_secs(2));
        assert_eq!(c.retries, 7);
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);

        let svc = HealthCheckConfig {
            test: vec!["CMD-SHELL".into(), "exit 0".into()],
            interval: secs(1),
            ..Default::default()
        };
        let c = Check::resolve(&service(Some(svc)), Some(&image))
            .unwrap()
            .unwrap();
        assert_eq!(c.command, ["/bin/sh", "-c", "exit 0"]);
        assert_eq!(c.interval, Duration::from_secs(1));
        assert_eq!(c.retries, 7, "unset fields come from the image");
    }

    #[test]
    fn none_disable_and_errors() {
        assert_eq!(Check::resolve(&service(None), None).unwrap(), None);
        let none = HealthCheckConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        };
        assert_eq!(Check::resolve(&service(Some(none)), None).unwrap(), None);
        let disabled = HealthCheckConfig {
            test: vec!["CMD".into(), "true".into()],
            disable: true,
            ..Default::default()
        };
        assert_eq!(
            Check::resolve(&service(Some(disabled)), None).unwrap(),
            None
        );
        let bad = HealthCheckConfig {
            test: vec!["RUN".into(), "x".into()],
            ..Default::default()
        };
        let e = Check::resolve(&service(Some(bad)), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("db") && e.contains("RUN"), "{e}");
    }

    #[test]
    fn status_machine_like_docker() {
        let check = Check {
            command: vec!["true".into()],
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            start_period: Duration::from_secs(10),
            start_interval: Duration::from_millis(200),
            retries: 2,
        };
        let mut t = Tracker::default();
        assert_eq!(t.status(), Health::Starting);
        // Failures in the start period do not count.
        for _ in 0..5 {
            assert_eq!(
                t.record(&check, false, Duration::from_secs(1)),
                Health::Starting
            );
        }
        assert_eq!(
            check.next_wait(Duration::from_secs(1)),
            check.start_interval
        );
        assert_eq!(check.next_wait(Duration::from_secs(11)), check.interval);
        assert_eq!(
            t.record(&check, true, Duration::from_secs(2)),
            Health::Healthy
        );
        assert_eq!(
            t.record(&check, false, Duration::from_secs(3)),
            Health::Healthy
        );
        assert_eq!(
            t.record(&check, false, Duration::from_secs(4)),
            Health::Unhealthy
        );
        assert_eq!(
            t.record(&check, true, Duration::from_secs(5)),
            Health::Healthy
        );
    }
}
