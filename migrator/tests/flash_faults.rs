//! The flash engine against targets that fail: a real file behind a wrapper that
//! returns EIO / ENOSPC for chosen byte ranges (and loses unsynced writes when an
//! fsync fails, as Linux does), a real loop device too small for the image, and a
//! device-mapper `error` segment when device-mapper is available.

mod flash_support;

use flash_support::*;
use migrator::flash::{
    commit_head, flash_image, FlashError, FlashRequest, FlashTarget, Placement, Progress,
    HEAD_BYTES, WRITE_RETRIES,
};
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const IMAGE_LEN: usize = 13 * 1024 * 1024 + 12_345;
const OFFSET: u64 = 2 * MIB;
const EXTENT: u64 = 16 * MIB;
const TARGET_LEN: u64 = OFFSET + EXTENT + MIB;
const SINGLE_BLOCK: &[&str] = &[];
const MULTI_BLOCK: &[&str] = &["-T2", "--block-size=1MiB"];
/// Target bytes the fault covers: inside the image, well past its head.
const BAD: Range<u64> = OFFSET + 6 * MIB + 4096..OFFSET + 6 * MIB + 8192;
const NAME: &str = "faulty-test-disk";

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

fn placement() -> Placement {
    Placement { target_offset_bytes: OFFSET, extent_bytes: EXTENT }
}

fn request() -> FlashRequest {
    let mut request = FlashRequest::new(placement());
    request.write_retry_delay = Duration::from_millis(20);
    request
}

fn ignore(_: &Progress) {}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

/// A real file that fails some calls. Writes touching `bad` fail with `write_errno`
/// while `write_failures` lasts (`u32::MAX`: always). Syncs fail while
/// `sync_failures` lasts, and a failed sync puts back the old bytes of every range
/// written since the last good sync (Linux drops the dirty pages' data the same way).
struct FaultyTarget {
    file: File,
    bad: Range<u64>,
    write_errno: i32,
    write_failures: AtomicU32,
    sync_failures: AtomicU32,
    /// Syncs that succeed before `sync_failures` starts counting.
    good_syncs_first: AtomicU32,
    failed_writes: AtomicU32,
    failed_syncs: AtomicU32,
    /// Writes of the first chunk after the head: one per pass of the engine.
    first_chunk_writes: AtomicU32,
    unsynced: Mutex<Vec<(u64, Vec<u8>)>>,
}

impl FaultyTarget {
    fn new(file: File) -> FaultyTarget {
        FaultyTarget {
            file,
            bad: 0..0,
            write_errno: EIO,
            write_failures: AtomicU32::new(0),
            sync_failures: AtomicU32::new(0),
            good_syncs_first: AtomicU32::new(0),
            failed_writes: AtomicU32::new(0),
            failed_syncs: AtomicU32::new(0),
            first_chunk_writes: AtomicU32::new(0),
            unsynced: Mutex::new(Vec::new()),
        }
    }

    fn failing_writes(mut self, bad: Range<u64>, errno: i32, times: u32) -> FaultyTarget {
        self.bad = bad;
        self.write_errno = errno;
        self.write_failures = AtomicU32::new(times);
        self
    }

    fn failing_syncs(self, good_first: u32, times: u32) -> FaultyTarget {
        self.good_syncs_first.store(good_first, Ordering::SeqCst);
        self.sync_failures.store(times, Ordering::SeqCst);
        self
    }

    /// Take one failure from `budget` if any is left.
    fn take(budget: &AtomicU32) -> bool {
        budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| match left {
                0 => None,
                u32::MAX => Some(u32::MAX),
                n => Some(n - 1),
            })
            .is_ok()
    }
}

