//! Log lines on stderr (`stager: LEVEL message`), info and above unless `SWAPOVER_LOG`
//! names another level (`debug`, `warn`, ...). stdout stays for the command's own output.

use log::{LevelFilter, Log, Metadata, Record};

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
            eprintln!("stager: {:<5} {}", record.level(), record.args());
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
