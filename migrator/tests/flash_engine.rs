//! The flash engine against real xz files and real target files.

mod flash_support;

use flash_support::*;
use migrator::flash::{
    commit_head, flash_image, verify_written, write_image, DecodeMode, FlashError, FlashRequest,
    Placement, Progress, Sha256Digest, XzError, ZeroRuns, HEAD_BYTES,
};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;

const IMAGE_LEN: usize = 13 * 1024 * 1024 + 12_345;
const OFFSET: u64 = 3 * MIB + 512;
const EXTENT: u64 = 16 * MIB;
const TAIL: u64 = 2 * MIB; // "staging partition" behind the extent
const TARGET_LEN: u64 = OFFSET + EXTENT + TAIL;

fn placement() -> Placement {
    Placement { target_offset_bytes: OFFSET, extent_bytes: EXTENT }
}

fn ignore(_: &Progress) {}

struct Case {
    _scratch: Scratch,
    raw: Vec<u8>,
    image: File,
    target: File,
    image_path: std::path::PathBuf,
}

fn case(name: &str, xz_args: &[&str]) -> Case {
    let scratch = Scratch::new(name);
    let raw = raw_image(IMAGE_LEN);
    let image_path = scratch.path("image.img.xz");
    xz(&raw, xz_args, &image_path);
    let image = File::open(&image_path).unwrap();
    let target_path = scratch.path("target.img");
    let target = patterned_target(&target_path, TARGET_LEN);
    Case { _scratch: scratch, raw, image, target, image_path }
}

fn assert_outside_untouched(target: &File, image_len: u64) {
    assert!(all_pattern(&read_range(target, 0, OFFSET)), "bytes before the offset changed");
    let end = OFFSET + image_len;
    assert!(
        all_pattern(&read_range(target, end, TARGET_LEN - end)),
        "bytes past the image (extent, staging) changed"
    );
}

fn flash_and_check(case: &Case, expected_mode: fn(DecodeMode) -> bool) {
    let request = FlashRequest::new(placement());
    let report = flash_image(&case.image, &case.target, &request, &mut ignore).unwrap();
    let written = &report.written;
    assert!(expected_mode(written.mode), "unexpected mode {:?}", written.mode);
    assert_eq!(written.image_bytes, case.raw.len() as u64);
    let head = HEAD_BYTES as usize;
    assert_eq!(written.head.bytes(), &case.raw[..head]);
    // Before the commit, the head region on the target is untouched.
    assert!(
        all_pattern(&read_range(&case.target, OFFSET, HEAD_BYTES)),
        "head written before commit"
    );
    let body = read_range(&case.target, OFFSET + HEAD_BYTES, case.raw.len() as u64 - HEAD_BYTES);
    assert!(body == case.raw[head..], "body differs from the raw image");
    assert_outside_untouched(&case.target, case.raw.len() as u64);
    let compressed = std::fs::read(&case.image_path).unwrap();
    assert_eq!(written.compressed_sha256, Sha256Digest::of(&compressed));
    assert_eq!(written.compressed_bytes, compressed.len() as u64);

    commit_head(&case.target, placement(), &written.head).unwrap();
    let all = read_range(&case.target, OFFSET, case.raw.len() as u64);
    assert!(all == case.raw, "flashed image differs from the raw image");
    assert_outside_untouched(&case.target, case.raw.len() as u64);
}

#[test]
fn single_block_xz_lands_at_offset_inside_extent_head_last() {
    let case = case("single", &[]);
    flash_and_check(&case, |m| m == DecodeMode::XzSequential);
}

#[test]
fn multi_block_xz_decodes_in_parallel_to_the_same_bytes() {
    let case = case("multi", &["-T2", "--block-size=1MiB"]);
    flash_and_check(
        &case,
        |m| matches!(m, DecodeMode::XzParallel { threads: 2, blocks } if blocks >= 13),
    );
}