impl FlashTarget for FaultyTarget {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if offset == OFFSET + HEAD_BYTES {
            self.first_chunk_writes.fetch_add(1, Ordering::SeqCst);
        }
        let range = offset..offset + buf.len() as u64;
        if overlaps(&range, &self.bad) && Self::take(&self.write_failures) {
            self.failed_writes.fetch_add(1, Ordering::SeqCst);
            return Err(io::Error::from_raw_os_error(self.write_errno));
        }
        let mut old = vec![0u8; buf.len()];
        FileExt::read_exact_at(&self.file, &mut old, offset)?;
        self.unsynced.lock().unwrap().push((offset, old));
        FileExt::write_all_at(&self.file, buf, offset)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(&self.file, buf, offset)
    }

    fn sync(&self) -> io::Result<()> {
        let mut unsynced = self.unsynced.lock().unwrap();
        if !Self::take(&self.good_syncs_first) && Self::take(&self.sync_failures) {
            self.failed_syncs.fetch_add(1, Ordering::SeqCst);
            for (offset, old) in unsynced.drain(..).rev() {
                FileExt::write_all_at(&self.file, &old, offset)?;
            }
            return Err(io::Error::from_raw_os_error(EIO));
        }
        unsynced.clear();
        self.file.sync_data()
    }

    fn drop_cache(&self, offset: u64, len: u64) -> io::Result<()> {
        FlashTarget::drop_cache(&self.file, offset, len)
    }

    fn name(&self) -> String {
        NAME.to_string()
    }
}

struct Case {
    scratch: Scratch,
    raw: Vec<u8>,
    image: File,
    target_path: PathBuf,
}

fn case(name: &str, xz_args: &[&str]) -> Case {
    let scratch = Scratch::new(&format!("faults-{name}"));
    let raw = raw_image(IMAGE_LEN);
    let image_path = scratch.path("image.img.xz");
    xz(&raw, xz_args, &image_path);
    let image = File::open(&image_path).unwrap();
    let target_path = scratch.path("target.img");
    patterned_target(&target_path, TARGET_LEN);
    Case { scratch, raw, image, target_path }
}

impl Case {
    fn target(&self) -> FaultyTarget {
        let file = OpenOptions::new().read(true).write(true).open(&self.target_path).unwrap();
        FaultyTarget::new(file)
    }

    /// The target file, byte for byte: pattern, the whole image, pattern.
    fn assert_flashed(&self) {
        let expected_len = self.raw.len() as u64;
        let on_disk = std::fs::read(&self.target_path).unwrap();
        assert_eq!(on_disk.len() as u64, TARGET_LEN);
        assert!(all_pattern(&on_disk[..OFFSET as usize]), "bytes before the image changed");
        let image_end = (OFFSET + expected_len) as usize;
        assert!(
            on_disk[OFFSET as usize..image_end] == self.raw[..],
            "the target does not hold the image byte for byte"
        );
        assert!(all_pattern(&on_disk[image_end..]), "bytes past the image changed");
    }

    /// Nothing of the image's head reached the target (the disk boots as before).
    fn assert_head_untouched(&self) {
        let file = File::open(&self.target_path).unwrap();
        assert!(
            all_pattern(&read_range(&file, OFFSET, HEAD_BYTES)),
            "the held-back head was written by a failed flash"
        );
    }
}

fn flash_and_commit(case: &Case, target: &FaultyTarget, request: &FlashRequest) {
    let report = flash_image(&case.image, target, request, &mut ignore)
        .unwrap_or_else(|e| panic!("the flash should survive the faults: {e}"));
    commit_head(target, placement(), &report.written.head).unwrap();
}

#[test]
fn transient_write_errors_are_retried_until_the_image_is_whole() {
    for (name, args) in [("eio-single", SINGLE_BLOCK), ("eio-multi", MULTI_BLOCK)] {
        let case = case(name, args);
        let failures = WRITE_RETRIES - 1;
        let target = case.target().failing_writes(BAD, EIO, failures);
        flash_and_commit(&case, &target, &request());
        assert_eq!(target.failed_writes.load(Ordering::SeqCst), failures, "{name}");
        if args == SINGLE_BLOCK {
            // In order, and nothing synced before the fault: every pass starts at the
            // first chunk. (Parallel decoders may skip a block once a pass is aborted.)
            assert_eq!(
                target.first_chunk_writes.load(Ordering::SeqCst),
                failures + 1,
                "{name}: one pass per failure plus the good one"
            );
        }
        case.assert_flashed();
    }
}

