//! Prepares one download with the stager's own code (`stager::stage::prepare::prepare`, not a
//! copy), for `scripts/bench-prepare.sh`: recognises the download, takes a flasher's inner
//! image out of flash-rootA, adds the flasher's grub.cfg and boot code, and re-encodes it
//! into the staged multi-block `.img.xz`. Prints one line of `key=value` pairs:
//! `prepare_s=... staged=... staged_bytes=... peak_rss_kib=...`, then one `origin: ...` line
//! per thing `check` would say about the download.
//!
//! Usage: prepare_bench DOWNLOAD CACHE_DIR [--firmware bios|uefi|unknown]
//! (`--bench`, which cargo adds, is ignored). The time covers the whole of `prepare`,
//! including the fsync and rename of the staged file.

use plan::Bytes;
use stager::fetch::ProgressMode;
use stager::stage::prepare::{prepare, Firmware, PrepareRequest};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn run() -> Result<(), String> {
    const USAGE: &str = "usage: prepare_bench DOWNLOAD CACHE_DIR [--firmware bios|uefi|unknown]";
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut positional = Vec::new();
    let mut firmware = Firmware::Bios;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--firmware" => {
                firmware = match args.next().as_deref() {
                    Some("bios") => Firmware::Bios,
                    Some("uefi") => Firmware::Uefi,
                    Some("unknown") => Firmware::Unknown,
                    _ => return Err(USAGE.into()),
                }
            }
            _ => positional.push(arg),
        }
    }
    let [download, cache_dir] = positional.as_slice() else {
        return Err(USAGE.into());
    };
    let download = Path::new(download);
    let size = std::fs::metadata(download).map_err(|e| format!("{}: {e}", download.display()))?;
    // The sha256 only names the prepared file; the stager hashes the download while
    // verifying it, before preparing, so it is not part of what is timed here.
    let request = PrepareRequest {
        download,
        download_sha256: "0000000000000000bench",
        download_size: Bytes(size.len()),
        cache_dir: Path::new(cache_dir),
        firmware,
        progress: ProgressMode::Quiet,
    };
    let started = Instant::now();
    let prepared = prepare(&request).map_err(|e| e.to_string())?;
    let prepare_s = started.elapsed().as_secs_f64();
    let staged_bytes = std::fs::metadata(&prepared.path).map(|m| m.len()).unwrap_or(0);
    println!(
        "prepare_s={prepare_s:.3} staged={} staged_bytes={staged_bytes} created={} peak_rss_kib={}",
        prepared.path.display(),
        prepared.created,
        peak_rss_kib().unwrap_or(0)
    );
    for line in &prepared.origin {
        println!("origin: {line}");
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("prepare_bench: {message}");
            ExitCode::FAILURE
        }
    }
}
