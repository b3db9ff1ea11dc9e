//! Running the real external tools (sfdisk, mkfs, grub-mkimage, xz, debugfs ...) with
//! errors that say which command failed and what it printed.

use anyhow::{bail, Context, Result};
use std::ffi::OsStr;
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `program args...`, returns its stdout; fails with the command line and stderr.
pub fn run<I, S>(program: &str, args: I) -> Result<Vec<u8>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_with_input(program, args, None)
}

/// Like [`run`], feeding `input` on stdin.
pub fn run_with_input<I, S>(program: &str, args: I, input: Option<&[u8]>) -> Result<Vec<u8>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
    let shown = format!(
        "{program} {}",
        args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
    );
    let mut child = Command::new(program)
        .args(&args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!("cannot start `{shown}` (run scripts/setup.sh to install the tools)")
        })?;
    if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(bytes).with_context(|| format!("writing stdin of `{shown}`"))?;
    }
    let out = child.wait_with_output().with_context(|| format!("waiting for `{shown}`"))?;
    if !out.status.success() {
        bail!("`{shown}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out.stdout)
}