#[test]
fn a_write_that_keeps_failing_stops_after_the_bounded_retries() {
    for (name, args) in [("eio-always-single", SINGLE_BLOCK), ("eio-always-multi", MULTI_BLOCK)] {
        let case = case(name, args);
        let target = case.target().failing_writes(BAD, EIO, u32::MAX);
        let error = flash_image(&case.image, &target, &request(), &mut ignore).unwrap_err();
        let passes = WRITE_RETRIES + 1;
        assert_eq!(target.failed_writes.load(Ordering::SeqCst), passes, "{name}");
        match &error {
            FlashError::WriteTarget { target: t, offset, attempts, source } => {
                assert_eq!(t, NAME);
                assert!(BAD.contains(offset) || (*offset..offset + 4 * MIB).contains(&BAD.start));
                assert_eq!(*attempts, passes);
                assert_eq!(source.raw_os_error(), Some(EIO));
            }
            other => panic!("{name}: expected WriteTarget, got {other:?}"),
        }
        let message = error.to_string();
        assert!(!message.contains('\n'), "{message}");
        for part in [NAME, &format!("{passes} attempt(s)"), "check it and its cable"] {
            assert!(message.contains(part), "{name}: '{part}' missing from: {message}");
        }
        case.assert_head_untouched();
    }
}

#[test]
fn a_failed_fsync_rewrites_everything_since_the_last_good_sync() {
    for (name, args) in [("fsync-single", SINGLE_BLOCK), ("fsync-multi", MULTI_BLOCK)] {
        let case = case(name, args);
        // The second sync fails and loses what was written after the first: a retry
        // that only called fsync again would "succeed" and leave pattern bytes in the
        // image's place; one that restarted past the first sync would too.
        let target = case.target().failing_syncs(1, 1);
        let mut request = request();
        request.sync_every_bytes = 2 * MIB;
        flash_and_commit(&case, &target, &request);
        assert_eq!(target.failed_syncs.load(Ordering::SeqCst), 1, "{name}");
        case.assert_flashed();
    }
}

#[test]
fn an_fsync_that_keeps_failing_stops_after_the_bounded_retries() {
    let case = case("fsync-always", SINGLE_BLOCK);
    let target = case.target().failing_syncs(0, u32::MAX);
    let error = flash_image(&case.image, &target, &request(), &mut ignore).unwrap_err();
    let passes = WRITE_RETRIES + 1;
    assert_eq!(target.failed_syncs.load(Ordering::SeqCst), passes);
    assert!(
        matches!(&error, FlashError::SyncTarget { attempts, .. } if *attempts == passes),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&format!("cannot flush {NAME}")), "{message}");
    case.assert_head_untouched();
}

#[test]
fn no_space_fails_at_once_without_retries() {
    let case = case("enospc", SINGLE_BLOCK);
    let target = case.target().failing_writes(BAD, ENOSPC, u32::MAX);
    let error = flash_image(&case.image, &target, &request(), &mut ignore).unwrap_err();
    assert_eq!(target.failed_writes.load(Ordering::SeqCst), 1, "ENOSPC was retried");
    assert_eq!(target.first_chunk_writes.load(Ordering::SeqCst), 1, "a second pass ran");
    assert!(matches!(error, FlashError::NoSpace { .. }), "{error:?}");
    let message = error.to_string();
    for part in
        [&format!("no space on {NAME}"), "at byte", "re-stage with a plan made for this disk"]
    {
        assert!(message.contains(part), "'{part}' missing from: {message}");
    }
    case.assert_head_untouched();
}

/// A loop device over a file; detached on drop.
struct Loop {
    device: PathBuf,
}

