//! The engine verifies each xz block's check itself (liblzma runs with LZMA_IGNORE_CHECK):
//! every check type `xz -C` writes must flash byte-identical, and a block whose stored
//! check no longer matches its (intact) data must stop the flash on every decode path,
//! naming the block, with the head never written. Only our comparison can catch that
//! damage: the compressed data itself decodes fine.

mod flash_support;

use flash_support::*;
use migrator::flash::{
    commit_head, flash_image, DecodeMode, FlashError, FlashRequest, Placement, Progress, XzError,
    HEAD_BYTES,
};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const IMAGE_LEN: usize = 6 * 1024 * 1024 + 4321;
const OFFSET: u64 = MIB;
const EXTENT: u64 = 8 * MIB;
const TARGET_LEN: u64 = OFFSET + EXTENT + MIB;

fn placement() -> Placement {
    Placement { target_offset_bytes: OFFSET, extent_bytes: EXTENT }
}

fn ignore(_: &Progress) {}

/// One decode path: name, xz arguments, decoder threads, expected mode.
type DecodePath = (&'static str, &'static [&'static str], usize, fn(DecodeMode) -> bool);

const PATHS: [DecodePath; 3] = [
    ("single", &[], 2, |m| m == DecodeMode::XzSequential),
    ("multi-seq", &["-T2", "--block-size=1MiB"], 1, |m| m == DecodeMode::XzSequential),
    ("multi-par", &["-T2", "--block-size=1MiB"], 2, |m| matches!(m, DecodeMode::XzParallel { .. })),
];

struct Block {
    compressed_offset: u64,
    total_bytes: u64,
    check_hex: String,
}

/// Blocks as `xz --robot -lvv` lists them (the real tool, not our index reader).
fn blocks_of(path: &Path) -> Vec<Block> {
    let out = Command::new("xz").args(["--robot", "-lvv"]).arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("block\t"))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Block {
                compressed_offset: f[4].parse().unwrap(),
                total_bytes: f[6].parse().unwrap(),
                check_hex: f[10].to_string(),
            }
        })
        .collect()
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

/// Flip one bit of the stored check of block `n` (0-based), found by its value in the
/// last bytes of the block, and return nothing else changed.
fn damage_stored_check(path: &Path, n: usize) {
    let blocks = blocks_of(path);
    let block = &blocks[n];
    let stored = hex_bytes(&block.check_hex);
    assert!(!stored.is_empty(), "block {n} has no check to damage");
    let file = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let span = read_range(&file, block.compressed_offset, block.total_bytes);
    // xz prints CRCs as numbers (the file holds them little-endian) and SHA-256 as bytes.
    let reversed: Vec<u8> = stored.iter().rev().copied().collect();
    let at = span
        .windows(stored.len())
        .rposition(|w| w == stored.as_slice() || w == reversed.as_slice())
        .expect("stored check found in its block");
    assert!(
        at + stored.len() + 3 >= span.len(),
        "the check is the block's last field (padding aside)"
    );
    let offset = block.compressed_offset + at as u64;
    let mut byte = read_range(&file, offset, 1);
    byte[0] ^= 0x01;
    file.write_all_at(&byte, offset).unwrap();
}

/// `raw` compressed by xz with `--check=check` and `args`, in a fresh scratch directory.
fn compressed(name: &str, raw: &[u8], check: &str, args: &[&str]) -> (Scratch, PathBuf) {
    let scratch = Scratch::new(name);
    let image_path = scratch.path("image.xz");
    let check_arg = format!("--check={check}");
    let mut xz_args = vec![check_arg.as_str()];
    xz_args.extend_from_slice(args);
    xz(raw, &xz_args, &image_path);
    (scratch, image_path)
}

/// Flash `image_path` onto a fresh patterned target with `threads` decoders.
fn flash(
    scratch: &Scratch,
    image_path: &Path,
    threads: usize,
) -> (File, Result<migrator::flash::FlashReport, FlashError>) {
    let image = File::open(image_path).unwrap();
    let target = patterned_target(&scratch.path("target.img"), TARGET_LEN);
    let mut request = FlashRequest::new(placement());
    request.decode_threads = threads;
    let result = flash_image(&image, &target, &request, &mut ignore);
    (target, result)
}

#[test]
fn every_check_type_flashes_identically_on_every_decode_path() {
    let raw = raw_image(IMAGE_LEN);
    for check in ["crc32", "crc64", "sha256", "none"] {
        for (path_name, args, threads, mode_ok) in PATHS {
            let name = format!("chk-{check}-{path_name}");
            let (scratch, image_path) = compressed(&name, &raw, check, args);
            let (target, result) = flash(&scratch, &image_path, threads);
            let report = result.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(mode_ok(report.written.mode), "{name}: {:?}", report.written.mode);
            commit_head(&target, placement(), &report.written.head).unwrap();
            assert!(
                read_range(&target, OFFSET, raw.len() as u64) == raw,
                "{name}: flashed bytes differ from the raw image"
            );
        }
    }
}

#[test]
fn a_damaged_stored_check_stops_every_decode_path_naming_the_block() {
    let raw = raw_image(IMAGE_LEN);
    for check in ["crc32", "crc64", "sha256"] {
        for (path_name, args, threads, _) in PATHS {
            let name = format!("bad-{check}-{path_name}");
            let (scratch, image_path) = compressed(&name, &raw, check, args);
            let blocks = blocks_of(&image_path).len();
            let damaged = blocks / 2; // the only block of a single-block image
            damage_stored_check(&image_path, damaged);
            let (target, result) = flash(&scratch, &image_path, threads);
            let error = result.unwrap_err();
            match &error {
                FlashError::Xz(XzError::CheckMismatch { block, .. }) => {
                    assert_eq!(*block, damaged, "{name}: wrong block named")
                }
                other => panic!("{name}: expected a check mismatch, got {other:?}"),
            }
            let message = error.to_string();
            assert!(
                message.contains(&format!("block {damaged}")) && message.contains("re-stage"),
                "{name}: {message}"
            );
            assert!(all_pattern(&read_range(&target, OFFSET, HEAD_BYTES)), "{name}: head written");
        }
    }
}
