//! The cpuset controller: `cpuset` (CPUs) and memory nodes.

use std::path::Path;

use super::{read_file, write_file, CgroupError, Resources, Result};

/// Whether `list` is a kernel CPU/node list: `0-2,4`, or empty for "unset".
pub(super) fn is_valid_list(list: &str) -> bool {
    if list.is_empty() {
        return true;
    }
    list.split(',').all(|item| {
        let (first, last) = item.split_once('-').unwrap_or((item, item));
        match (first.parse::<u32>(), last.parse::<u32>()) {
            (Ok(first), Ok(last)) => first <= last,
            _ => false,
        }
    })
}

/// A new v1 cpuset cgroup is empty; copy the parent's CPUs and nodes so processes can join.
pub(super) fn inherit_v1(parent: &Path, dir: &Path) -> Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let own = read_file(&dir.join(file))?;
        if own.trim().is_empty() {
            let inherited = read_file(&parent.join(file))?;
            write_file(&dir.join(file), inherited.trim())?;
        }
    }
    Ok(())
}

pub(super) fn apply_v1(dir: &Path, resources: &Resources) -> Result<()> {
    apply(
        dir,
        resources,
        "cpuset.effective_cpus",
        "cpuset.effective_mems",
    )
}

pub(super) fn apply_v2(dir: &Path, resources: &Resources) -> Result<()> {
    apply(
        dir,
        resources,
        "cpuset.cpus.effective",
        "cpuset.mems.effective",
    )
}

fn apply(
    dir: &Path,
    resources: &Resources,
    effective_cpus: &str,
    effective_mems: &str,
) -> Result<()> {
    let settings = [
        (
            &resources.cpuset_cpus,
            "cpuset.cpus",
            effective_cpus,
            "CPUs",
        ),
        (
            &resources.cpuset_mems,
            "cpuset.mems",
            effective_mems,
            "memory nodes",
        ),
    ];
    for (value, file, effective, what) in settings {
        let Some(value) = value.as_deref().filter(|v| !v.is_empty()) else {
            continue;
        };
        match write_file(&dir.join(file), value) {
            // The kernel refuses what the parent does not have (EINVAL) or what does not
            // exist (ERANGE): say what is available, as docker does.
            Err(CgroupError::Write { source, .. })
                if matches!(source.raw_os_error(), Some(libc::EINVAL | libc::ERANGE)) =>
            {
                let available = dir
                    .parent()
                    .and_then(|parent| read_file(&parent.join(effective)).ok())
                    .unwrap_or_default();
                return Err(CgroupError::Invalid(format!(
                    "Requested {what} are not available - requested {value}, available: {}",
                    available.trim()
                )));
            }
            other => other?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_checked() {
        for good in ["", "0", "0-3", "0,2,4-7", "12"] {
            assert!(is_valid_list(good), "{good}");
        }
        for bad in ["a", "0-", "-1", "3-1", "0,,1", "1 2", "0-2-4"] {
            assert!(!is_valid_list(bad), "{bad}");
        }
    }
}
