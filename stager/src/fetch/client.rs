//! The HTTPS client (rustls, bundled web PKI roots plus `--ca-cert`) and the reading of its errors.

use std::error::Error as StdError;
use std::path::Path;

use reqwest::blocking::Client;
use reqwest::{redirect, Certificate, Url};

use super::{FetchError, FetchOptions};

const MAX_REDIRECTS: usize = 10;

/// Builds the blocking client: bundled webpki roots + the private CAs, https only unless
/// plain http is allowed (redirects included), per-read stall timeout.
pub fn build_client(opts: &FetchOptions) -> Result<Client, FetchError> {
    let allow_http = opts.allow_plain_http;
    let policy = redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else if attempt.url().scheme() != "https" && !allow_http {
            let target = attempt.url().to_string();
            attempt.error(format!("redirect to non-https {target}"))
        } else {
            attempt.follow()
        }
    });
    let mut builder = Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(true)
        .https_only(!allow_http)
        .redirect(policy)
        .connect_timeout(opts.connect_timeout)
        .timeout(opts.stall_timeout)
        .user_agent(concat!("swapover-stager/", env!("CARGO_PKG_VERSION")));
    for path in &opts.ca_certs {
        for certificate in read_ca_bundle(path)? {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|e| FetchError::Client { detail: error_chain(&e) })
}

fn read_ca_bundle(path: &Path) -> Result<Vec<Certificate>, FetchError> {
    let ca_error = |detail: String| FetchError::CaCert { path: path.to_owned(), detail };
    let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
    let certificates = Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(error_chain(&e)))?;
    if certificates.is_empty() {
        return Err(ca_error("no PEM certificate in it".to_owned()));
    }
    Ok(certificates)
}

/// What went wrong with a request, sorted by what the download loop should do about it.
#[derive(Debug)]
pub enum RequestFailure {
    /// Retrying cannot help (certificate, TLS setup, refused redirect).
    Fatal(FetchError),
    /// Could not connect; may be transient.
    Connect(String),
    /// The connection broke or stalled; may be transient.
    Network(String),
}

/// Sorts a reqwest error for `url`.
pub fn classify(error: &reqwest::Error, url: &Url) -> RequestFailure {
    let host = url.host_str().unwrap_or("the server").to_owned();
    if let Some(tls) = find_rustls_error(error) {
        return RequestFailure::Fatal(match tls {
            rustls::Error::InvalidCertificate(reason) => {
                FetchError::UntrustedCertificate { host, reason: certificate_reason(reason) }
            }
            other => FetchError::Tls { host, detail: other.to_string() },
        });
    }
    if error.is_redirect() {
        return RequestFailure::Fatal(FetchError::Redirect {
            url: url.to_string(),
            detail: error_chain(error),
        });
    }
    if error.is_connect() {
        return RequestFailure::Connect(error_chain(error));
    }
    RequestFailure::Network(error_chain(error))
}

fn certificate_reason(reason: &rustls::CertificateError) -> String {
    match reason {
        rustls::CertificateError::UnknownIssuer => "issued by an unknown CA".to_owned(),
        rustls::CertificateError::BadSignature => "bad signature".to_owned(),
        other => other.to_string(),
    }
}

/// The sources of an error, skipping reqwest's own "error sending request" wrappers.
///
/// `std::io::Error::source` skips the error it wraps, so the wrapped error is visited
/// explicitly with `get_ref`.
pub fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    visit_chain(error, &mut |e| {
        let text = e.to_string();
        if !parts.iter().any(|seen| seen.contains(&text)) {
            parts.push(text);
        }
        false
    });
    let useful: Vec<String> =
        parts.iter().filter(|part| !part.starts_with("error sending request")).cloned().collect();
    if useful.is_empty() {
        parts.join(": ")
    } else {
        useful.join(": ")
    }
}

fn find_rustls_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut found = None;
    visit_chain(error, &mut |e| {
        found = e.downcast_ref::<rustls::Error>();
        found.is_some()
    });
    found
}

/// Calls `visit` on `error` and each of its sources until it returns true.
fn visit_chain<'a>(
    error: &'a (dyn StdError + 'static),
    visit: &mut dyn FnMut(&'a (dyn StdError + 'static)) -> bool,
) {
    let mut current = Some(error);
    while let Some(e) = current {
        if visit(e) {
            return;
        }
        let wrapped_by_io = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
        current = match wrapped_by_io {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
}
