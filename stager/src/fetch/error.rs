//! Every way fetching can fail, each as one line that names the problem and the fix;
//! [`FetchError::text`] gives the two apart where the line joins them with "; ".

use plan::RefusalText;
use std::path::PathBuf;

/// Why [`fetch_image`](super::fetch_image) failed; [`FetchError::text`] gives the problem and
/// the fix apart, the one line joins them.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.text())]
pub enum FetchError {
    InvalidSource {
        source_text: String,
    },
    PlainHttpRefused {
        url: String,
    },
    PlainHttpNeedsSha256 {
        url: String,
    },
    InvalidSha256 {
        value: String,
    },
    NoPublishedSha256 {
        url: String,
        sidecar: String,
    },
    BadSha256Listing {
        sidecar: String,
        #[source]
        detail: super::digest::ListingError,
    },
    NoLocalSha256 {
        path: PathBuf,
    },
    LocalNotFound {
        path: PathBuf,
    },
    LocalNotAFile {
        path: PathBuf,
    },
    NotFound {
        url: String,
    },
    HttpStatus {
        url: String,
        status: u16,
    },
    UntrustedCertificate {
        host: String,
        reason: String,
    },
    Tls {
        host: String,
        detail: String,
    },
    Connect {
        host: String,
        detail: String,
    },
    Redirect {
        url: String,
        detail: String,
    },
    Transfer {
        url: String,
        attempts: u32,
        detail: String,
    },
    Truncated {
        url: String,
        received: u64,
        expected: u64,
        attempts: u32,
    },
    Sha256Mismatch {
        url: String,
        expected: String,
        actual: String,
    },
    LocalSha256Mismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    CaCert {
        path: PathBuf,
        detail: String,
    },
    Client {
        detail: String,
    },
    NoRoom {
        dir: PathBuf,
        needed: plan::Bytes,
        download: plan::Bytes,
        margin: plan::Bytes,
        free: plan::Bytes,
    },
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl FetchError {
    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        FetchError::Io { action, path: path.to_owned(), source }
    }

