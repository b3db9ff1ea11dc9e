//! The migrator's logger: every line to the console, to the kernel log and,
//! once the staging file system is mounted, to its `migration.log`.
//!
//! Lines logged before the file is attached are kept in memory and written
//! when it is. The file is fsynced every [`SYNC_EVERY_LINES`] lines, on
//! warnings and errors, and on [`flush`] (called before every reboot).
//! Console markers ([`marker`]) are printed bare, at the start of a line, so
//! that a test harness can match them.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

/// The log file is fsynced at least every this many lines.
pub const SYNC_EVERY_LINES: u32 = 32;
/// Lines kept in memory before a log file exists (older ones are dropped).
const EARLY_LINES_KEPT: usize = 4096;

struct Sinks {
    console: Option<File>,
    kmsg: Option<File>,
    file: Option<File>,
    early: Vec<String>,
    unsynced: u32,
}

struct Logger {
    started: Instant,
    sinks: Mutex<Sinks>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

fn logger() -> &'static Logger {
    LOGGER.get_or_init(|| Logger {
        started: Instant::now(),
        sinks: Mutex::new(Sinks {
            console: None,
            kmsg: None,
            file: None,
            early: Vec::new(),
            unsynced: 0,
        }),
    })
}

fn sinks() -> MutexGuard<'static, Sinks> {
    // A panic while logging must not silence the logger for the reboot message.
    logger().sinks.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Install the logger, writing to `/dev/console` and `/dev/kmsg` where they open.
/// Safe to call more than once (later calls only reopen the devices).
pub fn init(level: log::LevelFilter) {
    let console = OpenOptions::new().write(true).open("/dev/console").ok();
    let kmsg = OpenOptions::new().write(true).open("/dev/kmsg").ok();
    {
        let mut s = sinks();
        s.console = console;
        s.kmsg = kmsg;
    }
    if log::set_logger(logger()).is_ok() {
        log::set_max_level(level);
    }
}

/// Log to `path` (appending) from now on; lines logged so far are written first.
pub fn attach_file(path: &Path) -> std::io::Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    let mut s = sinks();
    for line in s.early.drain(..) {
        file.write_all(line.as_bytes())?;
    }
    file.sync_data()?;
    s.file = Some(file);
    s.unsynced = 0;
    Ok(())
}

/// Stop writing to the log file (before its file system is unmounted); fsyncs it.
pub fn detach_file() {
    let mut s = sinks();
    if let Some(file) = s.file.take() {
        let _ = file.sync_data();
    }
}

/// Make the log file durable now.
pub fn flush() {
    let mut s = sinks();
    if let Some(file) = &s.file {
        let _ = file.sync_data();
    }
    s.unsynced = 0;
}

/// Print a console marker line (`SWAPOVER-...`) bare on every sink, and fsync the log.
pub fn marker(text: &str) {
    emit(&format!("{text}\n"), true);
}

fn emit(line: &str, sync_now: bool) {
    let mut s = sinks();
    if let Some(console) = s.console.as_mut() {
        let _ = console.write_all(line.as_bytes());
    } else {
        // Not PID 1 (tests, a shell): stderr, through the test harness's capture.
        eprint!("{line}");
    }
    if let Some(kmsg) = s.kmsg.as_mut() {
        // Priority 7 (debug): kept in dmesg, not echoed on the console a second time.
        let _ = kmsg.write_all(format!("<7>swapover: {line}").as_bytes());
    }
    if let Some(file) = s.file.as_mut() {
        let _ = file.write_all(line.as_bytes());
        s.unsynced += 1;
        if sync_now || s.unsynced >= SYNC_EVERY_LINES {
            if let Some(file) = &s.file {
                let _ = file.sync_data();
            }
            s.unsynced = 0;
        }
    } else {
        if s.early.len() >= EARLY_LINES_KEPT {
            s.early.remove(0);
        }
        s.early.push(line.to_string());
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let elapsed = self.started.elapsed();
        let line = format_line(elapsed.as_secs_f64(), record.level(), &record.args().to_string());
        emit(&line, record.level() <= log::Level::Warn);
    }

    fn flush(&self) {
        flush();
    }
}

/// One log line: `[   12.345] INFO  message\n`.
pub fn format_line(seconds: f64, level: log::Level, message: &str) -> String {
    format!("[{seconds:9.3}] {level:<5} {message}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_time_level_and_message() {
        assert_eq!(format_line(1.5, log::Level::Info, "hello"), "[    1.500] INFO  hello\n");
        assert_eq!(format_line(123.0004, log::Level::Warn, "x"), "[  123.000] WARN  x\n");
    }

    #[test]
    fn early_lines_reach_the_file_once_attached() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("migration.log");
        marker("SWAPOVER-TEST early-line");
        attach_file(&path).unwrap();
        marker("SWAPOVER-TEST late-line");
        detach_file();
        let text = std::fs::read_to_string(&path).unwrap();
        let early = text.find("SWAPOVER-TEST early-line\n").expect("early line written");
        let late = text.find("SWAPOVER-TEST late-line\n").expect("late line written");
        assert!(early < late, "{text}");
    }
}
