//! Fetching from a URL: scheme policy, expected sha256, reuse of a finished download,
//! the resumable transfer and the verified rename into place.

use std::io::Read;
use std::path::Path;

use reqwest::blocking::Client;
use reqwest::{StatusCode, Url};

use super::client::{build_client, classify, RequestFailure};
use super::digest::{digest_from_listing, hash_file, ListingError};
use super::download::download;
use super::place::verify_and_place;
use super::progress::Progress;
use super::{part_path, Bytes, FetchError, FetchOptions, FetchedImage, Sha256Hex};

/// The most a `URL.sha256` listing may weigh.
const MAX_LISTING_BYTES: u64 = 64 * 1024;

pub fn fetch_url(url: &Url, dest: &Path, opts: &FetchOptions) -> Result<FetchedImage, FetchError> {
    match url.scheme() {
        "https" => {}
        "http" if !opts.allow_plain_http => {
            return Err(FetchError::PlainHttpRefused { url: url.to_string() })
        }
        "http" if opts.sha256.is_none() => {
            return Err(FetchError::PlainHttpNeedsSha256 { url: url.to_string() })
        }
        "http" => {
            log::warn!("downloading {url} over plain http; the given sha256 is its only protection")
        }
        _ => return Err(FetchError::InvalidSource { source_text: url.to_string() }),
    }
    let client = build_client(opts)?;
    let expected = match &opts.sha256 {
        Some(given) => given.clone(),
        None => published_sha256(&client, url)?,
    };
    if let Some(done) = already_fetched(dest, &expected)? {
        return Ok(done);
    }
    let part = part_path(dest);
    let label = url.path_segments().and_then(|mut s| s.next_back()).unwrap_or("image").to_owned();
    let mut progress = Progress::start(opts.progress, &label);
    log::info!("downloading {url} to {}", part.display());
    let result = download(&client, url, &part, opts, &mut progress);
    progress.finish();
    result?;
    verify_and_place(&part, dest, &expected, url.as_str())
}

/// The URL of the sha256 listing published beside `url`: same URL, `.sha256` appended to its path.
pub fn sidecar_url(url: &Url) -> Url {
    let mut sidecar = url.clone();
    sidecar.set_path(&format!("{}.sha256", url.path()));
    sidecar
}

fn published_sha256(client: &Client, url: &Url) -> Result<Sha256Hex, FetchError> {
    let sidecar = sidecar_url(url);
    log::info!("no sha256 given; reading {sidecar}");
    let response =
        client.get(sidecar.clone()).send().map_err(|e| match classify(&e, &sidecar) {
            RequestFailure::Fatal(error) => error,
            RequestFailure::Connect(detail) => FetchError::Connect {
                host: sidecar.host_str().unwrap_or("the server").to_owned(),
                detail,
            },
            RequestFailure::Network(detail) => {
                FetchError::Transfer { url: sidecar.to_string(), attempts: 1, detail }
            }
        })?;
    let bad_listing = |detail: ListingError| FetchError::BadSha256Listing {
        sidecar: sidecar.to_string(),
        detail,
    };
    match response.status() {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND => {
            return Err(FetchError::NoPublishedSha256 {
                url: url.to_string(),
                sidecar: sidecar.to_string(),
            })
        }
        status => return Err(bad_listing(ListingError::HttpStatus(status.as_u16()))),
    }
    let mut listing = String::new();
    response
        .take(MAX_LISTING_BYTES)
        .read_to_string(&mut listing)
        .map_err(|e| bad_listing(ListingError::Unreadable(e)))?;
    let file_name = url.path_segments().and_then(|mut s| s.next_back()).unwrap_or_default();
    digest_from_listing(&listing, file_name).map_err(bad_listing)
}

/// A `dest` left by an earlier run is reused when its sha256 matches, else removed.
fn already_fetched(dest: &Path, expected: &Sha256Hex) -> Result<Option<FetchedImage>, FetchError> {
    if !dest.exists() {
        return Ok(None);
    }
    let (actual, size) = hash_file(dest)?;
    if actual == *expected {
        log::info!("{} is already downloaded and verified", dest.display());
        return Ok(Some(FetchedImage { path: dest.to_owned(), size: Bytes(size), sha256: actual }));
    }
    log::warn!("{} exists with another sha256 ({actual}); downloading again", dest.display());
    std::fs::remove_file(dest).map_err(|e| FetchError::io("delete", dest, e))?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_url_appends_to_the_path_only() {
        let url = Url::parse("https://h.example/a/resin.img?token=1").unwrap();
        assert_eq!(sidecar_url(&url).as_str(), "https://h.example/a/resin.img.sha256?token=1");
    }
}