    /// What is wrong and, where the line joins one with "; ", what to do about it, kept
    /// apart. Most of these lines name their fix after a colon ("...: pass --sha256"); they
    /// stay one problem with no separate fix, so `check` and the one line read as before.
    /// A tail that diagnoses ("the download is corrupt or the URL is wrong") is no fix.
    pub fn text(&self) -> RefusalText {
        let problem = RefusalText::problem_only;
        let new = |problem: String, fix: &str| RefusalText::new(problem, fix.into());
        match self {
            FetchError::InvalidSource { source_text } => problem(format!(
                "cannot use image source {source_text:?}: give an https:// URL or the path of an image file"
            )),
            FetchError::PlainHttpRefused { url } => problem(format!(
                "refusing plain http for {url}: use an https:// URL (plain http needs the allow-plain-http option and an explicit --sha256)"
            )),
            FetchError::PlainHttpNeedsSha256 { url } => problem(format!(
                "plain http download of {url} needs an explicit sha256: pass --sha256"
            )),
            FetchError::InvalidSha256 { value } => {
                problem(format!("invalid sha256 {value:?}: expected 64 hexadecimal characters"))
            }
            FetchError::NoPublishedSha256 { url, sidecar } => problem(format!(
                "no sha256 published for {url} (HTTP 404 on {sidecar}): pass --sha256"
            )),
            FetchError::BadSha256Listing { sidecar, detail } => {
                new(format!("cannot read a sha256 from {sidecar}: {detail}"), "pass --sha256")
            }
            FetchError::NoLocalSha256 { path } => problem(format!(
                "no sha256 for {path}: pass --sha256 or put a {path}.sha256 file beside it",
                path = path.display()
            )),
            FetchError::LocalNotFound { path } => problem(format!(
                "image file {} not found: check the --image path",
                path.display()
            )),
            FetchError::LocalNotAFile { path } => problem(format!(
                "image {} is not a regular file: give the path of an image file",
                path.display()
            )),
            FetchError::NotFound { url } => {
                problem(format!("server has no image at {url} (HTTP 404): check the --image URL"))
            }
            FetchError::HttpStatus { url, status } => problem(format!(
                "server refused {url} (HTTP {status}): check the --image URL and the server's access rules"
            )),
            FetchError::UntrustedCertificate { host, reason } => problem(format!(
                "TLS certificate of {host} not trusted ({reason}): pass --ca-cert for a private CA"
            )),
            FetchError::Tls { host, detail } => problem(format!(
                "TLS handshake with {host} failed ({detail}): check that the server speaks HTTPS on that port"
            )),
            FetchError::Connect { host, detail } => problem(format!(
                "cannot connect to {host} ({detail}): check the network and the --image URL"
            )),
            FetchError::Redirect { url, detail } => problem(format!(
                "redirect refused for {url} ({detail}): give the final https:// URL of the image"
            )),
            FetchError::Transfer { url, attempts, detail } => problem(format!(
                "transfer of {url} failed after {attempts} {} ({detail}): run again to resume",
                attempt_noun(*attempts)
            )),
            // The fix begins with its reason; the one line reads as before.
            FetchError::Truncated { url, received, expected, attempts } => new(
                format!(
                    "download of {url} truncated: got {received} of {expected} bytes after {attempts} {}",
                    attempt_noun(*attempts)
                ),
                "the server or network keeps cutting the transfer: run again to resume, or check the file on the server",
            ),
            FetchError::Sha256Mismatch { url, expected, actual } => problem(format!(
                "sha256 mismatch for {url}: expected {expected}, got {actual}; the download is corrupt or the URL is wrong"
            )),
            FetchError::LocalSha256Mismatch { path, expected, actual } => problem(format!(
                "sha256 mismatch for {}: expected {expected}, got {actual}; the file is corrupt or the sha256 is wrong",
                path.display()
            )),
            FetchError::CaCert { path, detail } => problem(format!(
                "cannot use CA certificate {} ({detail}): pass a PEM file with the private CA's certificate",
                path.display()
            )),
            FetchError::Client { detail } => problem(format!(
                "cannot set up the HTTPS client ({detail}): this is a bug in the stager, please report it"
            )),
            FetchError::NoRoom { dir, needed, download, margin, free } => new(
                format!(
                    "not enough free space in {} for the image: {} needed ({} still to download + {} margin), {} free",
                    dir.display(),
                    needed.rounded(),
                    download.rounded(),
                    margin.rounded(),
                    free.rounded()
                ),
                "free space there, or download the image to a larger file system yourself and pass its path as --image",
            ),
            FetchError::Io { action, path, source } => new(
                format!("cannot {action} {}: {source}", path.display()),
                "check free space and permissions",
            ),
        }
    }
}

fn attempt_noun(attempts: u32) -> &'static str {
    if attempts == 1 {
        "attempt"
    } else {
        "attempts"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_error_gives_its_problem_and_fix_apart_and_prints_them_as_before() {
        let e = FetchError::BadSha256Listing {
            sidecar: "https://h/a.img.sha256".into(),
            detail: super::super::digest::ListingError::Empty,
        };
        let text = e.text();
        assert_eq!(text.problem, "cannot read a sha256 from https://h/a.img.sha256: it is empty");
        assert_eq!(text.fix.as_deref(), Some("pass --sha256"));
        assert_eq!(
            e.to_string(),
            "cannot read a sha256 from https://h/a.img.sha256: it is empty; pass --sha256"
        );
    }

    #[test]
    fn a_diagnosis_after_a_semicolon_is_no_fix() {
        let e = FetchError::Sha256Mismatch {
            url: "https://h/a.img".into(),
            expected: "aa".into(),
            actual: "bb".into(),
        };
        // Split at its last "; ", this line would have offered "the download is corrupt or
        // the URL is wrong" as the fix.
        assert_eq!(e.text().fix, None);
        assert_eq!(
            e.to_string(),
            "sha256 mismatch for https://h/a.img: expected aa, got bb; the download is corrupt or the URL is wrong"
        );
        assert_eq!(e.text().problem, e.to_string());
    }
}
