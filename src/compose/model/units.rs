//! Units used by the model: Go `time.Duration` strings, docker byte sizes, octal file modes and
//! float32 numbers printed the way Go prints them.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::ModelError;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A duration as compose-go keeps it (`types.Duration`): printed in Go's `time.Duration` format
/// (`1m30s`, `500ms`, `1µs`) and parsed from Go syntax plus the `d`/`w` units compose accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub fn as_std(&self) -> std::time::Duration {
        self.0
    }

    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Duration(d)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl std::str::FromStr for Duration {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(Duration)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `1m30s`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                parse_duration(v).map(Duration).map_err(E::custom)
            }
            // A bare number has no unit; Go's parser only accepts a bare `0`.
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses Go duration syntax (`1h2m3.5s`, `500ms`, `1us`, `1µs`), plus `d` (24h) and `w` (7d)
/// as compose-go's str2duration does. Negative durations are rejected: no compose field uses them.
pub fn parse_duration(input: &str) -> Result<std::time::Duration, ModelError> {
    let err = || ModelError::Duration(input.to_string());
    let mut s = input;
    if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    } else if s.starts_with('-') {
        return Err(ModelError::NegativeDuration(input.to_string()));
    }
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    if s.is_empty() {
        return Err(err());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, rest) = s.split_at(int_len);
        let (frac_part, rest) = match rest.strip_prefix('.') {
            Some(r) => {
                let n = r.bytes().take_while(u8::is_ascii_digit).count();
                r.split_at(n)
            }
            None => ("", rest),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(err());
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let (unit, rest) = rest.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS_PER_SEC,
            "m" => 60 * NANOS_PER_SEC,
            "h" => 3_600 * NANOS_PER_SEC,
            "d" => 86_400 * NANOS_PER_SEC,
            "w" => 7 * 86_400 * NANOS_PER_SEC,
            _ => return Err(err()),
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| err())?
        };
        let mut value = int.checked_mul(scale).ok_or_else(err)?;
        // Fractions are scaled digit by digit so `1.5h` stays exact.
        let mut place = scale;
        for digit in frac_part.bytes() {
            place /= 10;
            if place == 0 {
                break;
            }
            value += u128::from(digit - b'0') * place;
        }
        total = total.checked_add(value).ok_or_else(err)?;
        s = rest;
    }
    // Go durations are int64 nanoseconds.
    if total > i64::MAX as u128 {
        return Err(err());
    }
    let secs = (total / NANOS_PER_SEC) as u64;
    let nanos = (total % NANOS_PER_SEC) as u32;
    Ok(std::time::Duration::new(secs, nanos))
}

/// Formats like Go's `time.Duration.String()`: `0s`, `1.5µs`, `500ms`, `1m30s`, `1h0m0s`.
pub fn format_duration(d: std::time::Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < NANOS_PER_SEC {
        return if nanos < 1_000 {
            format!("{nanos}ns")
        } else if nanos < 1_000_000 {
            format!("{}µs", decimal(nanos, 3))
        } else {
            format!("{}ms", decimal(nanos, 6))
        };
    }
    let secs = nanos / NANOS_PER_SEC;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&decimal(s * NANOS_PER_SEC + nanos % NANOS_PER_SEC, 9));
    out.push('s');
    out
}

/// `value / 10^digits` printed with the fraction's trailing zeros dropped.
fn decimal(value: u128, digits: u32) -> String {
    let unit = 10u128.pow(digits);
    let (int, frac) = (value / unit, value % unit);
    if frac == 0 {
        return int.to_string();
    }
    let frac = format!("{frac:0width$}", width = digits as usize);
    format!("{int}.{}", frac.trim_end_matches('0'))
}

/// A size in bytes (`types.UnitBytes`). Parsed from integers or docker sizes (`512m`, `1gb`,
/// `100k`, 1024-based); printed as a decimal string, as compose-go does in JSON and YAML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnitBytes(pub i64);

impl UnitBytes {
    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }
}

