//! A ready-made progress callback: plain log lines at a bounded rate.
//!
//! The migrator runs as PID 1 with its log going to the console, `/dev/kmsg` and a
//! file, none of which is an interactive terminal, so it reports progress as plain
//! lines (no carriage-return status line).

use super::progress::Progress;
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;

/// Log a line through `log::info!` at most once per `every` (and never for no change).
pub fn log_every(every: Duration) -> impl FnMut(&Progress) {
    let started = Instant::now();
    let mut last: Option<Instant> = None;
    let mut last_out = u64::MAX;
    move |p: &Progress| {
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < every) || p.image_bytes_out == last_out {
            return;
        }
        last = Some(now);
        last_out = p.image_bytes_out;
        log::info!("{}", describe(p, now.duration_since(started)));
    }
}

/// One line describing a progress snapshot.
pub fn describe(p: &Progress, elapsed: Duration) -> String {
    let total = p.image_bytes_total.map_or_else(|| "?".to_owned(), |t| (t / MIB).to_string());
    let rate = p.image_bytes_out as f64 / 1e6 / elapsed.as_secs_f64().max(1e-3);
    format!(
        "flash: {}/{} MiB decoded, {} MiB written, {} MiB durable, {} MiB read, {rate:.0} MB/s",
        p.image_bytes_out / MIB,
        total,
        p.bytes_written / MIB,
        p.durable_image_offset / MIB,
        p.compressed_bytes_in / MIB,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_every_counter() {
        let p = Progress {
            compressed_bytes_in: 3 * MIB,
            image_bytes_out: 10 * MIB,
            bytes_written: 9 * MIB,
            image_bytes_total: Some(20 * MIB),
            durable_image_offset: 8 * MIB,
        };
        let line = describe(&p, Duration::from_secs(1));
        assert_eq!(
            line,
            "flash: 10/20 MiB decoded, 9 MiB written, 8 MiB durable, 3 MiB read, 10 MB/s"
        );
    }
}
