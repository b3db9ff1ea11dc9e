//! The payload disk: how a test runs its own commands on the legacy host. An ext4 file
//! system without a partition table, labelled `SWAPOVER-PAYLOAD`, holding `run.sh` and
//! whatever files the test adds (the stager binary, an image, a config.json). The host's
//! boot hook mounts it read-only at `/run/payload` and runs `run.sh` from there.

use crate::disk;
use crate::paths;
use anyhow::Result;
use std::path::{Path, PathBuf};

pub const LABEL: &str = "SWAPOVER-PAYLOAD";

/// Files for a payload disk, collected before it is built.
pub struct Payload {
    dir: PathBuf,
}

impl Payload {
    /// Starts a payload named `name` with its `run.sh`.
    pub fn new(name: &str, run_sh: &str) -> Result<Payload> {
        let dir = paths::artifacts_dir().join("runs").join(format!("{name}-payload"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        let p = Payload { dir };
        p.add_bytes("run.sh", run_sh.as_bytes(), 0o755)?;
        Ok(p)
    }

    pub fn add_bytes(&self, rel: &str, data: &[u8], mode: u32) -> Result<&Self> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.join(rel);
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(&path, data)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        Ok(self)
    }

    pub fn add_file(&self, rel: &str, src: &Path, mode: u32) -> Result<&Self> {
        let data = std::fs::read(src)?;
        self.add_bytes(rel, &data, mode)
    }

    /// Builds the disk image (sized to fit the files) and returns its path.
    pub fn build(&self) -> Result<PathBuf> {
        let mut bytes: u64 = 0;
        for entry in walk(&self.dir)? {
            bytes += std::fs::metadata(entry)?.len();
        }
        let size = (bytes + bytes / 4 + (32 << 20)).next_multiple_of(1 << 20);
        let image = self.dir.with_extension("img");
        disk::mkfs_ext4(
            &image,
            size,
            LABEL,
            "d6e5f4a3-0000-4000-8000-00000000a11d",
            &self.dir,
            "",
        )?;
        Ok(image)
    }
}

fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            out.extend(walk(&e.path())?);
        } else {
            out.push(e.path());
        }
    }
    Ok(out)
}
