//! How long the steps of a QEMU test take, printed as they finish (the test table's timings).

use anyhow::Result;
use std::time::Instant;

/// Runs `f` and prints `[tag] what: N.Ns`.
pub fn timed<T>(tag: &str, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let started = Instant::now();
    let out = f()?;
    eprintln!("[{tag}] {what}: {:.1}s", started.elapsed().as_secs_f64());
    Ok(out)
}
