//! The undo engine's run: each change recorded in the undo journal (`state.json`) *before* it
//! is made and marked done after (`Run::step`); any failure undoes everything in reverse
//! order and says so (`Run::finish`). The routes' steps use it: the Ubuntu route's in
//! [`crate::stage::ubuntu::steps`], the resinOS 1.x route's in
//! [`crate::stage::resinos1x::stage_1x`].
//!
//! SIGINT/SIGTERM/SIGHUP ([`crate::interrupt`]) are checked before each step and inside the
//! copies to staging: one that came before the last step began rolls everything back; one
//! after it leaves the run staged and armed (without the reboot).

use super::rollback::{self, RollbackReport};
use super::system::System;
use crate::host::HostRoot;
use crate::stage::host_extras::Region;
use crate::state::{self, Change, Entry, Progress, StageState, StateStore};
use std::path::{Path, PathBuf};

/// Environment variable naming a step after which staging fails on purpose (tests of rollback).
pub const FAIL_AFTER_ENV: &str = "SWAPOVER_FAIL_AFTER";

#[derive(Debug, Clone, Default)]
pub struct ExecuteOptions {
    pub no_reboot: bool,
    /// Fail on purpose right after this step is done (`SWAPOVER_FAIL_AFTER`), to prove rollback.
    pub fail_after: Option<String>,
}

impl ExecuteOptions {
    /// The options of a command-line run: `--no-reboot`, and [`FAIL_AFTER_ENV`] when set.
    pub fn from_env(no_reboot: bool) -> Self {
        ExecuteOptions { no_reboot, fail_after: std::env::var(FAIL_AFTER_ENV).ok() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    #[error("staging failed at step {step}: {problem}; {rollback}")]
    Failed { step: String, problem: String, rollback: String },
    #[error("staging was {interrupted} at step {step}, before the last step began: {rollback}")]
    Interrupted { interrupted: crate::interrupt::Interrupted, step: String, rollback: String },
    #[error("cannot record the undo journal: {0}; nothing was changed")]
    Journal(#[from] state::StateError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecuteReport {
    pub staged: Vec<String>,
    pub rebooting: bool,
}

/// A journalled step that did not complete: which step (its journal name) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StepFailure {
    pub(crate) step: String,
    pub(crate) problem: String,
}

impl StepFailure {
    pub(crate) fn new(step: impl Into<String>, problem: impl Into<String>) -> Self {
        StepFailure { step: step.into(), problem: problem.into() }
    }
}

/// Steps recorded in the undo journal; shared with the resinOS 1.x staging.
pub(crate) struct Run<'a> {
    pub(crate) root: &'a HostRoot,
    pub(crate) store: StateStore,
    pub(crate) state: StageState,
    pub(crate) system: &'a mut dyn System,
    pub(crate) fail_after: Option<String>,
    /// The argument of a RESTART2 reboot (the Raspberry Pi's trial partition), or a plain one.
    pub(crate) restart_arg: Option<String>,
}

impl Run<'_> {
    /// Records `change` as begun, runs `action`, records the (possibly refined) change as done.
    pub(crate) fn step<T>(
        &mut self,
        change: Change,
        action: impl FnOnce(&mut Self) -> Result<(T, Option<Change>), String>,
    ) -> Result<T, StepFailure> {
        let name = change.name().to_string();
        crate::interrupt::test_point(&format!("before:{name}"));
        if let Err(interrupted) = crate::interrupt::check() {
            return Err(StepFailure::new(name, interrupted.to_string()));
        }
        self.state.entries.push(Entry { change, progress: Progress::Begun });
        self.store.save(&self.state).map_err(|e| StepFailure::new(name.clone(), e.to_string()))?;
        log::info!("step {name}: begin");
        let (value, refined) =
            action(self).map_err(|problem| StepFailure::new(name.clone(), problem))?;
        if let Some(last) = self.state.entries.last_mut() {
            if let Some(refined) = refined {
                last.change = refined;
            }
            last.progress = Progress::Done;
        }
        self.store.save(&self.state).map_err(|e| StepFailure::new(name.clone(), e.to_string()))?;
        log::info!("step {name}: done");
        crate::interrupt::test_point(&format!("after:{name}"));
        if self.fail_after.as_deref() == Some(name.as_str()) {
            let problem = format!("failure injected after {name} (SWAPOVER_FAIL_AFTER)");
            return Err(StepFailure::new(name, problem));
        }
        Ok(value)
    }

