//! The pids controller: `pids_limit`. Same file names in v1 and v2.

use std::path::Path;

use super::{parse_u64, read_optional, write_file, Resources, Result};

pub(super) fn apply(dir: &Path, resources: &Resources) -> Result<()> {
    if let Some(limit) = resources.pids_limit {
        let value = if limit > 0 {
            limit.to_string()
        } else {
            "max".to_string()
        };
        write_file(&dir.join("pids.max"), &value)?;
    }
    Ok(())
}

pub(super) fn current(dir: &Path) -> Result<Option<u64>> {
    let path = dir.join("pids.current");
    read_optional(&path)?
        .map(|text| parse_u64(&path, &text))
        .transpose()
}
