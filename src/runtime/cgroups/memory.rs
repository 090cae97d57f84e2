//! The memory controller: `mem_limit`, `memswap_limit`, `mem_reservation`, OOM kills, usage.

use std::path::Path;

use super::{
    keyed_value, parse_u64, read_file, read_optional, write_file, CgroupError, Resources, Result,
};

/// What v1 reports for "no limit" (`PAGE_COUNTER_MAX` pages): anything this large is unlimited.
const V1_UNLIMITED: u64 = 1 << 62;

/// The memory+swap total to set, in docker's terms (-1: unlimited).
///
/// Unset with a memory limit means docker's default: as much swap as memory (total twice the
/// memory). An unlimited memory makes the total unlimited too.
fn swap_total(resources: &Resources) -> Option<i64> {
    match (resources.memory_swap, resources.memory) {
        (Some(swap), _) if swap != 0 => Some(swap),
        (_, Some(memory)) if memory > 0 => Some(memory.saturating_mul(2)),
        (_, Some(_)) => Some(-1),
        (_, None) => None,
    }
}

/// Whether the caller asked for a swap limit itself (not docker's default).
fn explicit_swap_limit(resources: &Resources) -> bool {
    resources.memory_swap.is_some_and(|swap| swap > 0)
}

pub(super) fn apply_v1(dir: &Path, resources: &Resources) -> Result<()> {
    let limit_file = dir.join("memory.limit_in_bytes");
    let memsw_file = dir.join("memory.memsw.limit_in_bytes");
    let limit = resources.memory.map(|m| if m > 0 { m } else { -1 });
    // Without swap accounting (no `swapaccount=1`) the memsw files do not exist.
    let swap = match swap_total(resources) {
        Some(_) if !memsw_file.exists() && explicit_swap_limit(resources) => {
            return Err(CgroupError::SwapUnsupported { path: memsw_file });
        }
        Some(_) if !memsw_file.exists() => None,
        other => other,
    };
    match (limit, swap) {
        (Some(limit), Some(swap)) => {
            // The kernel keeps memory <= memory+swap after every write: raise the total first
            // when the new memory limit would not fit under the current one.
            let current = parse_u64(&memsw_file, &read_file(&memsw_file)?)?;
            let needed = u64::try_from(limit).unwrap_or(u64::MAX);
            if needed > current {
                write_file(&memsw_file, &swap.to_string())?;
                write_file(&limit_file, &limit.to_string())?;
            } else {
                write_file(&limit_file, &limit.to_string())?;
                write_file(&memsw_file, &swap.to_string())?;
            }
        }
        (Some(limit), None) => write_file(&limit_file, &limit.to_string())?,
        (None, Some(swap)) => write_file(&memsw_file, &swap.to_string())?,
        (None, None) => {}
    }
    if let Some(reservation) = resources.memory_reservation {
        let value = if reservation > 0 { reservation } else { -1 };
        write_file(&dir.join("memory.soft_limit_in_bytes"), &value.to_string())?;
    }
    if let Some(swappiness) = resources.memory_swappiness {
        write_file(&dir.join("memory.swappiness"), &swappiness.to_string())?;
    }
    if resources.oom_kill_disable {
        write_file(&dir.join("memory.oom_control"), "1")?;
    }
    Ok(())
}

pub(super) fn apply_v2(dir: &Path, resources: &Resources) -> Result<()> {
    if let Some(memory) = resources.memory {
        let value = if memory > 0 {
            memory.to_string()
        } else {
            "max".to_string()
        };
        write_file(&dir.join("memory.max"), &value)?;
    }
    // v2 limits swap alone, not memory+swap: swap = total - memory.
    let swap_file = dir.join("memory.swap.max");
    if let Some(total) = swap_total(resources) {
        let swap = match (total, resources.memory) {
            (total, Some(memory)) if total > 0 && memory > 0 => (total - memory).max(0).to_string(),
            _ => "max".to_string(),
        };
        if swap_file.exists() {
            write_file(&swap_file, &swap)?;
        } else if explicit_swap_limit(resources) {
            return Err(CgroupError::SwapUnsupported { path: swap_file });
        }
    }
    if let Some(reservation) = resources.memory_reservation {
        write_file(&dir.join("memory.low"), &reservation.max(0).to_string())?;
    }
    Ok(())
}

pub(super) fn oom_killed_v1(dir: &Path) -> Result<bool> {
    let oom_control = dir.join("memory.oom_control");
    let text = read_file(&oom_control)?;
    if let Some(kills) = keyed_value(&oom_control, &text, "oom_kill")? {
        return Ok(kills > 0);
    }
    // Before Linux 4.13 there is no kill counter: hitting the limit is the best evidence.
    let failcnt = dir.join("memory.failcnt");
    Ok(parse_u64(&failcnt, &read_file(&failcnt)?)? > 0)
}

pub(super) fn oom_killed_v2(dir: &Path) -> Result<bool> {
    let events = dir.join("memory.events");
    let Some(text) = read_optional(&events)? else {
        return Ok(false);
    };
    Ok(keyed_value(&events, &text, "oom_kill")?.is_some_and(|kills| kills > 0))
}

/// One counter of `memory.stat` (both versions).
pub(super) fn stat(dir: &Path, key: &str) -> Result<Option<u64>> {
    let path = dir.join("memory.stat");
    match read_optional(&path)? {
        Some(text) => keyed_value(&path, &text, key),
        None => Ok(None),
    }
}

pub(super) fn usage_v1(dir: &Path) -> Result<Option<u64>> {
    read_number(&dir.join("memory.usage_in_bytes"))
}

pub(super) fn usage_v2(dir: &Path) -> Result<Option<u64>> {
    read_number(&dir.join("memory.current"))
}

pub(super) fn limit_v1(dir: &Path) -> Result<Option<u64>> {
    Ok(read_number(&dir.join("memory.limit_in_bytes"))?.filter(|&l| l < V1_UNLIMITED))
}

pub(super) fn limit_v2(dir: &Path) -> Result<Option<u64>> {
    let path = dir.join("memory.max");
    match read_optional(&path)? {
        Some(text) if text.trim() == "max" => Ok(None),
        Some(text) => parse_u64(&path, &text).map(Some),
        None => Ok(None),
    }
}

/// A one-number file; `None` when absent.
fn read_number(path: &Path) -> Result<Option<u64>> {
    read_optional(path)?
        .map(|text| parse_u64(path, &text))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(memory: Option<i64>, memory_swap: Option<i64>) -> Resources {
        Resources {
            memory,
            memory_swap,
            ..Resources::default()
        }
    }

    #[test]
    fn swap_total_follows_docker_defaults() {
        assert_eq!(swap_total(&resources(Some(100), None)), Some(200));
        assert_eq!(swap_total(&resources(Some(100), Some(0))), Some(200));
        assert_eq!(swap_total(&resources(Some(100), Some(150))), Some(150));
        assert_eq!(swap_total(&resources(Some(100), Some(-1))), Some(-1));
        assert_eq!(swap_total(&resources(Some(0), None)), Some(-1));
        assert_eq!(swap_total(&resources(None, None)), None);
    }
}