#[test]
fn multi_block_xz_with_one_thread_uses_the_sequential_path() {
    let case = case("multi-seq", &["-T2", "--block-size=1MiB"]);
    let mut request = FlashRequest::new(placement());
    request.decode_threads = 1;
    let report = flash_image(&case.image, &case.target, &request, &mut ignore).unwrap();
    assert_eq!(report.written.mode, DecodeMode::XzSequential);
    commit_head(&case.target, placement(), &report.written.head).unwrap();
    assert!(read_range(&case.target, OFFSET, case.raw.len() as u64) == case.raw);
}

#[test]
fn concatenated_streams_decode_like_xz_does() {
    let scratch = Scratch::new("concat");
    let raw = raw_image(IMAGE_LEN);
    let (first, second) = raw.split_at(5 * MIB as usize + 7);
    let (a, b) = (scratch.path("a.xz"), scratch.path("b.xz"));
    xz(first, &["-T2", "--block-size=1MiB"], &a);
    xz(second, &[], &b);
    let mut joined = std::fs::read(&a).unwrap();
    joined.extend_from_slice(&[0u8; 8]); // stream padding
    joined.extend_from_slice(&std::fs::read(&b).unwrap());
    let path = scratch.path("joined.xz");
    std::fs::write(&path, &joined).unwrap();
    for threads in [1, 2] {
        let target = patterned_target(&scratch.path("t"), TARGET_LEN);
        let mut request = FlashRequest::new(placement());
        request.decode_threads = threads;
        let report =
            flash_image(&File::open(&path).unwrap(), &target, &request, &mut ignore).unwrap();
        commit_head(&target, placement(), &report.written.head).unwrap();
        assert!(read_range(&target, OFFSET, raw.len() as u64) == raw, "threads={threads}");
    }
}

#[test]
fn raw_images_are_written_as_is() {
    let scratch = Scratch::new("raw");
    let raw = raw_image(IMAGE_LEN);
    let path = scratch.path("image.img");
    std::fs::write(&path, &raw).unwrap();
    let target = patterned_target(&scratch.path("t"), TARGET_LEN);
    let report = flash_image(
        &File::open(&path).unwrap(),
        &target,
        &FlashRequest::new(placement()),
        &mut ignore,
    )
    .unwrap();
    assert_eq!(report.written.mode, DecodeMode::Raw);
    assert_eq!(report.written.compressed_sha256, Sha256Digest::of(&raw));
    commit_head(&target, placement(), &report.written.head).unwrap();
    assert!(read_range(&target, OFFSET, raw.len() as u64) == raw);
    assert_outside_untouched(&target, raw.len() as u64);
}

fn corrupt_middle(path: &std::path::Path) {
    let file = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let len = file.metadata().unwrap().len();
    let mut bytes = read_range(&file, len / 3, 64);
    bytes.iter_mut().for_each(|b| *b ^= 0x5A);
    file.write_all_at(&bytes, len / 3).unwrap();
}