impl Serialize for UnitBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for UnitBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = UnitBytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte size such as `512m` or an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<UnitBytes, E> {
                Ok(UnitBytes(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<UnitBytes, E> {
                i64::try_from(v)
                    .map(UnitBytes)
                    .map_err(|_| E::custom(format!("byte size {v} is too large")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<UnitBytes, E> {
                if v.fract() == 0.0 && v.abs() < 9.0e18 {
                    Ok(UnitBytes(v as i64))
                } else {
                    Err(E::custom(format!("invalid byte size {v}")))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<UnitBytes, E> {
                parse_bytes(v).map(UnitBytes).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses a docker size (go-units `RAMInBytes`): digits with an optional fraction, an optional
/// space, then an optional `k|m|g|t|p` (any case) optionally followed by `i` and/or `b`.
/// Multipliers are powers of 1024. A negative plain integer (`-1`, unlimited swap) is accepted.
pub fn parse_bytes(input: &str) -> Result<i64, ModelError> {
    let err = || ModelError::Bytes(input.to_string());
    if let Ok(v) = input.parse::<i64>() {
        return Ok(v);
    }
    let num_len = input
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    let (num, rest) = input.split_at(num_len);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1
    {
        return Err(err());
    }
    let value: f64 = num.parse().map_err(|_| err())?;
    let mut rest = rest.strip_prefix(' ').unwrap_or(rest).chars().peekable();
    let mut multiplier: f64 = 1.0;
    if let Some(c) = rest.peek().copied() {
        let power = match c.to_ascii_lowercase() {
            'k' => Some(1),
            'm' => Some(2),
            'g' => Some(3),
            't' => Some(4),
            'p' => Some(5),
            _ => None,
        };
        if let Some(p) = power {
            multiplier = 1024f64.powi(p);
            rest.next();
        }
    }
    if rest.peek().is_some_and(|c| c.eq_ignore_ascii_case(&'i')) {
        rest.next();
    }
    if rest.peek().is_some_and(|c| c.eq_ignore_ascii_case(&'b')) {
        rest.next();
    }
    if rest.next().is_some() {
        return Err(err());
    }
    let bytes = value * multiplier;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(err());
    }
    Ok(bytes as i64)
}

/// A file mode (`types.FileMode`): read from an integer or an octal string, printed as `"0440"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FileMode(pub u32);

impl Serialize for FileMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0{:o}", self.0))
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = FileMode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a file mode (integer or octal string)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FileMode, E> {
                u32::try_from(v)
                    .map(FileMode)
                    .map_err(|_| E::custom(format!("invalid file mode {v}")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FileMode, E> {
                u32::try_from(v)
                    .map(FileMode)
                    .map_err(|_| E::custom(format!("invalid file mode {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileMode, E> {
                let digits = v.strip_prefix("0o").unwrap_or(v);
                u32::from_str_radix(digits, 8)
                    .map(FileMode)
                    .map_err(|_| E::custom(format!("invalid file mode {v:?}: not octal")))
            }
        }
        d.deserialize_any(V)
    }
}

/// Serialises a Go `float32` as Go's JSON encoder does: shortest float32 form, and integral
/// values as integers (`50`, not `50.0`).
pub(crate) fn ser_f32<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return s.serialize_i64(*v as i64);
    }
    // The f32's shortest decimal form, widened without picking up binary noise.
    let shortest: f64 = v.to_string().parse().unwrap_or(f64::from(*v));
    s.serialize_f64(shortest)
}

/// Reads a float from a number or a numeric string (`cpus: "0.5"`).
pub(crate) fn de_f32<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = f32;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number")
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f32, E> {
            Ok(v as f32)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f32, E> {
            Ok(v as f32)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f32, E> {
            Ok(v as f32)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<f32, E> {
            v.trim()
                .parse::<f32>()
                .map_err(|_| E::custom(format!("invalid number {v:?}")))
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as Std;

    #[test]
    fn formats_like_go() {
        let cases = [
            (Std::ZERO, "0s"),
            (Std::from_nanos(1), "1ns"),
            (Std::from_nanos(1_500), "1.5µs"),
            (Std::from_micros(1), "1µs"),
            (Std::from_millis(500), "500ms"),
            (Std::from_millis(1_500), "1.5s"),
            (Std::from_secs(10), "10s"),
            (Std::from_secs(60), "1m0s"),
            (Std::from_secs(90), "1m30s"),
            (Std::from_secs(3600), "1h0m0s"),
            (Std::from_secs(3723), "1h2m3s"),
            (Std::new(1, 1), "1.000000001s"),
            (Std::from_secs(86_400), "24h0m0s"),
        ];
        for (d, want) in cases {
            assert_eq!(format_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn parses_go_and_compose_syntax() {
        let ok = [
            ("0", Std::ZERO),
            ("0s", Std::ZERO),
            ("90s", Std::from_secs(90)),
            ("1m30s", Std::from_secs(90)),
            ("1h2m3s", Std::from_secs(3723)),
            ("1.5h", Std::from_secs(5400)),
            (".5s", Std::from_millis(500)),
            ("500ms", Std::from_millis(500)),
            ("1us", Std::from_micros(1)),
            ("1µs", Std::from_micros(1)),
            ("1μs", Std::from_micros(1)),
            ("3ns", Std::from_nanos(3)),
            ("1d", Std::from_secs(86_400)),
            ("1w", Std::from_secs(7 * 86_400)),
            ("+5s", Std::from_secs(5)),
        ];
        for (s, want) in ok {
            assert_eq!(parse_duration(s).ok(), Some(want), "{s}");
        }
        for bad in ["", "5", "s", "1x", "1.s.", "1h 2m", "abc", "."] {
            assert!(
                matches!(parse_duration(bad), Err(ModelError::Duration(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_duration("-1s"),
            Err(ModelError::NegativeDuration(_))
        ));
        assert!(parse_duration("9999999999h").is_err());
    }

    #[test]
    fn round_trips_durations() {
        for s in ["1m30s", "500ms", "1h0m0s", "1.5µs", "2h45m0.5s"] {
            let d = parse_duration(s).ok();
            assert_eq!(d.map(format_duration).as_deref(), Some(s));
        }
    }

    #[test]
    fn parses_docker_sizes() {
        let ok = [
            ("0", 0),
            ("1000", 1000),
            ("-1", -1),
            ("100k", 100 * 1024),
            ("100K", 100 * 1024),
            ("512m", 512 * 1024 * 1024),
            ("512mb", 512 * 1024 * 1024),
            ("1g", 1 << 30),
            ("1gb", 1 << 30),
            ("1GiB", 1 << 30),
            ("1 GB", 1 << 30),
            ("1.5g", 3 << 29),
            ("2b", 2),
            ("1t", 1 << 40),
        ];
        for (s, want) in ok {
            assert_eq!(parse_bytes(s).ok(), Some(want), "{s}");
        }
        for bad in ["", "m", "1x", "1.2.3m", "1gbb", "1  ", "-5m", "1.m"] {
            assert!(
                matches!(parse_bytes(bad), Err(ModelError::Bytes(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn bytes_serde() {
        let v: UnitBytes = serde_yaml::from_str("64m").unwrap_or_default();
        assert_eq!(v, UnitBytes(64 << 20));
        let v: UnitBytes = serde_yaml::from_str("1024").unwrap_or_default();
        assert_eq!(v, UnitBytes(1024));
        assert_eq!(
            serde_json::to_string(&UnitBytes(1024)).ok().as_deref(),
            Some("\"1024\"")
        );
        assert!(serde_yaml::from_str::<UnitBytes>("lots").is_err());
    }

    #[test]
    fn file_mode_serde() {
        let m: Option<FileMode> = serde_yaml::from_str("\"0440\"").ok();
        assert_eq!(m, Some(FileMode(0o440)));
        let m: Option<FileMode> = serde_yaml::from_str("288").ok();
        assert_eq!(m, Some(FileMode(0o440)));
        assert_eq!(
            serde_json::to_string(&FileMode(0o644)).ok().as_deref(),
            Some("\"0644\"")
        );
        assert!(serde_yaml::from_str::<FileMode>("\"0999\"").is_err());
    }

    #[test]
    fn f32_prints_like_go() {
        #[derive(Serialize)]
        struct T(#[serde(serialize_with = "ser_f32")] f32);
        let json = |v| serde_json::to_string(&T(v)).unwrap_or_default();
        assert_eq!(json(50.0), "50");
        assert_eq!(json(0.1), "0.1");
        assert_eq!(json(1.5), "1.5");
    }
}
