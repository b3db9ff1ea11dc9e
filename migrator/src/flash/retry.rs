//! Which write and fsync errors a flash retries, how often, and how long it waits.
//!
//! A transient error (EIO, EBUSY, a timeout: a flaky cable, a controller reset, a
//! medium that remaps a sector) may go away, so the write pass is run again, a bounded
//! number of times. A full or too short target (ENOSPC, EFBIG, a write that makes no
//! progress past the device's end) never goes away: it fails at once.
//!
//! A retry rewrites every image byte from the last *successful* fsync on, never just
//! the failed call: after a failed fsync Linux marks the pages clean, so a second
//! fsync reports success for data that never reached the disk. Decoding a pass again
//! from the image's start is how a resumed flash works anyway (see `flash`).

use std::io;
use std::time::Duration;

/// How many times a flash pass is run again after a transient write or fsync error.
pub const WRITE_RETRIES: u32 = 3;

/// Pause before each retry, so a device that is resetting has time to come back.
pub const WRITE_RETRY_DELAY: Duration = Duration::from_secs(2);

/// What a failed write or fsync means for the flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// May go away: retry.
    Transient,
    /// The target is full or ends before the write: fail at once.
    NoSpace,
    /// Anything else (read-only device, bad descriptor, ...): fail at once.
    Permanent,
}

pub fn classify(error: &io::Error) -> Fault {
    use nix::errno::Errno;
    if error.kind() == io::ErrorKind::WriteZero {
        return Fault::NoSpace;
    }
    match error.raw_os_error().map(Errno::from_raw) {
        Some(Errno::ENOSPC | Errno::EFBIG | Errno::EDQUOT) => Fault::NoSpace,
        Some(
            Errno::EIO
            | Errno::EAGAIN
            | Errno::EBUSY
            | Errno::ETIMEDOUT
            | Errno::EINTR
            | Errno::ENOMEM
            | Errno::ENOLINK,
        ) => Fault::Transient,
        _ => Fault::Permanent,
    }
}

/// The errno's name (`EIO`), or the error kind when the error has no errno.
pub fn errno_name(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => format!("{:?}", nix::errno::Errno::from_raw(code)),
        None => format!("{:?}", error.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_errnos() {
        let os = io::Error::from_raw_os_error;
        assert_eq!(classify(&os(libc_eio())), Fault::Transient);
        assert_eq!(classify(&os(nix::errno::Errno::ENOSPC as i32)), Fault::NoSpace);
        assert_eq!(classify(&os(nix::errno::Errno::EROFS as i32)), Fault::Permanent);
        assert_eq!(classify(&io::Error::from(io::ErrorKind::WriteZero)), Fault::NoSpace);
        assert_eq!(errno_name(&os(libc_eio())), "EIO");
        assert_eq!(errno_name(&io::Error::from(io::ErrorKind::WriteZero)), "WriteZero");
    }

    fn libc_eio() -> i32 {
        nix::errno::Errno::EIO as i32
    }
}
