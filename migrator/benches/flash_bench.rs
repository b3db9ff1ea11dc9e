//! Flash one image onto a target with the migrator's own flash code (not a copy), for
//! `scripts/bench-flash.sh`. Prints one line of `key=value` pairs:
//! `mode=... image_bytes=... write_s=... verify_s=... peak_rss_kib=...`.
//!
//! Usage: flash_bench IMAGE TARGET [--threads N] [--target-reads-zero]
//! (`--bench`, which cargo adds, is ignored). The write time covers the whole image:
//! everything but the head, then the head (the commit point). Verification is the
//! read-back of the body, timed on its own.

use migrator::flash::{
    commit_head, verify_written, write_image, DecodeMode, DirectTarget, FlashRequest, Placement,
    ZeroRuns,
};
use std::fs::{File, OpenOptions};
use std::process::ExitCode;
use std::time::Instant;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut positional = Vec::new();
    let mut threads = 2usize;
    let mut zero_runs = ZeroRuns::Write;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--threads" => {
                threads =
                    args.next().and_then(|n| n.parse().ok()).ok_or("--threads needs a number")?;
            }
            "--target-reads-zero" => zero_runs = ZeroRuns::SkipTargetReadsZero,
            _ => positional.push(arg),
        }
    }
    let [image_path, target_path] = positional.as_slice() else {
        return Err("usage: flash_bench IMAGE TARGET [--threads N] [--target-reads-zero]".into());
    };
    let image = File::open(image_path).map_err(|e| format!("{image_path}: {e}"))?;
    // Created here; then opened the way the migrator opens the disk (O_DIRECT where allowed).
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(target_path)
        .map_err(|e| format!("{target_path}: {e}"))?;
    let target = DirectTarget::open(std::path::Path::new(target_path))
        .map_err(|e| format!("{target_path}: {e}"))?;
    let placement = Placement { target_offset_bytes: 0, extent_bytes: u64::MAX / 2 };
    let mut request = FlashRequest::new(placement);
    request.decode_threads = threads;
    request.zero_runs = zero_runs;

    let started = Instant::now();
    let written = write_image(&image, &target, &request, &mut |_| {}).map_err(|e| e.to_string())?;
    commit_head(&target, placement, &written.head).map_err(|e| e.to_string())?;
    let write_s = started.elapsed().as_secs_f64();
    let verify_s = verify_written(&target, &written).map_err(|e| e.to_string())?.as_secs_f64();
    let mode = match written.mode {
        DecodeMode::Raw => "raw".to_owned(),
        DecodeMode::XzSequential => "xz-sequential".to_owned(),
        DecodeMode::XzParallel { threads, blocks } => {
            format!("xz-parallel-{threads}-threads-{blocks}-blocks")
        }
    };
    println!(
        "mode={mode} image_bytes={} write_s={write_s:.3} verify_s={verify_s:.3} peak_rss_kib={}",
        written.image_bytes,
        peak_rss_kib().unwrap_or(0)
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("flash_bench: {message}");
            ExitCode::FAILURE
        }
    }
}
