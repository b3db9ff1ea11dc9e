//! How much a backup path will take in a tar archive: a walk of the tree, never following
//! symlinks, counting each entry's header and its content rounded up to tar's 512 bytes.

use super::refusal::RefusalText;
use plan::Bytes;
use std::path::Path;

const TAR_BLOCK: u64 = 512;

#[derive(Debug, thiserror::Error)]
#[error("{}", self.text())]
pub enum EstimateError {
    Missing { path: std::path::PathBuf },
    NotAbsolute { path: std::path::PathBuf },
    Walk { path: std::path::PathBuf, source: std::io::Error },
}

impl EstimateError {
    /// What is wrong with a backup path and what to do about it, kept apart.
    pub fn text(&self) -> RefusalText {
        match self {
            EstimateError::Missing { path } => RefusalText::new(
                format!("backup path {} does not exist on this host", path.display()),
                "fix the --backup argument".into(),
            ),
            EstimateError::NotAbsolute { path } => RefusalText::new(
                format!("backup path {} must be absolute", path.display()),
                "pass it as /full/path".into(),
            ),
            EstimateError::Walk { path, source } => RefusalText::new(
                format!("cannot walk backup path {}: {source}", path.display()),
                "check its permissions".into(),
            ),
        }
    }
}

/// Estimate for `on_disk` (the host path under the host root); `shown` names it in errors.
pub fn estimate(on_disk: &Path, shown: &Path) -> Result<Bytes, EstimateError> {
    if !shown.is_absolute() {
        return Err(EstimateError::NotAbsolute { path: shown.to_path_buf() });
    }
    if std::fs::symlink_metadata(on_disk).is_err() {
        return Err(EstimateError::Missing { path: shown.to_path_buf() });
    }
    walk(on_disk)
        .map(Bytes)
        .map_err(|source| EstimateError::Walk { path: shown.to_path_buf(), source })
}

fn walk(path: &Path) -> std::io::Result<u64> {
    let meta = std::fs::symlink_metadata(path)?;
    let mut total = TAR_BLOCK;
    if meta.is_file() {
        total += meta.len().div_ceil(TAR_BLOCK) * TAR_BLOCK;
    } else if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            total += walk(&entry?.path())?;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_headers_and_padded_contents() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/a"), vec![1u8; 513]).unwrap();
        std::fs::write(dir.path().join("b"), b"").unwrap();
        // root dir + d + a (1024 content) + b
        assert_eq!(estimate(dir.path(), Path::new("/x")).unwrap(), Bytes(4 * 512 + 1024));
        assert!(matches!(
            estimate(&dir.path().join("nope"), Path::new("/nope")),
            Err(EstimateError::Missing { .. })
        ));
        assert!(matches!(
            estimate(dir.path(), Path::new("rel")),
            Err(EstimateError::NotAbsolute { .. })
        ));
    }
}
