//! Timestamps: RFC3339 with nanoseconds (the `time` field of a record, `--timestamps`) and
//! docker's `--since`/`--until` arguments.
//!
//! Written here rather than taken from `chrono`/`time`: the log format needs one fixed layout
//! (UTC, nine fraction digits) and docker's argument grammar is a handful of layouts chosen by
//! the characters present, which is easier to mirror exactly with a small parser than to
//! assemble from a general one. Dates use Howard Hinnant's days-from-civil algorithms.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::LogsError;

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// `t` as RFC3339 in UTC with nine fraction digits: `2026-11-22T10:00:00.123456789Z`.
/// Fixed width, so timestamps of one log sort as text too.
pub fn format_timestamp(t: SystemTime) -> String {
    let (secs, nanos) = to_unix(t);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// Parses a record's `time`: full RFC3339 with seconds, any fraction, `Z` or an offset.
pub fn parse_timestamp(s: &str) -> Option<SystemTime> {
    let p = parse_layout(s).ok()?;
    if !p.has_seconds {
        return None;
    }
    p.to_system_time(p.offset?)
}

/// Parses a `--since`/`--until` value as docker does (moby's `GetTimestamp`), relative to `now`:
/// a Go duration (`42m`, `1h30m`, `1.5h`, `10s`; the time that long before `now`), an RFC3339
/// date-time with or without seconds, fraction and zone (no zone: local time), a date
/// (`2013-01-02`, midnight), or a unix timestamp (`1700000000`, `1700000000.5`).
pub fn parse_time_arg(value: &str, now: SystemTime) -> Result<SystemTime, LogsError> {
    parse_time_arg_in(value, now, local_offset(now))
}

/// [`parse_time_arg`] with the local zone's offset (seconds east of UTC) given, for tests.
pub(crate) fn parse_time_arg_in(
    value: &str,
    now: SystemTime,
    local_offset: i32,
) -> Result<SystemTime, LogsError> {
    let err = |reason: String| LogsError::TimeArg {
        value: value.to_string(),
        reason,
    };
    let out_of_range = || err("out of range".to_string());
    if value != "0" {
        if let Some(nanos) = parse_go_duration(value) {
            let (secs, sub) = to_unix(now);
            let at = i128::from(secs) * NANOS_PER_SEC + i128::from(sub) - nanos;
            return from_unix_nanos(at).ok_or_else(out_of_range);
        }
    }
    // Docker reads anything with a dash as a date (so negative unix times are refused too).
    if value.contains('-') {
        let p = parse_layout(value).map_err(err)?;
        return p
            .to_system_time(p.offset.unwrap_or(local_offset))
            .ok_or_else(out_of_range);
    }
    let (secs, frac) = match value.split_once('.') {
        Some((s, f)) => (s, Some(f)),
        None => (value, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(secs) || frac.is_some_and(|f| !all_digits(f)) {
        return Err(err(
            "not a duration (42m), a date-time (2013-01-02T13:23:37Z) or a unix timestamp"
                .to_string(),
        ));
    }
    let secs: i64 = secs.parse().map_err(|_| out_of_range())?;
    // The fraction is scaled to nanoseconds; digits past the ninth are dropped.
    let nanos = frac.map_or(0, |f| {
        let digits = &f[..f.len().min(9)];
        let n: u32 = digits.parse().unwrap_or(0);
        n * 10u32.pow(9 - digits.len() as u32)
    });
    from_unix_nanos(i128::from(secs) * NANOS_PER_SEC + i128::from(nanos)).ok_or_else(out_of_range)
}

/// The parts of `YYYY-MM-DD[THH[:MM[:SS[.fff]]]][Z|±HH:MM]`: every layout docker tries for
/// `--since` is a prefix of RFC3339 with an optional zone, so one parser covers them.
struct Layout {
    days: i64,
    seconds_of_day: i64,
    nanos: u32,
    has_seconds: bool,
    offset: Option<i32>,
}

impl Layout {
    fn to_system_time(&self, offset: i32) -> Option<SystemTime> {
        let secs = self.days * 86_400 + self.seconds_of_day - i64::from(offset);
        from_unix_nanos(i128::from(secs) * NANOS_PER_SEC + i128::from(self.nanos))
    }
}

fn parse_layout(s: &str) -> Result<Layout, String> {
    let mut cur = Cursor {
        s: s.as_bytes(),
        at: 0,
    };
    let year = cur.digits(4, "year")?;
    cur.expect(b'-', "'-' after the year")?;
    let month = cur.digits(2, "month")?;
    cur.expect(b'-', "'-' after the month")?;
    let day = cur.digits(2, "day")?;
    if !(1..=12).contains(&month) {
        return Err(format!("month {month} out of range"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(format!("day {day} out of range"));
    }
    let (mut hour, mut minute, mut second, mut nanos, mut has_seconds) = (0, 0, 0, 0, false);
    if cur.eat(b'T') {
        hour = cur.digits(2, "hour")?;
        if cur.eat(b':') {
            minute = cur.digits(2, "minute")?;
            if cur.eat(b':') {
                second = cur.digits(2, "second")?;
                has_seconds = true;
                if cur.eat(b'.') {
                    nanos = cur.fraction()?;
                }
            }
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err("time of day out of range".to_string());
        }
    }
    let offset = match cur.peek() {
        None => None,
        Some(b'Z' | b'z') => {
            cur.at += 1;
            Some(0)
        }
        Some(sign @ (b'+' | b'-')) => {
            cur.at += 1;
            let h = cur.digits(2, "zone hours")?;
            cur.expect(b':', "':' in the zone offset")?;
            let m = cur.digits(2, "zone minutes")?;
            if h > 23 || m > 59 {
                return Err("zone offset out of range".to_string());
            }
            let off = (h * 3600 + m * 60) as i32;
            Some(if sign == b'-' { -off } else { off })
        }
        Some(_) => return Err(format!("unexpected text at {:?}", cur.rest())),
    };
    if cur.peek().is_some() {
        return Err(format!("unexpected text at {:?}", cur.rest()));
    }
    Ok(Layout {
        days: days_from_civil(year, month, day),
        seconds_of_day: hour * 3600 + minute * 60 + second,
        nanos,
        has_seconds,
        offset,
    })
}

struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn rest(&self) -> String {
        String::from_utf8_lossy(&self.s[self.at..]).into_owned()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.at += 1;
        }
        hit
    }

    fn expect(&mut self, b: u8, what: &str) -> Result<(), String> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(format!("expected {what}"))
        }
    }

    fn digits(&mut self, n: usize, what: &str) -> Result<i64, String> {
        let end = self.at + n;
        match self.s.get(self.at..end) {
            Some(d) if d.iter().all(u8::is_ascii_digit) => {
                self.at = end;
                Ok(d.iter().fold(0, |acc, b| acc * 10 + i64::from(b - b'0')))
            }
            _ => Err(format!("expected a {n}-digit {what}")),
        }
    }

    /// Up to nine digits as nanoseconds (Go accepts no more).
    fn fraction(&mut self) -> Result<u32, String> {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        let digits = &self.s[start..self.at];
        if digits.is_empty() || digits.len() > 9 {
            return Err("expected 1 to 9 fraction digits".to_string());
        }
        let n = digits
            .iter()
            .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
        Ok(n * 10u32.pow(9 - digits.len() as u32))
    }
}

/// A Go duration (`time.ParseDuration`): an optional sign, then one or more decimal numbers
/// each with a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`). In nanoseconds, `None` if not one.
fn parse_go_duration(s: &str) -> Option<i128> {
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let unit_len = after
            .char_indices()
            .find(|&(_, c)| c == '.' || c.is_ascii_digit())
            .map_or(after.len(), |(i, _)| i);
        let (unit, next) = after.split_at(unit_len);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS_PER_SEC,
            "m" => 60 * NANOS_PER_SEC,
            "h" => 3600 * NANOS_PER_SEC,
            _ => return None,
        };
        let whole: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut value = whole.checked_mul(scale)?;
        if !frac.is_empty() {
            let digits = &frac[..frac.len().min(30)];
            let f: i128 = digits.parse().ok()?;
            value += f * scale / 10i128.pow(digits.len() as u32);
        }
        total = total.checked_add(value)?;
        // Go rejects durations that do not fit an int64 of nanoseconds.
        if total > i128::from(i64::MAX) {
            return None;
        }
        rest = next;
    }
    Some(if negative { -total } else { total })
}