impl Loop {
    fn attach(file: &Path) -> Result<Loop, String> {
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(file)
            .output()
            .map_err(|e| format!("cannot run losetup: {e}"))?;
        if !out.status.success() {
            return Err(format!("losetup failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        let device = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(Loop { device: PathBuf::from(device) })
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
    }
}

fn open_rw(path: &Path) -> File {
    OpenOptions::new().read(true).write(true).open(path).unwrap()
}

#[test]
fn a_block_device_shorter_than_the_placement_fails_at_once() {
    let case = case("short-device", SINGLE_BLOCK);
    // 8 MiB of disk behind a placement that promises OFFSET + 16 MiB.
    let backing = case.scratch.path("short.img");
    patterned_target(&backing, 8 * MIB);
    let device = match Loop::attach(&backing) {
        Ok(device) => device,
        Err(reason) => {
            eprintln!("SKIPPED a_block_device_shorter_than_the_placement_fails_at_once: {reason}");
            return;
        }
    };
    let disk = open_rw(&device.device);
    let error = flash_image(&case.image, &disk, &request(), &mut ignore).unwrap_err();
    let FlashError::NoSpace { target, offset, .. } = &error else {
        panic!("expected NoSpace from the kernel's end of device, got {error:?}");
    };
    assert_eq!(Path::new(target), device.device);
    assert!(*offset < 8 * MIB, "offset {offset} lies past the device's end");
    let message = error.to_string();
    assert!(message.contains(&device.device.display().to_string()), "{message}");
    assert!(!message.contains('\n'), "{message}");
}

#[test]
fn a_device_mapper_error_segment_stops_the_flash_after_the_bounded_retries() {
    let dm = Command::new("dmsetup").arg("targets").output();
    let reason = match &dm {
        Err(e) => Some(format!("cannot run dmsetup: {e}")),
        Ok(out) if !out.status.success() => Some(format!(
            "device-mapper is unavailable here: {}",
            String::from_utf8_lossy(&out.stderr).lines().next().unwrap_or("dmsetup targets failed")
        )),
        Ok(out) if !String::from_utf8_lossy(&out.stdout).contains("error") => {
            Some("device-mapper has no error target".to_string())
        }
        Ok(_) => None,
    };
    if let Some(reason) = reason {
        eprintln!("SKIPPED a_device_mapper_error_segment_stops_the_flash_after_the_bounded_retries: {reason}");
        return;
    }
    let case = case("dm-error", SINGLE_BLOCK);
    let backing = case.scratch.path("dm-backing.img");
    patterned_target(&backing, TARGET_LEN);
    let lower = Loop::attach(&backing).expect("loop device under device-mapper");
    let sectors = TARGET_LEN / 512;
    let (bad_start, bad_len) = (BAD.start / 512, 64);
    let table = format!(
        "0 {bad_start} linear {dev} 0\n{bad_start} {bad_len} error\n{rest_start} {rest_len} linear {dev} {rest_start}\n",
        dev = lower.device.display(),
        rest_start = bad_start + bad_len,
        rest_len = sectors - bad_start - bad_len,
    );
    let name = format!("swapover-flash-faults-{}", std::process::id());
    let created =
        Command::new("dmsetup").args(["create", &name, "--table", &table]).status().unwrap();
    assert!(created.success(), "dmsetup create failed");
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = Command::new("dmsetup").args(["remove", &self.0]).status();
        }
    }
    let _remove = Remove(name.clone());
    let mapped = PathBuf::from(format!("/dev/mapper/{name}"));
    let disk = open_rw(&mapped);
    let error = flash_image(&case.image, &disk, &request(), &mut ignore).unwrap_err();
    // Buffered writes land in the page cache; the error target's EIO comes back from
    // fsync (or from the write itself on a full cache). Either way: every pass tried.
    let attempts = match &error {
        FlashError::WriteTarget { attempts, .. } | FlashError::SyncTarget { attempts, .. } => {
            *attempts
        }
        other => panic!("expected a write or sync error, got {other:?}"),
    };
    assert_eq!(attempts, WRITE_RETRIES + 1, "{error}");
    drop(disk);
    let head = read_range(&File::open(&backing).unwrap(), OFFSET, HEAD_BYTES);
    assert!(all_pattern(&head), "the head was written by a failed flash");
}
