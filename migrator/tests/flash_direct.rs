//! The target the migrator flashes through (`DirectTarget`: O_DIRECT for aligned
//! pieces, buffered for the rest) on a real file: byte-identical results for aligned
//! and unaligned placements, single- and multi-block images, odd image lengths and a
//! resume point that is not aligned; and, observed with util-linux `fincore`, the
//! aligned placement really bypasses the page cache (only the unaligned tail and the
//! head are cached), which is the point of it.

mod flash_support;

use flash_support::*;
use migrator::flash::{
    commit_head, verify_written, write_image, DirectTarget, FlashRequest, Placement, Progress,
};
use std::path::Path;
use std::process::Command;

const IMAGE_LEN: usize = 21 * 1024 * 1024 + 777;
const EXTENT: u64 = 24 * MIB;

fn ignore(_: &Progress) {}

/// Bytes of `path` resident in the page cache, per `fincore`.
fn resident_bytes(path: &Path) -> u64 {
    let out = Command::new("fincore")
        .args(["--bytes", "--noheadings", "--raw", "--output", "RES"])
        .arg(path)
        .output()
        .expect("fincore (util-linux)");
    assert!(out.status.success(), "fincore failed");
    String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
}

fn flash_onto(name: &str, xz_args: &[&str], offset: u64, resume_from: u64) -> (u64, bool) {
    let scratch = Scratch::new(name);
    let raw = raw_image(IMAGE_LEN);
    let image_path = scratch.path("image.xz");
    xz(&raw, xz_args, &image_path);
    let target_path = scratch.path("target.img");
    let target_len = offset + EXTENT + MIB;
    drop(patterned_target(&target_path, target_len));
    let target = DirectTarget::open(&target_path).unwrap();
    // Start from an uncached target so residency afterwards shows how we wrote.
    target.file().sync_all().unwrap();
    migrator::flash::FlashTarget::drop_cache(&target, 0, target_len).unwrap();

    let placement = Placement { target_offset_bytes: offset, extent_bytes: EXTENT };
    let mut request = FlashRequest::new(placement);
    request.resume_from_image_offset = resume_from;
    if resume_from > 0 {
        // What an earlier attempt left below the resume point.
        let file = std::fs::OpenOptions::new().write(true).open(&target_path).unwrap();
        std::os::unix::fs::FileExt::write_all_at(
            &file,
            &raw[HEAD..resume_from as usize],
            offset + HEAD as u64,
        )
        .unwrap();
        file.sync_all().unwrap();
        migrator::flash::FlashTarget::drop_cache(&file, 0, target_len).unwrap();
    }
    let image = std::fs::File::open(&image_path).unwrap();
    let written = write_image(&image, &target, &request, &mut ignore)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let resident = resident_bytes(&target_path);
    verify_written(&target, &written).unwrap_or_else(|e| panic!("{name}: {e}"));
    commit_head(&target, placement, &written.head).unwrap();
    let on_disk = read_range(target.file(), offset, raw.len() as u64);
    assert!(on_disk == raw, "{name}: flashed bytes differ from the raw image");
    let end = offset + raw.len() as u64;
    assert!(
        all_pattern(&read_range(target.file(), 0, offset)),
        "{name}: bytes before the placement changed"
    );
    assert!(
        all_pattern(&read_range(target.file(), end, target_len - end)),
        "{name}: bytes after the image changed"
    );
    (resident, target.is_direct())
}

const HEAD: usize = 1024 * 1024;

#[test]
fn direct_target_flashes_identically_aligned_or_not() {
    for (name, args) in
        [("direct-single", &[][..]), ("direct-multi", &["-T2", "--block-size=3MiB"][..])]
    {
        for (offset, resume) in [(MIB, 0), (3 * MIB + 512, 0), (MIB, 9 * MIB + 4096 * 3 + 512)] {
            flash_onto(&format!("{name}-{offset}-{resume}"), args, offset, resume);
        }
    }
}

/// On tmpfs every page of a file is "in the page cache": residency tells nothing there.
fn temp_dir_is_tmpfs() -> bool {
    nix::sys::statfs::statfs(&std::env::temp_dir())
        .map(|fs| fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
        .unwrap_or(false)
}

#[test]
fn aligned_writes_bypass_the_page_cache() {
    if temp_dir_is_tmpfs() {
        eprintln!("skipped: the temp directory is tmpfs, whose pages are always resident");
        return;
    }
    let (resident, direct) = flash_onto("direct-cache", &[], MIB, 0);
    if !direct {
        eprintln!("skipped: the temp directory's file system refuses O_DIRECT");
        return;
    }
    // Measured before verify and commit: only the unaligned tail piece (under 4 MiB)
    // went through the page cache.
    assert!(
        resident < 4 * MIB,
        "{resident} bytes of the target are in the page cache after a direct flash of {IMAGE_LEN} bytes"
    );
    // The same flash through a plain File caches what it wrote: the check can tell.
    let scratch = Scratch::new("buffered-cache");
    let raw = raw_image(IMAGE_LEN);
    let image_path = scratch.path("image.xz");
    xz(&raw, &[], &image_path);
    let target_path = scratch.path("target.img");
    let target = patterned_target(&target_path, MIB + EXTENT + MIB);
    target.sync_all().unwrap();
    migrator::flash::FlashTarget::drop_cache(&target, 0, MIB + EXTENT + MIB).unwrap();
    let request = FlashRequest::new(Placement { target_offset_bytes: MIB, extent_bytes: EXTENT });
    let image = std::fs::File::open(&image_path).unwrap();
    write_image(&image, &target, &request, &mut ignore).unwrap();
    let buffered_resident = resident_bytes(&target_path);
    assert!(
        buffered_resident > 8 * MIB,
        "a buffered flash left only {buffered_resident} bytes cached: fincore cannot tell the paths apart here"
    );
}
