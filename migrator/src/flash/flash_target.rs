//! What an image is flashed onto: the [`FlashTarget`] trait, and its implementation for
//! a plain [`std::fs::File`] (a regular file or a block device). A leaf: the engine's
//! writers and [`super::direct::DirectTarget`] build on it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Something an image can be flashed onto: a regular file or a block device.
///
/// Positional I/O (`pread`/`pwrite`) so parallel decoders can write their blocks
/// without sharing a file position. Implemented for [`std::fs::File`], opened
/// read + write (e.g. `OpenOptions::new().read(true).write(true).open("/dev/sda")`).
pub trait FlashTarget: Sync {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Make everything written so far durable (fdatasync).
    fn sync(&self) -> io::Result<()>;
    /// Forget cached copies of a range (after a sync) so the next read comes from the medium.
    fn drop_cache(&self, offset: u64, len: u64) -> io::Result<()>;
    /// How error messages name the target (e.g. `/dev/sda`).
    fn name(&self) -> String {
        "the flash target".to_string()
    }
}

impl FlashTarget for File {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }

    fn sync(&self) -> io::Result<()> {
        self.sync_data()
    }

    #[cfg(target_pointer_width = "64")]
    fn drop_cache(&self, offset: u64, len: u64) -> io::Result<()> {
        use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
        let offset = i64::try_from(offset).map_err(io::Error::other)?;
        let len = i64::try_from(len).map_err(io::Error::other)?;
        posix_fadvise(self, offset, len, PosixFadviseAdvice::POSIX_FADV_DONTNEED)
            .map_err(io::Error::from)
    }

    /// 32-bit ARM glibc: `off_t` (and so nix's `posix_fadvise`) is 32 bits there, too small
    /// for offsets past 2 GiB of an SD card or eMMC; `posix_fadvise64` takes an `off64_t`.
    #[cfg(target_pointer_width = "32")]
    fn drop_cache(&self, offset: u64, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let offset = libc::off64_t::try_from(offset).map_err(io::Error::other)?;
        let len = libc::off64_t::try_from(len).map_err(io::Error::other)?;
        // SAFETY: plain integers and a descriptor `self` keeps open for the call.
        let code = unsafe {
            libc::posix_fadvise64(self.as_raw_fd(), offset, len, libc::POSIX_FADV_DONTNEED)
        };
        match code {
            0 => Ok(()),
            errno => Err(io::Error::from_raw_os_error(errno)),
        }
    }

    /// The path the descriptor was opened as (`/proc/self/fd`), e.g. `/dev/sda`.
    fn name(&self) -> String {
        use std::os::fd::AsRawFd;
        std::fs::read_link(format!("/proc/self/fd/{}", self.as_raw_fd()))
            .map(|path| path.display().to_string())
            .unwrap_or_else(|_| "the flash target".to_string())
    }
}
