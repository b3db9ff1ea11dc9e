//! Helpers shared by the fuzz targets: a per-process scratch directory for the
//! parsers that only read from paths, and input splitting.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A directory private to this fuzzing process (on tmpfs when there is one, so
/// the per-iteration file writes and fsyncs stay cheap). Created once.
pub fn scratch_dir(target: &str) -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let dir = base.join(format!("swapover-fuzz-{target}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("fuzz scratch directory");
        dir
    })
}

/// Empty `dir` (or create it) so that one iteration never sees the previous one's files.
pub fn fresh_dir(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("cannot clear fuzz scratch {}: {e}", dir.display()),
    }
    std::fs::create_dir_all(dir).expect("fuzz scratch subdirectory");
}

/// Splits the input at the first `0xff` byte into two parts (the second empty when
/// there is none): how targets that need two inputs take them from one byte string.
pub fn split_two(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}
