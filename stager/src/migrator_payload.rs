//! The migrator binary the stager carries: appended to the stager's own executable as
//! `[migrator bytes][u64 LE length][32-byte sha256][8-byte magic "SWAPMIGR"]`
//! (`scripts/package-stager.sh` appends it). The sha256 is checked before use;
//! `--migrator PATH` gives a separate file instead (for tests and development).

use plan::RefusalText;
use sha2::{Digest, Sha256};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub const MAGIC: &[u8; 8] = b"SWAPMIGR";
pub const TRAILER_BYTES: u64 = 8 + 32 + 8;

/// Why the migrator cannot be had; [`PayloadError::text`] gives the problem and the fix
/// apart, the one line joins them.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.text())]
pub enum PayloadError {
    Io { path: PathBuf, source: std::io::Error },
    Missing { path: PathBuf },
    Corrupt { path: PathBuf, expected: String, actual: String },
    BadLength { path: PathBuf, length: u64 },
}

impl PayloadError {
    /// What is wrong and, where there is one, what to do about it, kept apart.
    pub fn text(&self) -> RefusalText {
        const AGAIN: &str = "download the stager again";
        match self {
            PayloadError::Io { path, source } => {
                RefusalText::problem_only(format!("cannot read {}: {source}", path.display()))
            }
            PayloadError::Missing { path } => RefusalText::new(
                format!("this stager carries no migrator (no SWAPMIGR trailer in {})", path.display()),
                "use the packaged stager from scripts/package-stager.sh or pass --migrator PATH".into(),
            ),
            PayloadError::Corrupt { path, expected, actual } => RefusalText::new(
                format!(
                    "the migrator carried in {} is corrupt (sha256 {actual}, trailer says {expected})",
                    path.display()
                ),
                AGAIN.into(),
            ),
            PayloadError::BadLength { path, length } => RefusalText::new(
                format!(
                    "the migrator trailer in {} claims {length} bytes, more than the file holds",
                    path.display()
                ),
                AGAIN.into(),
            ),
        }
    }
}

/// The trailer for `migrator`: what the packaging script appends after it.
pub fn trailer(migrator: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(TRAILER_BYTES as usize);
    out.extend_from_slice(&(migrator.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(migrator));
    out.extend_from_slice(MAGIC);
    out
}

/// The migrator appended to the executable at `path` (normally `/proc/self/exe`), verified.
pub fn read_appended(path: &Path) -> Result<Vec<u8>, PayloadError> {
    let io = |source| PayloadError::Io { path: path.to_path_buf(), source };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let size = file.seek(SeekFrom::End(0)).map_err(io)?;
    if size < TRAILER_BYTES {
        return Err(PayloadError::Missing { path: path.to_path_buf() });
    }
    let mut tail = [0u8; TRAILER_BYTES as usize];
    file.seek(SeekFrom::Start(size - TRAILER_BYTES)).map_err(io)?;
    file.read_exact(&mut tail).map_err(io)?;
    if &tail[40..48] != MAGIC {
        return Err(PayloadError::Missing { path: path.to_path_buf() });
    }
    let mut length = [0u8; 8];
    length.copy_from_slice(&tail[..8]);
    let length = u64::from_le_bytes(length);
    if length > size - TRAILER_BYTES {
        return Err(PayloadError::BadLength { path: path.to_path_buf(), length });
    }
    let mut bytes =
        vec![
            0u8;
            usize::try_from(length)
                .map_err(|_| PayloadError::BadLength { path: path.to_path_buf(), length })?
        ];
    file.seek(SeekFrom::Start(size - TRAILER_BYTES - length)).map_err(io)?;
    file.read_exact(&mut bytes).map_err(io)?;
    let actual = hex::encode(Sha256::digest(&bytes));
    let expected = hex::encode(&tail[8..40]);
    if actual != expected {
        return Err(PayloadError::Corrupt { path: path.to_path_buf(), expected, actual });
    }
    Ok(bytes)
}

/// The migrator: `--migrator PATH` when given, else the one appended to this executable.
pub fn load(override_path: Option<&Path>) -> Result<Vec<u8>, PayloadError> {
    match override_path {
        Some(path) => std::fs::read(path)
            .map_err(|source| PayloadError::Io { path: path.to_path_buf(), source }),
        None => read_appended(Path::new("/proc/self/exe")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn round_trip_and_corruption() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let migrator = b"\x7fELF pretend migrator".to_vec();
        file.write_all(b"stager executable bytes").unwrap();
        file.write_all(&migrator).unwrap();
        file.write_all(&trailer(&migrator)).unwrap();
        file.flush().unwrap();
        assert_eq!(read_appended(file.path()).unwrap(), migrator);

        let mut bytes = std::fs::read(file.path()).unwrap();
        let at = bytes.len() - TRAILER_BYTES as usize - 3;
        bytes[at] ^= 1;
        std::fs::write(file.path(), &bytes).unwrap();
        assert!(matches!(read_appended(file.path()), Err(PayloadError::Corrupt { .. })));

        std::fs::write(
            file.path(),
            b"plain binary without a trailer, long enough to look at its end",
        )
        .unwrap();
        assert!(matches!(read_appended(file.path()), Err(PayloadError::Missing { .. })));
    }

    #[test]
    fn a_payload_error_gives_its_problem_and_fix_apart_and_prints_them_as_before() {
        let e = PayloadError::BadLength { path: PathBuf::from("/usr/bin/stager"), length: 9 };
        let text = e.text();
        assert_eq!(
            text.problem,
            "the migrator trailer in /usr/bin/stager claims 9 bytes, more than the file holds"
        );
        assert_eq!(text.fix.as_deref(), Some("download the stager again"));
        assert_eq!(
            e.to_string(),
            "the migrator trailer in /usr/bin/stager claims 9 bytes, more than the file holds; download the stager again"
        );
    }

    #[test]
    fn an_unreadable_migrator_names_no_fake_fix() {
        let source = std::io::Error::other("stale handle; remount");
        let e = PayloadError::Io { path: PathBuf::from("/m"), source };
        // Split at its last "; ", this line would have offered "remount" as the fix.
        assert_eq!(e.text().fix, None);
        assert_eq!(e.to_string(), "cannot read /m: stale handle; remount");
    }
}
