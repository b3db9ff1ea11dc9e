//! Issue 7, point 5: the migration initramfs without modules stays within 8 MiB.
//!
//! Built from the release (static musl) migrator that `scripts/build-static.sh` makes —
//! the README's test command builds it before running the tests, which is why this test
//! lives with the QEMU tests (they need the static binaries too) — with the same pieces
//! the stager puts in (migrator as /init, the plan), and no compression: the worst case.

use initramfs::{Compression, InitramfsBuilder};
use std::path::PathBuf;

const LIMIT_BYTES: u64 = 8 * 1024 * 1024;

fn release_migrator() -> PathBuf {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target_dir.join("x86_64-unknown-linux-musl/release/migrator")
}

#[test]
fn the_initramfs_without_modules_is_at_most_8_mib() {
    let path = release_migrator();
    let migrator = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the release migrator {}: {e}; run `bash scripts/build-static.sh` first",
            path.display()
        )
    });
    // A plan of the size the stager writes (a few KiB); the content does not matter here.
    let plan = vec![b' '; 16 * 1024];
    for compression in [Compression::None, Compression::Gzip] {
        let mut archive = Vec::new();
        let report = InitramfsBuilder::new()
            .init(migrator.clone())
            .data_file("etc/swapover/plan.json", plan.clone())
            .compression(compression)
            .write_to(&mut archive)
            .unwrap();
        assert_eq!(report.archive_bytes, archive.len() as u64);
        eprintln!(
            "migrator binary {} bytes; initramfs without modules ({compression:?}): {} bytes (limit {LIMIT_BYTES})",
            migrator.len(),
            report.archive_bytes
        );
        assert!(
            report.archive_bytes <= LIMIT_BYTES,
            "the initramfs without modules is {} bytes ({compression:?}), over the 8 MiB limit",
            report.archive_bytes
        );
    }
}
