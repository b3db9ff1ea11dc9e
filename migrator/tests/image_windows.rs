//! `flash::window::read_windows` against the `xz` tool: windows of the decoded image, in
//! any order, across block boundaries and past the end, equal the raw image's bytes, for
//! a raw file, a single-block xz and a multi-block xz.

mod steps_support;

use std::fs::File;

use migrator::flash::window::{read_windows, Window};
use steps_support::{noise, run};

const LEN: usize = 3 * 1024 * 1024 + 12_345;

fn image() -> Vec<u8> {
    let mut raw = vec![0u8; LEN];
    // Noise with zero runs between, as a disk image has.
    for (i, start) in [0usize, 700_000, 1_900_000, 3_000_000].iter().enumerate() {
        let len = (LEN - start).min(400_000);
        raw[*start..start + len].copy_from_slice(&noise(len, 40 + i as u64));
    }
    raw
}

fn windows() -> Vec<Window> {
    let at = |offset: u64, len: usize| Window { offset, len };
    vec![
        at(2_000_000, 69_632),
        at(0, 512),
        at(65_536 - 100, 300), // across the first block boundary of the multi-block file
        at(1_900_000 - 10, 200_000),
        at(2_000_000, 10),           // again, behind where the decoder stands
        at(LEN as u64 - 1000, 5000), // past the end: shorter
        at(LEN as u64 + 10, 100),    // wholly past the end: empty
    ]
}

fn check(path: &std::path::Path, raw: &[u8]) {
    let file = File::open(path).unwrap();
    let got = read_windows(&file, &windows()).unwrap();
    for (window, bytes) in windows().iter().zip(got) {
        let start = (window.offset as usize).min(raw.len());
        let end = (start + window.len).min(raw.len());
        assert!(bytes == raw[start..end], "{}: window {window:?} differs", path.display());
    }
}

#[test]
fn windows_equal_the_raw_image_in_every_staged_form() {
    let dir = tempfile::tempdir().unwrap();
    let raw = image();
    let path = dir.path().join("image.img");
    std::fs::write(&path, &raw).unwrap();
    check(&path, &raw);
    let p = path.to_str().unwrap();
    run("xz", &["-k", "-T1", "-3", p]);
    let one = dir.path().join("one-block.img.xz");
    std::fs::rename(format!("{p}.xz"), &one).unwrap();
    check(&one, &raw);
    run("xz", &["-k", "-T2", "-3", "--block-size=65536", p]);
    let many = dir.path().join("blocks.img.xz");
    std::fs::rename(format!("{p}.xz"), &many).unwrap();
    check(&many, &raw);
}

#[test]
fn a_damaged_block_is_an_error_not_wrong_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let raw = image();
    let path = dir.path().join("image.img");
    std::fs::write(&path, &raw).unwrap();
    let p = path.to_str().unwrap();
    run("xz", &["-k", "-T2", "-3", "--block-size=65536", p]);
    let xz = format!("{p}.xz");
    let mut bytes = std::fs::read(&xz).unwrap();
    let middle = bytes.len() / 3;
    for b in &mut bytes[middle..middle + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&xz, &bytes).unwrap();
    let file = File::open(&xz).unwrap();
    let whole = [Window { offset: 0, len: LEN }];
    assert!(read_windows(&file, &whole).is_err(), "a damaged block decoded without error");
}
