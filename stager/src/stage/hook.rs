//! The customer's backup hook (stop services, dump a database), run before anything
//! changes: a program and its arguments (argv, never a shell string), with a timeout.
//! Exit 0 = go, 3 = not now (retry later), anything else = abort.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Exit code of a hook that asks to retry later; the stager exits with it too.
pub const NOT_NOW: i32 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookVerdict {
    Go,
    NotNow,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HookError {
    #[error("backup hook {program} cannot be started: {problem}; nothing was changed, check --backup-hook")]
    Spawn { program: String, problem: String },
    #[error("backup hook {program} failed with {status}; nothing was changed, fix the hook and run again")]
    Failed { program: String, status: String },
    #[error("backup hook {program} did not finish within {seconds} s and was killed; nothing was changed, make it faster or pass a longer --backup-hook-timeout")]
    TimedOut { program: String, seconds: u64 },
}

pub fn run(hook: &Hook) -> Result<HookVerdict, HookError> {
    let program = hook.program.display().to_string();
    log::info!(
        "running backup hook {program} {:?} (timeout {} s)",
        hook.args,
        hook.timeout.as_secs()
    );
    let mut child = Command::new(&hook.program)
        .args(&hook.args)
        .stdin(Stdio::null())
        .current_dir("/")
        .spawn()
        .map_err(|e| HookError::Spawn { program: program.clone(), problem: e.to_string() })?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= hook.timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HookError::TimedOut { program, seconds: hook.timeout.as_secs() });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(HookError::Spawn { program, problem: e.to_string() }),
        }
    };
    match status.code() {
        Some(0) => Ok(HookVerdict::Go),
        Some(NOT_NOW) => Ok(HookVerdict::NotNow),
        _ => Err(HookError::Failed { program, status: status.to_string() }),
    }
}
