//! Feeding a hardware watchdog the boot firmware started (`plan.failure.watchdog`; the
//! BeagleBone Black's U-Boot starts the 60 s OMAP watchdog and it keeps running into Linux,
//! docs/arm-1x-contract.md B11/R4). A thread writes one byte to the device every
//! `interval_secs` for the whole run: the flash and the read-back take minutes, far longer
//! than the hardware timeout.
//!
//! Linux watchdog API (kernel `Documentation/watchdog/watchdog-api.rst`,
//! <https://www.kernel.org/doc/html/latest/watchdog/watchdog-api.html>): opening the device
//! starts it, any write keeps it alive, and only a write containing the magic character 'V'
//! followed by a close stops it. The feeder never writes 'V' and never closes the device, so
//! the hardware keeps guarding the board: a migrator that stops feeding is reset.
//!
//! What a reset means depends on the commit (the `arm-resume` step, [`crate::steps::uboot_resume`]):
//! - before it, `uEnv.txt` still holds the one-shot trial, whose `${bootcount}` test no longer
//!   matches after another reset: the board boots resinOS 1.x. So a fatal halt before the
//!   commit calls [`Watchdog::stop_feeding`] and lets the hardware reset the board (the halt's
//!   own reboot comes 15 min later, [`crate::pid1::halt`]).
//! - after it, every boot resumes the migrator from its journal. A halt then keeps feeding
//!   (its console message stays readable, then it reboots to try again, as on x86), and a
//!   reset by the watchdog is one more interrupted attempt of the step that was running,
//!   bounded by the journal's count of interrupted attempts
//!   ([`crate::steps::MAX_INTERRUPTED_ATTEMPTS`]) and failed ones (`failure.step_retries`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use plan::WatchdogFeed;

/// What is written to keep the watchdog alive: anything but the magic close 'V'.
pub const FEED_BYTE: u8 = b'1';

#[derive(Debug, thiserror::Error)]
#[error("cannot open the watchdog {path}: {source}; check that its driver (omap_wdt on the BeagleBone) is in the initramfs")]
pub struct WatchdogError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

struct Shared {
    feeding: AtomicBool,
    feeds: AtomicU64,
}

/// A running feeder. Dropping it does not stop the feeding thread: PID 1 never ends.
pub struct Watchdog {
    shared: Arc<Shared>,
    path: PathBuf,
}

impl Watchdog {
    /// Open the device (this also starts a watchdog not started yet) and feed it now and
    /// then every `interval_secs` from a thread.
    pub fn start(feed: &WatchdogFeed) -> Result<Watchdog, WatchdogError> {
        Self::start_every(Path::new(&feed.device), Duration::from_secs(feed.interval_secs.into()))
    }

    /// [`Watchdog::start`] with any interval (tests use milliseconds).
    pub fn start_every(path: &Path, interval: Duration) -> Result<Watchdog, WatchdogError> {
        let device = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|source| WatchdogError { path: path.to_path_buf(), source })?;
        let shared = Arc::new(Shared { feeding: AtomicBool::new(true), feeds: AtomicU64::new(0) });
        let feeder = Arc::clone(&shared);
        let name = path.display().to_string();
        std::thread::spawn(move || feed_loop(device, &feeder, interval, &name));
        log::info!("watchdog {}: fed every {} ms", path.display(), interval.as_millis());
        Ok(Watchdog { shared, path: path.to_path_buf() })
    }

    /// Stop feeding for good: the hardware resets the board at its timeout. The device
    /// stays open and is never sent the magic close.
    pub fn stop_feeding(&self) {
        self.shared.feeding.store(false, Ordering::SeqCst);
        log::warn!(
            "watchdog {}: no longer fed; the board resets when it expires",
            self.path.display()
        );
    }

    /// The migrator halts: before the commit (`committed` false) a reset boots the old OS,
    /// so feeding stops and the hardware does it; after it, feeding goes on (the halt shows
    /// its message, then reboots to resume, bounded by the journal).
    pub fn on_halt(&self, committed: bool) {
        if !committed {
            self.stop_feeding();
        }
    }

    /// How many feeds were written so far.
    pub fn feeds(&self) -> u64 {
        self.shared.feeds.load(Ordering::SeqCst)
    }
}

fn feed_loop(mut device: File, shared: &Shared, interval: Duration, name: &str) {
    let mut warned = false;
    while shared.feeding.load(Ordering::SeqCst) {
        match device.write_all(&[FEED_BYTE]).and_then(|()| device.flush()) {
            Ok(()) => {
                shared.feeds.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) if !warned => {
                log::error!("watchdog {name}: cannot feed it ({e}); the board may reset");
                warned = true;
            }
            Err(_) => {}
        }
        std::thread::sleep(interval);
    }
    // Keep the device open forever: closing it without 'V' would not stop the hardware,
    // but some drivers log "unexpected close"; holding it says nothing and changes nothing.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
        let _ = &device;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn it_feeds_every_interval_and_never_writes_the_magic_close() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("watchdog");
        std::fs::write(&device, b"").unwrap();
        let dog = Watchdog::start_every(&device, Duration::from_millis(10)).unwrap();
        wait_for("five feeds", || dog.feeds() >= 5);
        let written = std::fs::read(&device).unwrap();
        assert!(written.len() >= 5, "{} bytes written", written.len());
        assert!(written.iter().all(|b| *b == FEED_BYTE), "only feed bytes: {written:?}");
        assert!(!written.contains(&b'V'), "the magic close is never written");
    }

    #[test]
    fn stopping_before_the_commit_ends_the_feeding() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("watchdog");
        std::fs::write(&device, b"").unwrap();
        let dog = Watchdog::start_every(&device, Duration::from_millis(10)).unwrap();
        wait_for("a first feed", || dog.feeds() >= 1);
        dog.stop_feeding();
        // At most one feed that was already past its check may still land.
        std::thread::sleep(Duration::from_millis(100));
        let after_stop = std::fs::metadata(&device).unwrap().len();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            std::fs::metadata(&device).unwrap().len(),
            after_stop,
            "no feed after stop_feeding (10 intervals waited)"
        );
        assert_eq!(dog.feeds(), after_stop);
    }

    #[test]
    fn a_halt_after_the_commit_keeps_feeding_and_one_before_it_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("watchdog");
        std::fs::write(&device, b"").unwrap();
        let dog = Watchdog::start_every(&device, Duration::from_millis(10)).unwrap();
        dog.on_halt(true);
        let fed = dog.feeds();
        wait_for("feeds after a committed halt", || dog.feeds() >= fed + 3);
        dog.on_halt(false);
        std::thread::sleep(Duration::from_millis(100));
        let stopped = dog.feeds();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(dog.feeds(), stopped, "fed after a halt before the commit");
    }

    #[test]
    fn a_device_that_is_not_there_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            Watchdog::start_every(&dir.path().join("none"), Duration::from_secs(1)).err().unwrap();
        assert!(err.to_string().contains("none"), "{err}");
    }
}
