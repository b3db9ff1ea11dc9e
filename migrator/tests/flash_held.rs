//! A held range (a partition written last): the engine neither writes nor verifies it,
//! on the parallel (multi-block xz) and the sequential path, fresh and resumed, and a
//! change inside it after the flash does not fail verification while one outside does.

mod flash_support;

use flash_support::{all_pattern, patterned_target, raw_image, read_range, xz, Scratch, MIB};
use migrator::flash::{self, DecodeMode, FlashRequest, HeldRange, HeldRanges, Placement, Progress};
use std::fs::File;
use std::os::unix::fs::FileExt;

fn ignore(_: &Progress) {}

fn check(name: &str, xz_args: &[&str], threads: usize, resume_from: u64) {
    let scratch = Scratch::new(name);
    let raw = raw_image((12 * MIB + 12_345) as usize);
    let image = scratch.path("image.xz");
    xz(&raw, xz_args, &image);
    let len = raw.len() as u64;
    let target = patterned_target(&scratch.path("disk"), 16 * MIB);
    // Not aligned to the 4 MiB write chunks nor to xz blocks.
    let held = HeldRange { start: 5 * MIB + 4096, end: 9 * MIB + 512 };
    let mut request =
        FlashRequest::new(Placement { target_offset_bytes: 0, extent_bytes: 16 * MIB });
    request.decode_threads = threads;
    request.held = HeldRanges::one(held);
    if resume_from > 0 {
        // An earlier boot wrote (outside the held range) up to `resume_from`.
        for (at, len) in HeldRanges::one(held).outside(MIB, (resume_from - MIB) as usize) {
            target
                .write_all_at(&raw[MIB as usize + at..MIB as usize + at + len], MIB + at as u64)
                .unwrap();
        }
        request.resume_from_image_offset = resume_from;
    }
    let written =
        flash::write_image(&File::open(&image).unwrap(), &target, &request, &mut ignore).unwrap();
    assert_eq!(written.held, HeldRanges::one(held));
    if threads > 1 {
        assert!(matches!(written.mode, DecodeMode::XzParallel { .. }), "{:?}", written.mode);
    }
    let (s, e) = (held.start as usize, held.end as usize);
    assert!(
        all_pattern(&read_range(&target, held.start, held.end - held.start)),
        "the held range was written"
    );
    assert!(
        read_range(&target, MIB, held.start - MIB) == raw[MIB as usize..s],
        "bytes before the held range"
    );
    assert!(
        read_range(&target, held.end, len - held.end) == raw[e..],
        "bytes after the held range"
    );
    assert!(all_pattern(&read_range(&target, 0, MIB)), "the head is held back too");
    flash::verify_written(&target, &written).unwrap();
    // Whatever lands inside the held range later is not the flash's business...
    target.write_all_at(&[0u8; 4096], held.start + 8192).unwrap();
    flash::verify_written(&target, &written).unwrap();
    // ...but one changed byte outside it is.
    target.write_all_at(&[raw[e + 10] ^ 1], held.end + 10).unwrap();
    assert!(matches!(
        flash::verify_written(&target, &written),
        Err(flash::FlashError::VerifyMismatch { .. })
    ));
}

#[test]
fn a_held_range_is_neither_written_nor_verified_on_the_parallel_path() {
    check("held-multi", &["-T2", "--block-size=1MiB"], 2, 0);
}

#[test]
fn a_held_range_is_neither_written_nor_verified_on_the_sequential_path() {
    check("held-single", &[], 1, 0);
}

#[test]
fn a_resumed_flash_keeps_holding_the_range_back() {
    check("held-resume", &["-T2", "--block-size=1MiB"], 2, 8 * MIB);
}
