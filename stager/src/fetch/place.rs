//! The commit point of a download: verify the whole `.part` on disk, then rename it into place.

use std::fs::File;
use std::path::Path;

use super::digest::hash_file;
use super::{parent_dir, Bytes, FetchError, FetchedImage, Sha256Hex};

/// Hashes `part` from disk; on a match renames it to `dest` and fsyncs both, on a
/// mismatch deletes it. `url` names the download in the error.
pub fn verify_and_place(
    part: &Path,
    dest: &Path,
    expected: &Sha256Hex,
    url: &str,
) -> Result<FetchedImage, FetchError> {
    log::info!("verifying sha256 of {}", part.display());
    let (actual, size) = hash_file(part)?;
    if actual != *expected {
        if let Err(error) = std::fs::remove_file(part) {
            log::warn!("cannot delete the corrupt download {}: {error}", part.display());
        }
        return Err(FetchError::Sha256Mismatch {
            url: url.to_owned(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    sync_file(part)?;
    std::fs::rename(part, dest).map_err(|e| FetchError::io("rename into place", dest, e))?;
    sync_parent_dir(dest)?;
    log::info!("image {} verified (sha256 {actual})", dest.display());
    Ok(FetchedImage { path: dest.to_owned(), size: Bytes(size), sha256: actual })
}

fn sync_file(path: &Path) -> Result<(), FetchError> {
    File::open(path).and_then(|file| file.sync_all()).map_err(|e| FetchError::io("fsync", path, e))
}

fn sync_parent_dir(path: &Path) -> Result<(), FetchError> {
    sync_file(parent_dir(path))
}