    /// The `Attach` step: makes `region` a block device; returns its path.
    pub(crate) fn attach_staging(&mut self, region: &Region) -> Result<String, StepFailure> {
        self.step(Change::Attach { device: None }, |r| {
            let (device, loop_device) =
                r.system.attach(region).map_err(|e| format!("{}: {e}", region.host_path))?;
            Ok((device, Some(Change::Attach { device: loop_device })))
        })
    }

    /// The `Mount` step: mounts `device` read-write at the staging mount point; returns it.
    pub(crate) fn mount_staging(&mut self, device: &str) -> Result<PathBuf, StepFailure> {
        let mount_point = self.root.path(state::MOUNT_POINT);
        self.step(Change::Mount { mount_point: state::MOUNT_POINT.into() }, |r| {
            r.system
                .mount(device, &mount_point, false)
                .map_err(|e| format!("mount {device}: {e}"))?;
            Ok(((), None))
        })?;
        Ok(mount_point)
    }

    /// The `Unmount` step: unmounts the staging file system at `mount_point` and lets go of a
    /// loop device (fixture trees only), recording that it is gone, so that no later undo
    /// detaches a number that may belong to another device by then.
    pub(crate) fn unmount_staging(&mut self, mount_point: &Path) -> Result<(), StepFailure> {
        self.step(Change::Unmount, |r| {
            r.system
                .unmount(mount_point)
                .map_err(|e| format!("unmount {}: {e}", mount_point.display()))?;
            let attached = r.state.entries.iter_mut().find_map(|e| match &mut e.change {
                Change::Attach { device } => device.take(),
                _ => None,
            });
            if let Some(loop_device) = attached {
                r.system.detach(&loop_device).map_err(|e| format!("detach {loop_device}: {e}"))?;
            }
            Ok(((), None))
        })
    }

    /// Ends the run. When every step was done (`steps` is Ok): records the staging as armed,
    /// syncs, logs `staged and armed: <armed(value)>` and reboots unless `no_reboot`; returns
    /// the steps' value and whether the device is rebooting (false when the reboot failed).
    /// When a step failed: undoes everything journalled, in reverse, and says what was undone.
    pub(crate) fn finish<T>(
        self,
        steps: Result<T, StepFailure>,
        no_reboot: bool,
        armed: impl FnOnce(&T) -> String,
    ) -> Result<(T, bool), ExecuteError> {
        let Run { root, store, mut state, system, restart_arg, .. } = self;
        match steps {
            Ok(value) => {
                state.armed = true;
                store.save(&state)?;
                system.sync();
                log::info!("staged and armed: {}", armed(&value));
                let interrupted = crate::interrupt::received();
                if let Some(interrupted) = interrupted {
                    log::warn!("{interrupted} after the last step had begun: staging was completed and armed; not rebooting");
                }
                let mut rebooting = !no_reboot && interrupted.is_none();
                if rebooting {
                    log::info!("rebooting now");
                    let rebooted = match &restart_arg {
                        Some(arg) => system.restart2(arg),
                        None => system.reboot(),
                    };
                    if let Err(e) = rebooted {
                        log::error!(
                            "reboot failed ({e}); reboot the device to start the migration"
                        );
                        rebooting = false;
                    }
                }
                Ok((value, rebooting))
            }
            Err(StepFailure { step, problem }) => {
                let interrupted = crate::interrupt::received();
                match interrupted {
                    Some(interrupted) => log::warn!("{interrupted} at step {step}; rolling back"),
                    None => log::error!("step {step} failed: {problem}; rolling back"),
                }
                let report = rollback::rollback(root, &state, system);
                let rollback = describe(&report);
                Err(match interrupted {
                    Some(interrupted) => ExecuteError::Interrupted { interrupted, step, rollback },
                    None => ExecuteError::Failed { step, problem, rollback },
                })
            }
        }
    }
}

pub fn describe(report: &RollbackReport) -> String {
    if report.complete() {
        format!(
            "everything was rolled back, the host is as it was ({})",
            if report.undone.is_empty() {
                "nothing to undo".to_string()
            } else {
                report.undone.join("; ")
            }
        )
    } else {
        format!(
            "ROLLBACK INCOMPLETE ({}); run `stager abort` to retry the undo",
            report.failed.join("; ")
        )
    }
}
