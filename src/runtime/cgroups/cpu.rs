//! The cpu controller: `cpus` (as quota and period), `cpu_shares`; cpuacct usage.

use std::path::Path;

use super::{keyed_value, parse_u64, read_optional, write_file, Resources, Result};

/// The CFS period docker uses when only a quota is given.
const DEFAULT_PERIOD: u64 = 100_000;

/// The range the kernel (and docker) accept for v1 shares.
const MIN_SHARES: u64 = 2;
const MAX_SHARES: u64 = 262_144;

/// Docker's (and runc's) conversion of v1 shares to a v2 weight: [2, 262144] onto [1, 10000].
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(MIN_SHARES, MAX_SHARES);
    1 + ((shares - MIN_SHARES) * 9999) / (MAX_SHARES - MIN_SHARES)
}

pub(super) fn apply_v1(dir: &Path, resources: &Resources) -> Result<()> {
    if let Some(period) = resources.cpu_period {
        write_file(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
    }
    if let Some(quota) = resources.cpu_quota {
        let quota = if quota > 0 { quota } else { -1 };
        write_file(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
    }
    if let Some(shares) = resources.cpu_shares.filter(|&s| s > 0) {
        let shares = shares.clamp(MIN_SHARES, MAX_SHARES);
        write_file(&dir.join("cpu.shares"), &shares.to_string())?;
    }
    Ok(())
}

pub(super) fn apply_v2(dir: &Path, resources: &Resources) -> Result<()> {
    if resources.cpu_quota.is_some() || resources.cpu_period.is_some() {
        // `cpu.max` holds both: keep the half that is not being changed.
        let cpu_max = dir.join("cpu.max");
        let current = read_optional(&cpu_max)?.unwrap_or_default();
        let mut fields = current.split_whitespace();
        let current_quota = fields.next().unwrap_or("max").to_string();
        let current_period = fields.next().and_then(|p| p.parse().ok());
        let quota = match resources.cpu_quota {
            Some(quota) if quota > 0 => quota.to_string(),
            Some(_) => "max".to_string(),
            None => current_quota,
        };
        let period = resources
            .cpu_period
            .or(current_period)
            .unwrap_or(DEFAULT_PERIOD);
        write_file(&cpu_max, &format!("{quota} {period}"))?;
    }
    if let Some(shares) = resources.cpu_shares.filter(|&s| s > 0) {
        write_file(
            &dir.join("cpu.weight"),
            &shares_to_weight(shares).to_string(),
        )?;
    }
    Ok(())
}

/// CPU time used, in nanoseconds (`cpuacct.usage`).
pub(super) fn usage_v1(dir: &Path) -> Result<Option<u64>> {
    let usage = dir.join("cpuacct.usage");
    read_optional(&usage)?
        .map(|text| parse_u64(&usage, &text))
        .transpose()
}

/// CPU time used, in nanoseconds (`usage_usec` of `cpu.stat`).
pub(super) fn usage_v2(dir: &Path) -> Result<Option<u64>> {
    let stat = dir.join("cpu.stat");
    let Some(text) = read_optional(&stat)? else {
        return Ok(None);
    };
    Ok(keyed_value(&stat, &text, "usage_usec")?.map(|usec| usec.saturating_mul(1000)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_uses_dockers_formula() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(512), 20);
        assert_eq!(shares_to_weight(262_144), 10_000);
        // Out of range shares are clamped first, as docker does.
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(1 << 30), 10_000);
    }
}
