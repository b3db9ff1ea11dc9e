//! Room for a download: refuse before the first byte is written when the destination's file
//! system cannot hold the rest of the image plus a margin.
//!
//! Free space is `f_bavail × f_frsize` from statvfs: the blocks an unprivileged process may
//! still use. The stager runs as root and could eat into the blocks ext4 reserves for root
//! (`f_bfree`), but the download directory is on the running system's root file system, and
//! that reserve is what keeps the host's own root services alive; the download must not
//! take it.

use std::path::Path;

use plan::Bytes;

use super::FetchError;

/// Left free beyond the image: file system metadata for the new blocks, and room for the
/// running system's own writes (logs, the stager's state) while the download lands.
pub const MARGIN: Bytes = Bytes(32 * 1024 * 1024);

/// What a download still has to write and what it keeps free besides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    /// Bytes of the image still to land on disk (all of it, or the rest after a `.part`).
    pub download: Bytes,
    pub margin: Bytes,
}

impl Need {
    pub fn for_download(download: Bytes) -> Need {
        Need { download, margin: MARGIN }
    }

    pub fn total(self) -> Bytes {
        self.download.saturating_add(self.margin)
    }
}

/// Refuses when `free` is less than what `need` asks for; pure, so it is tested on numbers.
/// Nothing left to download needs no room.
pub fn check_room(dir: &Path, need: Need, free: Bytes) -> Result<(), FetchError> {
    if need.download == Bytes(0) || free >= need.total() {
        return Ok(());
    }
    Err(FetchError::NoRoom {
        dir: dir.to_owned(),
        needed: need.total(),
        download: need.download,
        margin: need.margin,
        free,
    })
}

/// Space an unprivileged process may still use on the file system holding `dir`.
// fsblkcnt_t and c_ulong are u64 on x86_64 but narrower on 32-bit targets.
#[allow(clippy::useless_conversion)]
pub fn free_space(dir: &Path) -> Result<Bytes, FetchError> {
    let stats = nix::sys::statvfs::statvfs(dir)
        .map_err(|errno| FetchError::io("read the free space of", dir, errno.into()))?;
    let available = u64::from(stats.blocks_available());
    let fragment = u64::from(stats.fragment_size());
    Ok(Bytes(available.saturating_mul(fragment)))
}

/// Checks that the file system of `dir` has room for `download` more bytes plus [`MARGIN`].
/// `None` (the server sent no length) cannot be checked: it is skipped with a warning, and
/// a full disk then shows as a failed write.
pub fn ensure_room(dir: &Path, download: Option<Bytes>) -> Result<(), FetchError> {
    let Some(download) = download else {
        log::warn!(
            "the server did not say how large the image is; cannot check the free space in {} before downloading",
            dir.display()
        );
        return Ok(());
    };
    let free = free_space(dir)?;
    check_room(dir, Need::for_download(download), free)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_exactly_with_the_margin() {
        let need = Need::for_download(Bytes::from_mib(800).unwrap());
        assert_eq!(need.total(), Bytes::from_mib(832).unwrap());
        assert!(check_room(Path::new("/d"), need, Bytes::from_mib(832).unwrap()).is_ok());
    }

    #[test]
    fn one_byte_short_is_refused() {
        let need = Need::for_download(Bytes::from_mib(800).unwrap());
        let free = Bytes(Bytes::from_mib(832).unwrap().get() - 1);
        assert!(matches!(check_room(Path::new("/d"), need, free), Err(FetchError::NoRoom { .. })));
    }

    #[test]
    fn the_refusal_is_one_line_with_the_sizes_and_the_fix() {
        let need = Need::for_download(Bytes::from_mib(800).unwrap());
        let error = check_room(
            Path::new("/var/lib/swapover/download"),
            need,
            Bytes::from_mib(300).unwrap(),
        )
        .unwrap_err();
        let text = error.to_string();
        assert_eq!(
            text,
            "not enough free space in /var/lib/swapover/download for the image: 832.0 MiB needed \
             (800.0 MiB still to download + 32.0 MiB margin), 300.0 MiB free; free space there, \
             or download the image to a larger file system yourself and pass its path as --image"
        );
        assert!(!text.contains('\n'));
    }

    #[test]
    fn nothing_left_to_download_needs_no_room() {
        let need = Need::for_download(Bytes(0));
        assert!(check_room(Path::new("/d"), need, Bytes(0)).is_ok());
        let need = Need::for_download(Bytes(1));
        assert!(check_room(Path::new("/d"), need, Bytes::from_mib(32).unwrap()).is_err());
    }

    #[test]
    fn an_unknown_length_is_not_checked() {
        // A directory that does not exist would make statvfs fail: the check must not run.
        assert!(ensure_room(Path::new("/nonexistent/swapover-test"), None).is_ok());
    }

    #[test]
    fn free_space_of_a_missing_directory_is_an_error() {
        let error = free_space(Path::new("/nonexistent/swapover-test")).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/swapover-test"), "{error}");
    }
}