/// Seconds since the epoch (floored) and the nanoseconds within that second.
pub(crate) fn to_unix(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_nanos() {
                0 => (-secs, 0),
                n => (-secs - 1, 1_000_000_000 - n),
            }
        }
    }
}

fn from_unix_nanos(nanos: i128) -> Option<SystemTime> {
    let secs = u64::try_from((nanos / NANOS_PER_SEC).unsigned_abs()).ok()?;
    let sub = (nanos % NANOS_PER_SEC).unsigned_abs() as u32;
    let d = Duration::new(secs, sub);
    if nanos >= 0 {
        UNIX_EPOCH.checked_add(d)
    } else {
        UNIX_EPOCH.checked_sub(d)
    }
}

/// The local zone's offset from UTC at `t`, in seconds east (what docker uses for zone-less
/// values: the offset of the reference time).
fn local_offset(t: SystemTime) -> i32 {
    let (secs, _) = to_unix(t);
    // time_t is 64 bits on the platforms rcompose runs on.
    let secs: libc::time_t = secs;
    // SAFETY: localtime_r only reads `secs` and writes the caller-owned `tm`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if ok {
        i32::try_from(tm.tm_gmtoff).unwrap_or(0)
    } else {
        0
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64, nanos: u32) -> SystemTime {
        from_unix_nanos(i128::from(secs) * NANOS_PER_SEC + i128::from(nanos)).unwrap()
    }

    #[test]
    fn formats_utc_with_nine_digits() {
        assert_eq!(format_timestamp(at(0, 0)), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            format_timestamp(at(1_795_341_600, 123_456_789)),
            "2026-11-22T10:00:00.123456789Z"
        );
        assert_eq!(
            format_timestamp(at(951_782_400, 5)),
            "2000-02-29T00:00:00.000000005Z"
        );
        assert_eq!(
            format_timestamp(at(-1, 0)),
            "1969-12-31T23:59:59.000000000Z"
        );
    }

    #[test]
    fn timestamps_round_trip() {
        for (s, n) in [
            (0, 0),
            (1_795_341_600, 123_456_789),
            (4_102_444_799, 999_999_999),
        ] {
            let t = at(s, n);
            assert_eq!(parse_timestamp(&format_timestamp(t)), Some(t));
        }
        // Docker trims trailing zeros and other writers use offsets.
        assert_eq!(
            parse_timestamp("2026-11-22T10:00:00.5Z"),
            Some(at(1_795_341_600, 500_000_000))
        );
        assert_eq!(
            parse_timestamp("2026-11-22T11:00:00+01:00"),
            Some(at(1_795_341_600, 0))
        );
        assert_eq!(parse_timestamp("2026-11-22T10:00Z"), None);
        assert_eq!(parse_timestamp("2026-11-22T10:00:00"), None);
        assert_eq!(parse_timestamp("garbage"), None);
    }

    #[test]
    fn time_args_as_docker_reads_them() {
        let now = at(1_795_341_600, 0); // 2026-11-22T10:00:00Z
        let p = |v: &str| parse_time_arg_in(v, now, 3600).unwrap();
        assert_eq!(p("42m"), at(1_795_341_600 - 42 * 60, 0));
        assert_eq!(p("1h30m"), at(1_795_341_600 - 5400, 0));
        assert_eq!(p("10s"), at(1_795_341_590, 0));
        assert_eq!(p("1.5h"), at(1_795_341_600 - 5400, 0));
        assert_eq!(p("-10s"), at(1_795_341_610, 0));
        assert_eq!(p("1700000000"), at(1_700_000_000, 0));
        assert_eq!(p("1700000000.5"), at(1_700_000_000, 500_000_000));
        assert_eq!(p("0"), at(0, 0));
        assert_eq!(p("2026-11-22T10:00:00Z"), now);
        assert_eq!(p("2026-11-22T10:00:00.25Z"), at(1_795_341_600, 250_000_000));
        assert_eq!(p("2026-11-22T12:00:00+02:00"), now);
        assert_eq!(p("2026-11-22T10:00Z"), now);
        // No zone: local time (here UTC+1).
        assert_eq!(p("2026-11-22T11:00:00"), now);
        assert_eq!(p("2026-11-22T11:00"), now);
        assert_eq!(p("2026-11-22T11"), now);
        assert_eq!(p("2026-11-22"), at(1_795_341_600 - 11 * 3600, 0));
        assert_eq!(p("2026-11-22Z"), at(1_795_341_600 - 10 * 3600, 0));
    }

    #[test]
    fn bad_time_args_are_errors_naming_the_value() {
        let now = at(1_795_341_600, 0);
        for bad in [
            "",
            "yesterday",
            "10x",
            "2026-13-01",
            "2026-02-30",
            "2026-11-22T25:00:00Z",
            "2026-11-22T10:00:00.Z",
            "2026/11/22",
            "-5",
            "12:30",
            "1.2.3",
            "h",
        ] {
            let e = parse_time_arg_in(bad, now, 0).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }

    #[test]
    fn local_offset_is_within_a_day() {
        assert!(local_offset(SystemTime::now()).abs() < 86_400);
    }
}
