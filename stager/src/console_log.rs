//! Log lines on stderr (`stager: LEVEL message`), info and above unless `SWAPOVER_LOG`
//! names another level (`debug`, `warn`, ...). stdout stays for the command's own output.
//!
//! `stage` and `abort` also append every line (and their output) to a log file
//! ([`crate::run_log`]). A terminal that hung up (EIO) or a closed pipe (EPIPE) must not stop
//! staging or a rollback: a failed write to stderr or stdout is noted once in the log file
//! and that stream is not written again; nothing here panics or returns an error.

use log::{LevelFilter, Log, Metadata, Record};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

struct Sinks {
    stderr_ok: bool,
    stdout_ok: bool,
    file: Option<File>,
}

static SINKS: Mutex<Sinks> = Mutex::new(Sinks { stderr_ok: true, stdout_ok: true, file: None });

fn with_sinks(action: impl FnOnce(&mut Sinks)) {
    let mut sinks = match SINKS.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    action(&mut sinks);
}

impl Sinks {
    fn write_file(&mut self, line: &str) {
        if let Some(file) = &mut self.file {
            // Nowhere left to say that the log file failed: keep going.
            let _ = file.write_all(line.as_bytes());
        }
    }

    fn lost(&mut self, stream: &str, error: &std::io::Error) {
        self.write_file(&format!(
            "stager: WARN  {stream} cannot be written any more ({error}); carrying on, logging to this file only\n"
        ));
    }

    fn write_stderr(&mut self, line: &str) {
        if self.stderr_ok {
            if let Err(e) = std::io::stderr().lock().write_all(line.as_bytes()) {
                self.stderr_ok = false;
                self.lost("stderr", &e);
            }
        }
    }

    fn write_stdout(&mut self, text: &str) {
        if self.stdout_ok {
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                self.stdout_ok = false;
                self.lost("stdout", &e);
            }
        }
    }
}

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // fatfs warns about FAT layouts it reads fine (e.g. mkfs.vfat's reserved sectors)
        // while the image's device-type.json is read: keep only its errors.
        if metadata.target().starts_with("fatfs") && metadata.level() > log::Level::Error {
            return false;
        }
        metadata.level() <= log::max_level()
    }
    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = format!("stager: {:<5} {}\n", record.level(), record.args());
            with_sinks(|sinks| {
                sinks.write_stderr(&line);
                sinks.write_file(&line);
            });
        }
    }
    fn flush(&self) {}
}

static LOGGER: Stderr = Stderr;

pub fn init() {
    let level = std::env::var("SWAPOVER_LOG")
        .ok()
        .and_then(|text| text.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::Info);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

/// From now on every log line and output line also goes to `file` (already open for append).
pub fn tee_to(file: File, path: &Path) {
    with_sinks(|sinks| sinks.file = Some(file));
    log::debug!("logging to {}", path.display());
}

/// The command's own output (stdout, and the log file): never fails, never panics.
pub fn out(text: &str) {
    with_sinks(|sinks| {
        sinks.write_stdout(text);
        sinks.write_file(text);
    });
}

/// An error line for the person (stderr, and the log file): never fails, never panics.
pub fn err(text: &str) {
    with_sinks(|sinks| {
        sinks.write_stderr(text);
        sinks.write_file(text);
    });
}
