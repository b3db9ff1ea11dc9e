//! Fetching the resinOS image over HTTPS (rustls) or from a local path, with resume and sha256.
//!
//! The one entry point is [`fetch_image`]. Its contract:
//!
//! - **HTTPS URL**: downloaded to `DEST.part`, resumed with `Range: bytes=N-` when a
//!   previous call (or an earlier attempt in this call) left a `.part` behind, verified
//!   with sha256 over the *whole* file on disk, then renamed to `DEST` (and the directory
//!   fsynced). Nothing lands at `DEST` unless its sha256 matched. A mismatch deletes the
//!   `.part`; a transfer that still falls short after the retries keeps the `.part` so the
//!   next run resumes it. If `DEST` already exists with the expected sha256, nothing is
//!   downloaded again.
//! - **sha256**: [`FetchOptions::sha256`] when given, otherwise read from `URL.sha256`
//!   (sha256sum format `HEX  NAME`, or a bare `HEX`), fetched over the same TLS-verified
//!   client as the image.
//! - **Trust**: the bundled Mozilla roots (webpki-roots, so stale CA stores on old hosts do
//!   not matter) *plus* every PEM in [`FetchOptions::ca_certs`] (`--ca-cert`). A private CA
//!   is added to, never substituted for, the public roots: a private server that
//!   redirects to a public CDN keeps working, and the sha256 check guards the content
//!   either way.
//! - **Plain http://** is refused unless [`FetchOptions::allow_plain_http`] is set, and even
//!   then only with an explicit sha256 (a `URL.sha256` fetched over plain http proves
//!   nothing). Redirects from https to http are refused the same way.
//! - **Free space**: before the first byte of a transfer is written, the `.part`'s file
//!   system must have room for what the server says is left (its `Content-Length`, or the
//!   `Content-Range` total minus the `.part`) plus a 32 MiB margin, else
//!   [`FetchError::NoRoom`] and nothing is written. A server that gives no length is not
//!   checked (a warning is logged).
//! - **Local path**: verified in place (no copy; `dest` is not used): sha256 given, or
//!   from a `PATH.sha256` file beside it, else refused.
//! - **Progress**: a progress bar when stderr is a TTY, otherwise `log::info!` lines every
//!   5 % or 10 s ([`ProgressMode`]).

pub(crate) mod client;
pub(crate) mod digest;
mod download;
mod error;
mod local;
mod outcome;
mod place;
pub(crate) mod progress;
mod range;
mod remote;
mod source;
pub(crate) mod space;

use std::path::Path;
use std::time::Duration;

pub use digest::Sha256Hex;
pub use error::FetchError;
pub use outcome::{Bytes, FetchedImage};
pub use progress::ProgressMode;
pub use source::ImageSource;

/// How [`fetch_image`] downloads and verifies.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Expected sha256 (`--sha256`). When `None`, it is read from `URL.sha256`
    /// (or `PATH.sha256` for a local image).
    pub sha256: Option<Sha256Hex>,
    /// PEM files with private CA certificates (`--ca-cert`), trusted in addition to the
    /// bundled public roots.
    pub ca_certs: Vec<std::path::PathBuf>,
    /// Allow `http://` URLs (an explicit `sha256` is still required then).
    pub allow_plain_http: bool,
    /// Failed attempts in a row that did not grow the `.part` before giving up within one
    /// call. Attempts that do grow it are free, up to 10 × (`max_retries` + 1) in all.
    pub max_retries: u32,
    /// Delay before the first retry; doubled after each failure in a row, capped at 30 s.
    pub retry_backoff: Duration,
    /// Time allowed to establish a TCP+TLS connection.
    pub connect_timeout: Duration,
    /// Time allowed for the server to answer or to send the next chunk of the body.
    pub stall_timeout: Duration,
    /// Progress display.
    pub progress: ProgressMode,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            sha256: None,
            ca_certs: Vec::new(),
            allow_plain_http: false,
            max_retries: 5,
            retry_backoff: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(60),
            progress: ProgressMode::Auto,
        }
    }
}

/// Fetches (or, for a local path, checks) the image and returns where the verified image is.
///
/// For a URL the verified image ends up at `dest` (the download goes through
/// `dest` + `.part`; `dest`'s directory must exist). For a local path `dest` is unused and
/// the returned path is the local file itself.
pub fn fetch_image(
    src: &ImageSource,
    dest: &Path,
    opts: &FetchOptions,
) -> Result<FetchedImage, FetchError> {
    match src {
        ImageSource::Url(url) => remote::fetch_url(url, dest, opts),
        ImageSource::Path(path) => local::check_local(path, opts),
    }
}

/// The temporary file a download of `dest` goes to: `dest` with `.part` appended.
pub fn part_path(dest: &Path) -> std::path::PathBuf {
    with_suffix(dest, ".part")
}

fn with_suffix(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    std::path::PathBuf::from(name)
}

/// The directory `path` is in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}
