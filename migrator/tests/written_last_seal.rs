//! Sealing staging before the partition written last (its own test binary: sealing
//! detaches the process-wide log file, which other tests' logs must not lose).

mod steps_support;

use std::path::PathBuf;

use steps_support::run;

/// Unmounts on drop (a failed assertion must not leave a mount behind).
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A mounted staging ext4 is remounted read-only (a journal write now fails with EROFS);
/// a plain directory is only synced and stays writable.
#[test]
fn a_mounted_staging_is_sealed_read_only_and_a_plain_directory_is_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("staging.ext4");
    std::fs::File::create(&image).unwrap().set_len(8 * 1024 * 1024).unwrap();
    run("mkfs.ext4", &["-q", image.to_str().unwrap()]);
    let at = tmp.path().join("staging");
    std::fs::create_dir_all(&at).unwrap();
    run("mount", &["-o", "loop", image.to_str().unwrap(), at.to_str().unwrap()]);
    let _mounted = Mounted(at.clone());
    std::fs::create_dir_all(at.join("swapover")).unwrap();
    std::fs::write(at.join("swapover/journal.0"), b"before").unwrap();
    migrator::logging::attach_file(&at.join("swapover/migration.log")).unwrap();
    log::info!("a line on staging before the seal");
    migrator::steps::written_last::seal_staging(&at).unwrap();
    let refused = std::fs::write(at.join("swapover/journal.0"), b"after").unwrap_err();
    assert_eq!(refused.raw_os_error(), Some(nix::errno::Errno::EROFS as i32), "{refused}");
    assert_eq!(std::fs::read(at.join("swapover/journal.0")).unwrap(), b"before");
    log::info!("a line after the seal goes to the console only");
    let plain = tmp.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    migrator::steps::written_last::seal_staging(&plain).unwrap();
    std::fs::write(plain.join("still-writable"), b"yes").unwrap();
}