#[test]
fn corrupt_xz_is_a_clear_error_and_the_head_is_never_written() {
    for (name, args, threads) in
        [("corrupt-single", &[][..], 2), ("corrupt-multi", &["-T2", "--block-size=1MiB"][..], 2)]
    {
        let case = case(name, args);
        corrupt_middle(&case.image_path);
        let image = File::open(&case.image_path).unwrap();
        let mut request = FlashRequest::new(placement());
        request.decode_threads = threads;
        let error = flash_image(&image, &case.target, &request, &mut ignore).unwrap_err();
        assert!(
            matches!(
                error,
                FlashError::Xz(
                    XzError::StreamData { .. }
                        | XzError::BlockData { .. }
                        | XzError::CheckMismatch { .. }
                )
            ),
            "{name}: {error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("damaged") && message.contains("re-stage"), "{message}");
        assert!(all_pattern(&read_range(&case.target, OFFSET, HEAD_BYTES)), "{name}: head written");
        assert_outside_untouched(&case.target, IMAGE_LEN as u64);
    }
}

#[test]
fn truncated_xz_is_refused_before_the_target_is_touched() {
    let case = case("truncated", &["-T2", "--block-size=1MiB"]);
    let len = case.image.metadata().unwrap().len();
    OpenOptions::new().write(true).open(&case.image_path).unwrap().set_len(len - 1000).unwrap();
    let image = File::open(&case.image_path).unwrap();
    let error = flash_image(&image, &case.target, &FlashRequest::new(placement()), &mut ignore)
        .unwrap_err();
    assert!(matches!(error, FlashError::Xz(XzError::BadFooter(_))), "{error:?}");
    assert!(error.to_string().contains("truncated"), "{error}");
    assert!(all_pattern(&read_range(&case.target, 0, TARGET_LEN)), "target touched");
}

#[test]
fn an_image_larger_than_the_extent_is_refused_before_writing() {
    let case = case("too-large", &[]);
    let small = Placement { target_offset_bytes: OFFSET, extent_bytes: 8 * MIB };
    let error =
        flash_image(&case.image, &case.target, &FlashRequest::new(small), &mut ignore).unwrap_err();
    assert!(
        matches!(error, FlashError::ImageTooLarge { image_bytes, extent_bytes } if image_bytes == IMAGE_LEN as u64 && extent_bytes == 8 * MIB),
        "{error:?}"
    );
    assert!(all_pattern(&read_range(&case.target, 0, TARGET_LEN)), "target touched");
}

#[test]
fn wrong_image_digest_fails_and_withholds_the_head() {
    let case = case("digest", &[]);
    let mut request = FlashRequest::new(placement());
    request.expected_image_sha256 = Some(Sha256Digest([7; 32]));
    let error = write_image(&case.image, &case.target, &request, &mut ignore).unwrap_err();
    assert!(matches!(error, FlashError::ImageDigestMismatch { .. }), "{error:?}");
}

#[test]
fn read_back_mismatch_is_fatal() {
    for (name, args) in
        [("mismatch-single", &[][..]), ("mismatch-multi", &["-T2", "--block-size=1MiB"][..])]
    {
        let case = case(name, args);
        let written =
            write_image(&case.image, &case.target, &FlashRequest::new(placement()), &mut ignore)
                .unwrap();
        let spot = OFFSET + 5 * MIB + 3;
        let mut byte = read_range(&case.target, spot, 1);
        byte[0] ^= 1;
        case.target.write_all_at(&byte, spot).unwrap();
        let error = verify_written(&case.target, &written).unwrap_err();
        match error {
            FlashError::VerifyMismatch { image_offset, end, .. } => {
                assert!(
                    image_offset <= 5 * MIB + 3 && 5 * MIB + 3 < end,
                    "{name}: range {image_offset}..{end}"
                )
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

fn resume_gives_identical_result(name: &str, args: &[&str]) {
    let case = case(name, args);
    let mut durable_seen = Vec::new();
    let mut request = FlashRequest::new(placement());
    request.sync_every_bytes = 2 * MIB;
    // First attempt: runs to the end; we keep a durable offset from the middle of it.
    write_image(&case.image, &case.target, &request, &mut |p: &Progress| {
        durable_seen.push(p.durable_image_offset)
    })
    .unwrap();
    let resume_at = *durable_seen
        .iter()
        .find(|d| **d >= 4 * MIB && **d < IMAGE_LEN as u64 - MIB)
        .expect("a durable offset in the middle");
    assert!(durable_seen.windows(2).all(|w| w[0] <= w[1]), "durable offset went backwards");
    // "Power cut": everything after the resume point is lost.
    let lost = vec![PATTERN; (TARGET_LEN - OFFSET - EXTENT) as usize];
    let mut pos = OFFSET + resume_at;
    while pos < OFFSET + IMAGE_LEN as u64 {
        let n = (OFFSET + IMAGE_LEN as u64 - pos).min(lost.len() as u64);
        case.target.write_all_at(&lost[..n as usize], pos).unwrap();
        pos += n;
    }
    request.resume_from_image_offset = resume_at;
    let mut last = None;
    let report =
        flash_image(&case.image, &case.target, &request, &mut |p: &Progress| last = Some(*p))
            .unwrap();
    let last = last.unwrap();
    assert_eq!(last.image_bytes_out, IMAGE_LEN as u64, "decoding restarts from the beginning");
    assert_eq!(
        last.bytes_written,
        IMAGE_LEN as u64 - resume_at,
        "only bytes past the resume point are written"
    );
    commit_head(&case.target, placement(), &report.written.head).unwrap();
    assert!(
        read_range(&case.target, OFFSET, IMAGE_LEN as u64) == case.raw,
        "{name}: resumed result differs"
    );
    assert_outside_untouched(&case.target, IMAGE_LEN as u64);
}

#[test]
fn resume_from_a_durable_offset_gives_an_identical_result_single_block() {
    resume_gives_identical_result("resume-single", &[]);
}

#[test]
fn resume_from_a_durable_offset_gives_an_identical_result_multi_block() {
    resume_gives_identical_result("resume-multi", &["-T2", "--block-size=1MiB"]);
}

#[test]
fn zero_runs_are_skipped_only_when_the_target_reads_zero_and_verification_still_covers_them() {
    let scratch = Scratch::new("zeros");
    let raw = raw_image(IMAGE_LEN);
    let path = scratch.path("image.xz");
    xz(&raw, &[], &path);
    let image = File::open(&path).unwrap();

    // A fresh sparse file reads as zero: skipping is safe and the result is exact.
    let sparse = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(scratch.path("sparse"))
        .unwrap();
    sparse.set_len(TARGET_LEN).unwrap();
    let mut request = FlashRequest::new(placement());
    request.zero_runs = ZeroRuns::SkipTargetReadsZero;
    let mut last = None;
    let report =
        flash_image(&image, &sparse, &request, &mut |p: &Progress| last = Some(*p)).unwrap();
    assert!(last.unwrap().bytes_written < IMAGE_LEN as u64 - HEAD_BYTES, "no zero run was skipped");
    commit_head(&sparse, placement(), &report.written.head).unwrap();
    assert!(read_range(&sparse, OFFSET, IMAGE_LEN as u64) == raw);

    // Claiming it for a target that does not read as zero is caught by read-back.
    let dirty = patterned_target(&scratch.path("dirty"), TARGET_LEN);
    let error = flash_image(&image, &dirty, &request, &mut ignore).unwrap_err();
    assert!(matches!(error, FlashError::VerifyMismatch { .. }), "{error:?}");

    // The default writes zeros too.
    let report = flash_image(&image, &dirty, &FlashRequest::new(placement()), &mut ignore).unwrap();
    commit_head(&dirty, placement(), &report.written.head).unwrap();
    assert!(read_range(&dirty, OFFSET, IMAGE_LEN as u64) == raw);
}

/// Past 2 GiB (an SD card, a 4 GiB eMMC) a target's cache is still dropped after the sync.
/// On 32-bit ARM this needs the 64-bit `off_t` of `.cargo/config.toml`: with glibc's default
/// 32-bit one, nix's posix_fadvise could not take the offset. scripts/test.sh runs this file
/// for ARMv7 under qemu-arm-static too.
#[test]
fn a_target_is_written_synced_and_its_cache_dropped_past_2_gib() {
    use migrator::flash::flash_target::FlashTarget;
    let scratch = Scratch::new("past-2gib");
    let path = scratch.path("target");
    let target =
        OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
    let at = 4 * 1024 * MIB + 512;
    target.set_len(at + MIB).unwrap();
    FlashTarget::write_all_at(&target, b"resin-rootA", at).unwrap();
    FlashTarget::sync(&target).unwrap();
    FlashTarget::drop_cache(&target, at - 512, MIB).unwrap();
    let mut back = [0u8; 11];
    FlashTarget::read_exact_at(&target, &mut back, at).unwrap();
    assert_eq!(&back, b"resin-rootA");
}
