//! Shared helpers for the step tests: real tools, real trees, tree comparison.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// Run a tool and insist that it succeeds; returns its stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run a tool with stdin.
pub fn run_with_input(program: &str, args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Deterministic pseudo-random bytes (xorshift), incompressible enough for tests.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn set_mtime(path: &Path, secs: i64) {
    let tv = nix::sys::time::TimeVal::new(secs, 0);
    nix::sys::stat::lutimes(path, &tv, &tv).unwrap();
}

/// Everything that must survive a backup and restore, per relative path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub content: String,
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

/// Describe a tree: relative path → node; hard links show as `link-group:<first path>`.
pub fn describe(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), PathBuf> = BTreeMap::new();
    walk(root, root, &mut out, &mut inodes);
    out
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<PathBuf, Node>,
    inodes: &mut BTreeMap<(u64, u64), PathBuf>,
) {
    let mut names: Vec<_> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let rel = path.strip_prefix(root).unwrap().to_path_buf();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let ft = meta.file_type();
        let (kind, content) = if ft.is_dir() {
            ("dir", String::new())
        } else if ft.is_symlink() {
            ("symlink", std::fs::read_link(&path).unwrap().to_string_lossy().into_owned())
        } else if ft.is_fifo() {
            ("fifo", String::new())
        } else {
            let digest: String = Sha256::digest(std::fs::read(&path).unwrap())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let group = if meta.nlink() > 1 {
                let first = inodes.entry((meta.dev(), meta.ino())).or_insert_with(|| rel.clone());
                format!(" link-group:{}", first.display())
            } else {
                String::new()
            };
            ("file", format!("{digest}{group}"))
        };
        let xattrs = if ft.is_symlink() {
            BTreeMap::new()
        } else {
            xattr::list(&path)
                .map(|names| {
                    names
                        .filter_map(|n| {
                            Some((n.to_string_lossy().into_owned(), xattr::get(&path, &n).ok()??))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        out.insert(
            rel,
            Node {
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                mtime: meta.mtime(),
                content,
                xattrs,
            },
        );
        if ft.is_dir() {
            walk(root, &path, out, inodes);
        }
    }
}
