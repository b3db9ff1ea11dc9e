//! A local image file: checked in place against the given sha256 or a `PATH.sha256` beside it.

use std::path::Path;

use super::digest::{digest_from_listing, hash_file};
use super::{with_suffix, Bytes, FetchError, FetchOptions, FetchedImage, Sha256Hex};

pub fn check_local(path: &Path, opts: &FetchOptions) -> Result<FetchedImage, FetchError> {
    let metadata = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => FetchError::LocalNotFound { path: path.to_owned() },
        _ => FetchError::io("read", path, e),
    })?;
    if !metadata.is_file() {
        return Err(FetchError::LocalNotAFile { path: path.to_owned() });
    }
    let expected = match &opts.sha256 {
        Some(given) => given.clone(),
        None => sidecar_digest(path)?,
    };
    log::info!("verifying sha256 of {}", path.display());
    let (actual, size) = hash_file(path)?;
    if actual != expected {
        return Err(FetchError::LocalSha256Mismatch {
            path: path.to_owned(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    log::info!("image {} verified (sha256 {actual})", path.display());
    Ok(FetchedImage { path: path.to_owned(), size: Bytes(size), sha256: actual })
}

fn sidecar_digest(path: &Path) -> Result<Sha256Hex, FetchError> {
    let sidecar = with_suffix(path, ".sha256");
    let listing = match std::fs::read_to_string(&sidecar) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(FetchError::NoLocalSha256 { path: path.to_owned() })
        }
        Err(e) => return Err(FetchError::io("read", &sidecar, e)),
    };
    let file_name =
        path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    digest_from_listing(&listing, &file_name).map_err(|detail| FetchError::BadSha256Listing {
        sidecar: sidecar.display().to_string(),
        detail,
    })
}
