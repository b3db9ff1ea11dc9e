//! sha256 values: parsing them (given, or from a sha256sum listing) and computing them over files.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::FetchError;

/// The plan's sha256 type: 64 lower-case hexadecimal characters.
pub use plan::Sha256Hex;

/// Parses a sha256 given on the command line or read from a listing: 64 hex digits in either
/// case (surrounding whitespace ignored), refused as a [`FetchError`].
pub fn parse_sha256(text: &str) -> Result<Sha256Hex, FetchError> {
    Sha256Hex::parse(text).map_err(|_| FetchError::InvalidSha256 { value: text.to_owned() })
}

/// Why a sha256sum-style listing (a `.sha256` file beside the image, or the server's
/// sidecar) gave no sha256: a plain reason, which [`FetchError::BadSha256Listing`] wraps.
#[derive(Debug, thiserror::Error)]
pub enum ListingError {
    #[error("it is empty")]
    Empty,
    #[error("it lists {count} files but not {file_name:?}")]
    NotListed { count: usize, file_name: String },
    #[error("{text:?} is not a sha256 (64 hexadecimal characters)")]
    NotSha256 { text: String },
    #[error("the server answered HTTP {0}")]
    HttpStatus(u16),
    #[error("cannot read it as text: {0}")]
    Unreadable(#[source] std::io::Error),
}

/// Picks the digest for `file_name` out of a sha256sum-style listing.
///
/// Accepts a bare `HEX`, one `HEX  NAME` line (whatever the name), or several lines, of
/// which the one naming `file_name` (text or `*binary` mode) is taken. Blank lines and
/// `#` comments are skipped.
pub fn digest_from_listing(listing: &str, file_name: &str) -> Result<Sha256Hex, ListingError> {
    let entries: Vec<(&str, Option<&str>)> = listing
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| match line.split_once(char::is_whitespace) {
            Some((hex, name)) => (hex, Some(name.trim_start().trim_start_matches('*'))),
            None => (line, None),
        })
        .collect();
    let chosen = match entries.as_slice() {
        [] => return Err(ListingError::Empty),
        [only] => only.0,
        many => match many.iter().find(|(_, name)| *name == Some(file_name)) {
            Some(entry) => entry.0,
            None => {
                return Err(ListingError::NotListed {
                    count: many.len(),
                    file_name: file_name.to_owned(),
                })
            }
        },
    };
    parse_sha256(chosen).map_err(|_| ListingError::NotSha256 { text: chosen.to_owned() })
}

/// sha256 of a whole file, read from disk.
pub fn hash_file(path: &Path) -> Result<(Sha256Hex, u64), FetchError> {
    let mut file = File::open(path).map_err(|e| FetchError::io("open", path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut total: u64 = 0;
    loop {
        let count = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(count) => count,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(FetchError::io("read", path, e)),
        };
        hasher.update(&buffer[..count]);
        total += count as u64;
    }
    Ok((Sha256Hex::from_digest(&hasher.finalize()), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn accepts_upper_case_and_whitespace() {
        let parsed = parse_sha256(&format!("  {}\n", HEX.to_uppercase())).unwrap();
        assert_eq!(parsed.as_str(), HEX);
    }

    #[test]
    fn rejects_wrong_length_and_non_hex() {
        assert!(parse_sha256(&HEX[..63]).is_err());
        assert!(parse_sha256(&format!("{}g", &HEX[..63])).is_err());
        let err = parse_sha256("abc").unwrap_err();
        assert_eq!(err.to_string(), "invalid sha256 \"abc\": expected 64 hexadecimal characters");
    }

    #[test]
    fn listing_bare_hex_and_single_line() {
        assert_eq!(digest_from_listing(&format!("{HEX}\n"), "x.img").unwrap().as_str(), HEX);
        assert_eq!(
            digest_from_listing(&format!("{HEX}  other-name.img\n"), "x.img").unwrap().as_str(),
            HEX
        );
    }

    #[test]
    fn listing_picks_the_named_file_among_several() {
        let other = "0".repeat(64);
        let listing = format!("# sums\n{other}  a.img\n{HEX} *x.img\n");
        assert_eq!(digest_from_listing(&listing, "x.img").unwrap().as_str(), HEX);
        let err = digest_from_listing(&listing, "y.img").unwrap_err();
        assert!(matches!(err, ListingError::NotListed { count: 2, .. }), "{err:?}");
        assert_eq!(err.to_string(), "it lists 2 files but not \"y.img\"");
    }

    #[test]
    fn listing_errors() {
        assert_eq!(digest_from_listing("\n\n", "x").unwrap_err().to_string(), "it is empty");
        assert_eq!(
            digest_from_listing("<html>not found</html>", "x").unwrap_err().to_string(),
            "\"<html>not\" is not a sha256 (64 hexadecimal characters)"
        );
    }

    #[test]
    fn hashes_a_file_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"test").unwrap();
        let (digest, size) = hash_file(&path).unwrap();
        assert_eq!(digest.as_str(), HEX);
        assert_eq!(size, 4);
    }
}
