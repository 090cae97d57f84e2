//! Freezing (`pause`): the v1 freezer controller, or v2's `cgroup.freeze`.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{keyed_value, read_file, read_optional, write_file, CgroupError, Result};

/// How long to wait for every process to stop (or resume).
const BOUND: Duration = Duration::from_secs(2);

pub(super) fn freeze_v1(dir: &Path) -> Result<()> {
    let state = dir.join("freezer.state");
    // Writing again while FREEZING nudges tasks that were busy in the kernel.
    let reached = wait_for(
        &state,
        "FROZEN",
        |text| Ok(text.trim() == "FROZEN"),
        || write_file(&state, "FROZEN"),
    );
    if reached.is_err() {
        // Never leave a half-frozen container behind.
        let _ = write_file(&state, "THAWED");
    }
    reached
}

pub(super) fn thaw_v1(dir: &Path) -> Result<()> {
    let state = dir.join("freezer.state");
    wait_for(
        &state,
        "THAWED",
        |text| Ok(text.trim() == "THAWED"),
        || write_file(&state, "THAWED"),
    )
}

pub(super) fn is_frozen_v1(dir: &Path) -> Result<bool> {
    Ok(read_file(&dir.join("freezer.state"))?.trim() == "FROZEN")
}

pub(super) fn freeze_v2(dir: &Path) -> Result<()> {
    set_v2(dir, true)
}

pub(super) fn thaw_v2(dir: &Path) -> Result<()> {
    set_v2(dir, false)
}

pub(super) fn is_frozen_v2(dir: &Path) -> Result<bool> {
    let events = dir.join("cgroup.events");
    Ok(keyed_value(&events, &read_file(&events)?, "frozen")? == Some(1))
}

fn set_v2(dir: &Path, frozen: bool) -> Result<()> {
    let freeze = dir.join("cgroup.freeze");
    if read_optional(&freeze)?.is_none() {
        // Linux before 5.2 has no v2 freezer.
        return Err(CgroupError::ControllerMissing {
            controller: "freezer",
            root: dir.to_path_buf(),
            needed: if frozen { "pause" } else { "unpause" },
        });
    }
    let value = if frozen { "1" } else { "0" };
    write_file(&freeze, value)?;
    let events = dir.join("cgroup.events");
    let want = u64::from(frozen);
    let state = if frozen { "frozen" } else { "thawed" };
    let reached = wait_for(
        &events,
        state,
        |text| Ok(keyed_value(&events, text, "frozen")? == Some(want)),
        || Ok(()),
    );
    if reached.is_err() && frozen {
        let _ = write_file(&freeze, "0");
    }
    reached
}

/// Runs `act` then polls `file` until `done` says so, for at most [`BOUND`].
fn wait_for(
    file: &Path,
    state: &'static str,
    done: impl Fn(&str) -> Result<bool>,
    act: impl Fn() -> Result<()>,
) -> Result<()> {
    let started = Instant::now();
    let mut pause = Duration::from_micros(200);
    loop {
        act()?;
        if done(&read_file(file)?)? {
            return Ok(());
        }
        if started.elapsed() >= BOUND {
            return Err(CgroupError::Timeout {
                path: file.to_path_buf(),
                state,
                waited: started.elapsed(),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}
