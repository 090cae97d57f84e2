//! A service's `logging:` section as the log writer needs it.

use crate::compose::model::ServiceConfig;

use super::{LogsError, Result};

/// Where a container's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum LogDriver {
    /// Docker's default: the json-file format.
    #[default]
    JsonFile,
    /// Docker's `local` driver: stored here in the same format, with its rotation defaults.
    Local,
    /// Nothing is stored (`docker logs` has nothing to show either).
    None,
}

/// How a container's log is stored and rotated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogConfig {
    pub driver: LogDriver,
    /// Rotate before the file would grow past this many bytes; `None`: never.
    pub max_size: Option<u64>,
    /// How many files to keep, the current one included (at least 1).
    pub max_file: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            driver: LogDriver::JsonFile,
            max_size: None,
            max_file: 1,
        }
    }
}

// Docker's local driver defaults.
const LOCAL_MAX_SIZE: u64 = 20 * 1024 * 1024;
const LOCAL_MAX_FILE: usize = 5;

// The options docker's drivers accept. `compress`, `labels`, `env` and `tag` are accepted so
// files that work with docker work here; rotated files are kept uncompressed and records carry
// no extra attributes.
const JSON_FILE_OPTIONS: &[&str] = &[
    "max-size",
    "max-file",
    "compress",
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "tag",
];
const LOCAL_OPTIONS: &[&str] = &["max-size", "max-file", "compress"];

impl LogConfig {
    /// Reads `logging.driver` and `logging.options` of a service.
    pub fn from_service(service: &ServiceConfig) -> Result<LogConfig> {
        let Some(logging) = &service.logging else {
            return Ok(LogConfig::default());
        };
        let (driver, allowed, mut config) = match logging.driver.as_str() {
            "" | "json-file" => ("json-file", JSON_FILE_OPTIONS, LogConfig::default()),
            "local" => (
                "local",
                LOCAL_OPTIONS,
                LogConfig {
                    driver: LogDriver::Local,
                    max_size: Some(LOCAL_MAX_SIZE),
                    max_file: LOCAL_MAX_FILE,
                },
            ),
            "none" => ("none", &[][..], LogConfig::default()),
            other => {
                return Err(LogsError::UnsupportedDriver {
                    service: service.name.clone(),
                    driver: other.to_string(),
                })
            }
        };
        if driver == "none" {
            // Docker ignores options it will never use here too.
            config.driver = LogDriver::None;
            return Ok(config);
        }
        let bad = |key: &str, value: &str, reason: &str| LogsError::BadOption {
            service: service.name.clone(),
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        for (key, value) in &logging.options {
            if !allowed.contains(&key.as_str()) {
                return Err(LogsError::UnknownOption {
                    service: service.name.clone(),
                    driver: driver.to_string(),
                    key: key.clone(),
                });
            }
            match key.as_str() {
                "max-size" => match parse_size(value) {
                    Some(n) if n > 0 => config.max_size = Some(n),
                    Some(_) => return Err(bad(key, value, "it must be a positive size")),
                    None => {
                        return Err(bad(
                            key,
                            value,
                            "expected a size such as 100, 1k, 10m or 1g",
                        ))
                    }
                },
                "max-file" => match value.trim().parse::<i64>() {
                    Ok(n) if n >= 1 => config.max_file = usize::try_from(n).unwrap_or(usize::MAX),
                    Ok(_) => return Err(bad(key, value, "it cannot be less than 1")),
                    Err(_) => return Err(bad(key, value, "expected a whole number")),
                },
                "compress" if !matches!(value.as_str(), "true" | "false" | "1" | "0") => {
                    return Err(bad(key, value, "expected true or false"));
                }
                _ => {}
            }
        }
        Ok(config)
    }
}

/// A size as docker's `RAMInBytes` reads it: a decimal number, an optional space, then an
/// optional unit `k`, `m`, `g`, `t` or `p` (powers of 1024, any case, optionally with `i`
/// and/or `b`): `100`, `1k`, `10m`, `1.5 GiB`.
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let num_len = s
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    let (num, unit) = s.split_at(num_len);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return None;
    }
    let number: f64 = num.parse().ok()?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let power = match unit {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return None,
    };
    let bytes = number * 1024f64.powi(power);
    (bytes.is_finite() && bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::model::LoggingConfig;

    fn service(driver: &str, options: &[(&str, &str)]) -> ServiceConfig {
        ServiceConfig {
            name: "web".into(),
            logging: Some(LoggingConfig {
                driver: driver.into(),
                options: options
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn sizes_as_docker_reads_them() {
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("10M"), Some(10 << 20));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("1.5 kb"), Some(1536));
        for bad in ["", "k", "10x", "-1", "1..5m", "1m5", ".5k"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn defaults_without_logging_section() {
        let svc = ServiceConfig::default();
        assert_eq!(LogConfig::from_service(&svc).unwrap(), LogConfig::default());
    }

    #[test]
    fn reads_drivers_and_options() {
        let c = LogConfig::from_service(&service(
            "json-file",
            &[("max-size", "1k"), ("max-file", "3")],
        ))
        .unwrap();
        assert_eq!(
            c,
            LogConfig {
                driver: LogDriver::JsonFile,
                max_size: Some(1024),
                max_file: 3
            }
        );
        let c = LogConfig::from_service(&service("", &[("max-size", "100")])).unwrap();
        assert_eq!(
            (c.driver, c.max_size, c.max_file),
            (LogDriver::JsonFile, Some(100), 1)
        );
        let c = LogConfig::from_service(&service("local", &[])).unwrap();
        assert_eq!(
            (c.driver, c.max_size, c.max_file),
            (LogDriver::Local, Some(20 << 20), 5)
        );
        let c = LogConfig::from_service(&service("none", &[])).unwrap();
        assert_eq!(c.driver, LogDriver::None);
    }

    #[test]
    fn rejects_other_drivers_and_bad_options() {
        let e = LogConfig::from_service(&service("syslog", &[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"web\"") && e.contains("\"syslog\""), "{e}");
        let e = LogConfig::from_service(&service("json-file", &[("max-size", "lots")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("max-size") && e.contains("lots"), "{e}");
        let e = LogConfig::from_service(&service("json-file", &[("max-size", "0")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("positive"), "{e}");
        let e = LogConfig::from_service(&service("json-file", &[("max-file", "0")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("less than 1"), "{e}");
        let e = LogConfig::from_service(&service("local", &[("tag", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"tag\"") && e.contains("local"), "{e}");
    }
}
