//! How much a backup path will take in a tar archive: a walk of the tree, never following
//! symlinks, counting each entry's header and its content rounded up to tar's 512 bytes.

use plan::Bytes;
use std::path::Path;

const TAR_BLOCK: u64 = 512;

#[derive(Debug, thiserror::Error)]
pub enum EstimateError {
    #[error("backup path {path} does not exist on this host; fix the --backup argument", path = .path.display())]
    Missing { path: std::path::PathBuf },
    #[error("backup path {path} must be absolute; pass it as /full/path", path = .path.display())]
    NotAbsolute { path: std::path::PathBuf },
    #[error("cannot walk backup path {path}: {source}; check its permissions", path = .path.display())]
    Walk { path: std::path::PathBuf, source: std::io::Error },
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
