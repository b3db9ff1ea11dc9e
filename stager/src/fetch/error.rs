//! Every way fetching can fail, each as one line that names the problem and the fix.

use std::path::PathBuf;

/// Why [`fetch_image`](super::fetch_image) failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot use image source {source_text:?}: give an https:// URL or the path of an image file")]
    InvalidSource { source_text: String },

    #[error("refusing plain http for {url}: use an https:// URL (plain http needs the allow-plain-http option and an explicit --sha256)")]
    PlainHttpRefused { url: String },

    #[error("plain http download of {url} needs an explicit sha256: pass --sha256")]
    PlainHttpNeedsSha256 { url: String },

    #[error("invalid sha256 {value:?}: expected 64 hexadecimal characters")]
    InvalidSha256 { value: String },

    #[error("no sha256 published for {url} (HTTP 404 on {sidecar}): pass --sha256")]
    NoPublishedSha256 { url: String, sidecar: String },

    #[error("cannot read a sha256 from {sidecar}: {detail}; pass --sha256")]
    BadSha256Listing {
        sidecar: String,
        #[source]
        detail: super::digest::ListingError,
    },

    #[error("no sha256 for {path}: pass --sha256 or put a {path}.sha256 file beside it", path = .path.display())]
    NoLocalSha256 { path: PathBuf },

    #[error("image file {path} not found: check the --image path", path = .path.display())]
    LocalNotFound { path: PathBuf },

    #[error("image {path} is not a regular file: give the path of an image file", path = .path.display())]
    LocalNotAFile { path: PathBuf },

    #[error("server has no image at {url} (HTTP 404): check the --image URL")]
    NotFound { url: String },

    #[error(
        "server refused {url} (HTTP {status}): check the --image URL and the server's access rules"
    )]
    HttpStatus { url: String, status: u16 },

    #[error("TLS certificate of {host} not trusted ({reason}): pass --ca-cert for a private CA")]
    UntrustedCertificate { host: String, reason: String },

    #[error("TLS handshake with {host} failed ({detail}): check that the server speaks HTTPS on that port")]
    Tls { host: String, detail: String },

    #[error("cannot connect to {host} ({detail}): check the network and the --image URL")]
    Connect { host: String, detail: String },

    #[error("redirect refused for {url} ({detail}): give the final https:// URL of the image")]
    Redirect { url: String, detail: String },

    #[error("transfer of {url} failed after {attempts} {noun} ({detail}): run again to resume", noun = attempt_noun(*.attempts))]
    Transfer { url: String, attempts: u32, detail: String },

    #[error("download of {url} truncated: got {received} of {expected} bytes after {attempts} {noun}; the server or network keeps cutting the transfer: run again to resume, or check the file on the server", noun = attempt_noun(*.attempts))]
    Truncated { url: String, received: u64, expected: u64, attempts: u32 },

    #[error("sha256 mismatch for {url}: expected {expected}, got {actual}; the download is corrupt or the URL is wrong")]
    Sha256Mismatch { url: String, expected: String, actual: String },

    #[error("sha256 mismatch for {path}: expected {expected}, got {actual}; the file is corrupt or the sha256 is wrong", path = .path.display())]
    LocalSha256Mismatch { path: PathBuf, expected: String, actual: String },

    #[error("cannot use CA certificate {path} ({detail}): pass a PEM file with the private CA's certificate", path = .path.display())]
    CaCert { path: PathBuf, detail: String },

    #[error(
        "cannot set up the HTTPS client ({detail}): this is a bug in the stager, please report it"
    )]
    Client { detail: String },

    #[error("not enough free space in {dir} for the image: {needed} needed ({download} still to download + {margin} margin), {free} free; free space there, or download the image to a larger file system yourself and pass its path as --image", dir = .dir.display(), needed = .needed.rounded(), download = .download.rounded(), margin = .margin.rounded(), free = .free.rounded())]
    NoRoom {
        dir: PathBuf,
        needed: plan::Bytes,
        download: plan::Bytes,
        margin: plan::Bytes,
        free: plan::Bytes,
    },

    #[error("cannot {action} {path}: {source}; check free space and permissions", path = .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn attempt_noun(attempts: u32) -> &'static str {
    if attempts == 1 {
        "attempt"
    } else {
        "attempts"
    }
}

impl FetchError {
    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        FetchError::Io { action, path: path.to_owned(), source }
    }
}
