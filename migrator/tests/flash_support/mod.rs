//! Shared helpers for the flash tests: real images compressed by the real `xz`.
#![allow(dead_code)]

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const MIB: u64 = 1024 * 1024;
pub const PATTERN: u8 = 0xA5;

pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("swapover-flash-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A disk-image-like byte mix: an MBR-ish first sector, incompressible runs,
/// compressible text, zero runs, and a tail that is not chunk aligned.
pub fn raw_image(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let text = b"resin-data ext4 journal block group descriptor inode table; ";
    let mut section = 0usize;
    while out.len() < len {
        let piece = (1 + section % 3) * 700 * 1024 + section * 4096;
        match section % 4 {
            0 => (0..piece).for_each(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                out.push(state as u8);
            }),
            1 => (0..piece).for_each(|i| out.push(text[(i + section) % text.len()])),
            2 => out.resize(out.len() + piece, 0),
            _ => (0..piece).for_each(|i| out.push((i / 512) as u8 ^ section as u8)),
        }
        section += 1;
    }
    out.truncate(len);
    out[510] = 0x55;
    out[511] = 0xAA;
    out
}

/// Compress with the real xz CLI; `args` e.g. `["-T2", "--block-size=1MiB"]`.
pub fn xz(raw: &[u8], args: &[&str], out: &Path) {
    let mut child = Command::new("xz")
        .args(["-c", "-6"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(File::create(out).unwrap())
        .spawn()
        .expect("xz CLI");
    child.stdin.take().unwrap().write_all(raw).unwrap();
    assert!(child.wait().unwrap().success());
}

/// A target file of `len` bytes filled with [`PATTERN`].
pub fn patterned_target(path: &Path, len: u64) -> File {
    let file =
        OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path).unwrap();
    let block = vec![PATTERN; MIB as usize];
    let mut offset = 0;
    while offset < len {
        let n = (len - offset).min(MIB) as usize;
        file.write_all_at(&block[..n], offset).unwrap();
        offset += n as u64;
    }
    file
}

pub fn read_range(file: &File, offset: u64, len: u64) -> Vec<u8> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, offset).unwrap();
    buf
}

pub fn all_pattern(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == PATTERN)
}
