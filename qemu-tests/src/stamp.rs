//! Rebuild an artifact only when its inputs change: a fingerprint of the inputs is kept
//! next to the artifact, and a build runs only when it differs (or the artifact is gone).

use anyhow::Result;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Collects everything an artifact depends on.
#[derive(Default)]
pub struct Fingerprint(Sha256);

impl Fingerprint {
    pub fn new(recipe: &str) -> Self {
        let mut f = Fingerprint(Sha256::new());
        f.text(recipe);
        f
    }
    pub fn text(&mut self, s: &str) -> &mut Self {
        self.0.update((s.len() as u64).to_le_bytes());
        self.0.update(s.as_bytes());
        self
    }
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.update((b.len() as u64).to_le_bytes());
        self.0.update(b);
        self
    }
    /// A file's contents (by size + mtime for large files would be weaker; inputs here are small
    /// enough to hash, except the kernel, which is keyed by its version string instead).
    pub fn file(&mut self, path: &Path) -> Result<&mut Self> {
        let data = std::fs::read(path)?;
        self.text(&path.display().to_string());
        Ok(self.bytes(&data))
    }
    pub fn hex(&self) -> String {
        hex(&self.0.clone().finalize())
    }
}

/// The sha256 of a file's contents, read in 1 MiB pieces.
pub fn file_sha256(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut hasher = Sha256::new();
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().to_vec())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn stamp_path(artifact: &Path) -> PathBuf {
    let mut name = artifact.file_name().unwrap_or_default().to_os_string();
    name.push(".stamp");
    artifact.with_file_name(name)
}

/// True when `artifact` exists and was built from inputs with this fingerprint.
pub fn is_fresh(artifact: &Path, fp: &Fingerprint) -> bool {
    artifact.exists()
        && std::fs::read_to_string(stamp_path(artifact)).is_ok_and(|s| s.trim() == fp.hex())
}

/// Records that `artifact` now matches `fp`.
pub fn mark_fresh(artifact: &Path, fp: &Fingerprint) -> Result<()> {
    std::fs::write(stamp_path(artifact), fp.hex())?;
    Ok(())
}

/// Runs `build` unless `artifact` was built from inputs with this fingerprint and the files
/// `also` (what the same build writes beside it) exist; then marks it fresh and says how long
/// the build of `what` took.
pub fn build_if_stale(
    artifact: &Path,
    fp: &Fingerprint,
    also: &[&Path],
    what: &str,
    build: impl FnOnce() -> Result<()>,
) -> Result<()> {
    if is_fresh(artifact, fp) && also.iter().all(|p| p.exists()) {
        return Ok(());
    }
    let started = std::time::Instant::now();
    build()?;
    mark_fresh(artifact, fp)?;
    eprintln!("[harness] built {what} in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
