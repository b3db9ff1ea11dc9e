//! The image fetcher against a real HTTPS server on 127.0.0.1 with a CA made at test time.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use stager::fetch::{
    fetch_image, part_path, Bytes, FetchError, FetchOptions, ImageSource, ProgressMode, Sha256Hex,
};
use support::https_server::{Cut, Route, TestServer};
use support::test_ca::TestCa;

const IMAGE_PATH: &str = "/images/resin.img";
const IMAGE_LEN: usize = 1_048_576 + 12_345;

/// Deterministic, non-repeating bytes, so a misplaced chunk changes the sha256.
fn image_bytes() -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..IMAGE_LEN)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

struct Fixture {
    server: TestServer,
    ca_pem: PathBuf,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(routes: Vec<(&str, Route)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("swapover test CA");
        let ca_pem = ca.write_pem(dir.path());
        let server = TestServer::https(ca.issue_server(&["127.0.0.1"]), routes);
        Fixture { server, ca_pem, dir }
    }

    fn source(&self) -> ImageSource {
        ImageSource::parse(&self.server.url(IMAGE_PATH)).unwrap()
    }

    fn dest(&self) -> PathBuf {
        self.dir.path().join("resin.img")
    }

    fn options(&self, sha256: Option<&str>) -> FetchOptions {
        FetchOptions {
            sha256: sha256.map(|hex| Sha256Hex::parse(hex).unwrap()),
            ca_certs: vec![self.ca_pem.clone()],
            max_retries: 3,
            retry_backoff: Duration::from_millis(10),
            connect_timeout: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(10),
            progress: ProgressMode::Lines,
            ..FetchOptions::default()
        }
    }

    fn fetch(&self, opts: &FetchOptions) -> Result<stager::fetch::FetchedImage, FetchError> {
        fetch_image(&self.source(), &self.dest(), opts)
    }
}

fn file_len(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|metadata| metadata.len())
}

#[test]
fn downloads_and_verifies_with_the_given_sha256() {
    let image = image_bytes();
    let fixture = Fixture::new(vec![(IMAGE_PATH, Route::file(image.clone()))]);
    let fetched = fixture.fetch(&fixture.options(Some(&sha256_hex(&image)))).unwrap();

    assert_eq!(fetched.path, fixture.dest());
    assert_eq!(fetched.size, Bytes(IMAGE_LEN as u64));
    assert_eq!(fetched.sha256.as_str(), sha256_hex(&image));
    assert_eq!(std::fs::read(fixture.dest()).unwrap(), image);
    assert!(!part_path(&fixture.dest()).exists(), "the .part must be renamed away");
    let served = fixture.server.served();
    assert_eq!(served.len(), 1, "{served:?}");
    assert_eq!((served[0].range.as_deref(), served[0].status), (None, 200));
}

#[test]
fn reads_the_sha256_from_url_sha256_in_sha256sum_format() {
    let image = image_bytes();
    let listing = format!("{}  resin.img\n", sha256_hex(&image));
    let fixture = Fixture::new(vec![
        (IMAGE_PATH, Route::file(image.clone())),
        ("/images/resin.img.sha256", Route::file(listing)),
    ]);
    let fetched = fixture.fetch(&fixture.options(None)).unwrap();

    assert_eq!(fetched.sha256.as_str(), sha256_hex(&image));
    assert_eq!(std::fs::read(fixture.dest()).unwrap(), image);
    let paths: Vec<String> =
        fixture.server.served().into_iter().map(|served| served.path).collect();
    assert_eq!(paths, ["/images/resin.img.sha256", IMAGE_PATH]);
}

#[test]
fn reads_a_bare_hex_url_sha256_and_rejects_a_download_that_does_not_match_it() {
    let image = image_bytes();
    let other = sha256_hex(b"another image");
    let fixture = Fixture::new(vec![
        (IMAGE_PATH, Route::file(image.clone())),
        ("/images/resin.img.sha256", Route::file(format!("{}\n", other.to_uppercase()))),
    ]);
    let error = fixture.fetch(&fixture.options(None)).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "sha256 mismatch for {}: expected {other}, got {}; the download is corrupt or the URL is wrong",
            fixture.server.url(IMAGE_PATH),
            sha256_hex(&image)
        )
    );
}

#[test]
fn missing_url_sha256_is_refused_before_downloading() {
    let fixture = Fixture::new(vec![(IMAGE_PATH, Route::file(image_bytes()))]);
    let error = fixture.fetch(&fixture.options(None)).unwrap_err();
    let url = fixture.server.url(IMAGE_PATH);
    assert_eq!(
        error.to_string(),
        format!("no sha256 published for {url} (HTTP 404 on {url}.sha256): pass --sha256")
    );
    assert!(fixture.server.served_for(IMAGE_PATH).is_empty(), "the image must not be downloaded");
    assert!(!part_path(&fixture.dest()).exists());
}

#[test]
fn resumes_with_a_range_request_after_the_server_cuts_mid_file() {
    let image = image_bytes();
    let fixture = Fixture::new(vec![(
        IMAGE_PATH,
        Route::file(image.clone()).cut(Cut::FirstResponseAfter(300_000)),
    )]);
    let fetched = fixture.fetch(&fixture.options(Some(&sha256_hex(&image)))).unwrap();

    assert_eq!(std::fs::read(&fetched.path).unwrap(), image);
    let served = fixture.server.served();
    assert_eq!(served.len(), 2, "{served:?}");
    assert_eq!(
        (served[0].range.as_deref(), served[0].status, served[0].body_bytes_sent),
        (None, 200, 300_000)
    );
    assert_eq!((served[1].range.as_deref(), served[1].status), (Some("bytes=300000-"), 206));
    assert_eq!(served[1].body_bytes_sent, IMAGE_LEN - 300_000);
}

#[test]
fn a_later_call_resumes_the_part_an_earlier_call_left() {
    let image = image_bytes();
    let fixture = Fixture::new(vec![(
        IMAGE_PATH,
        Route::file(image.clone()).cut(Cut::FirstResponseAfter(300_000)),
    )]);
    let no_retry = FetchOptions { max_retries: 0, ..fixture.options(Some(&sha256_hex(&image))) };
    let error = fixture.fetch(&no_retry).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "download of {} truncated: got 300000 of {IMAGE_LEN} bytes after 1 attempt; the server or network \
             keeps cutting the transfer: run again to resume, or check the file on the server",
            fixture.server.url(IMAGE_PATH)
        )
    );
    assert_eq!(
        file_len(&part_path(&fixture.dest())),
        Some(300_000),
        "the .part is kept for resuming"
    );
    assert!(!fixture.dest().exists());

    let fetched = fixture.fetch(&no_retry).unwrap();
    assert_eq!(std::fs::read(&fetched.path).unwrap(), image);
    let served = fixture.server.served();
    assert_eq!((served[1].range.as_deref(), served[1].status), (Some("bytes=300000-"), 206));
}

#[test]
fn starts_over_when_the_server_ignores_range() {
    let image = image_bytes();
    let route = Route::file(image.clone()).ignoring_range().cut(Cut::FirstResponseAfter(300_000));
    let fixture = Fixture::new(vec![(IMAGE_PATH, route)]);
    let fetched = fixture.fetch(&fixture.options(Some(&sha256_hex(&image)))).unwrap();

    assert_eq!(
        fetched.size,
        Bytes(IMAGE_LEN as u64),
        "the prefix must not be kept before a 200 body"
    );
    assert_eq!(std::fs::read(&fetched.path).unwrap(), image);
    let served = fixture.server.served();
    assert_eq!(served.len(), 2, "{served:?}");
    assert_eq!((served[1].range.as_deref(), served[1].status), (Some("bytes=300000-"), 200));
    assert_eq!(served[1].body_bytes_sent, IMAGE_LEN);
}

#[test]
fn http_404_names_the_url_and_the_fix() {
    let fixture = Fixture::new(vec![]);
    let error = fixture.fetch(&fixture.options(Some(&sha256_hex(b"x")))).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "server has no image at {} (HTTP 404): check the --image URL",
            fixture.server.url(IMAGE_PATH)
        )
    );
    assert!(!fixture.dest().exists());
    assert!(!part_path(&fixture.dest()).exists());
}

#[test]
fn wrong_sha256_deletes_the_download() {
    let image = image_bytes();
    let fixture = Fixture::new(vec![(IMAGE_PATH, Route::file(image.clone()))]);
    let wrong = sha256_hex(b"not the image");
    let error = fixture.fetch(&fixture.options(Some(&wrong))).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "sha256 mismatch for {}: expected {wrong}, got {}; the download is corrupt or the URL is wrong",
            fixture.server.url(IMAGE_PATH),
            sha256_hex(&image)
        )
    );
    assert!(!part_path(&fixture.dest()).exists(), "a corrupt .part must not be resumed later");
    assert!(!fixture.dest().exists());
}

#[test]
fn a_file_that_never_completes_is_reported_truncated_after_the_retries() {
    let image = image_bytes();
    let fixture = Fixture::new(vec![(
        IMAGE_PATH,
        Route::file(image.clone()).cut(Cut::AlwaysAtOffset(500_000)),
    )]);
    let opts = FetchOptions { max_retries: 2, ..fixture.options(Some(&sha256_hex(&image))) };
    let error = fixture.fetch(&opts).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "download of {} truncated: got 500000 of {IMAGE_LEN} bytes after 3 attempts; the server or network \
             keeps cutting the transfer: run again to resume, or check the file on the server",
            fixture.server.url(IMAGE_PATH)
        )
    );
    let ranges: Vec<Option<String>> =
        fixture.server.served().into_iter().map(|served| served.range).collect();
    assert_eq!(ranges, [None, Some("bytes=500000-".to_owned()), Some("bytes=500000-".to_owned())]);
    assert_eq!(file_len(&part_path(&fixture.dest())), Some(500_000));
    assert!(!fixture.dest().exists());
}

#[test]
fn a_server_that_ignores_range_and_always_cuts_still_ends_in_truncated() {
    let image = image_bytes();
    let route = Route::file(image.clone()).ignoring_range().cut(Cut::AlwaysAtOffset(500_000));
    let fixture = Fixture::new(vec![(IMAGE_PATH, route)]);
    let opts = FetchOptions { max_retries: 2, ..fixture.options(Some(&sha256_hex(&image))) };
    let error = fixture.fetch(&opts).unwrap_err();
    assert!(
        matches!(error, FetchError::Truncated { received: 500_000, attempts: 3, .. }),
        "restarting from 0 each time is no progress: {error}"
    );
    let statuses: Vec<u16> =
        fixture.server.served().into_iter().map(|served| served.status).collect();
    assert_eq!(statuses, [200, 200, 200]);
}

#[test]
fn a_certificate_from_an_unknown_ca_is_refused_with_the_fix() {
    let image = image_bytes();
    let fixture = Fixture::new(vec![(IMAGE_PATH, Route::file(image.clone()))]);
    let expected = "TLS certificate of 127.0.0.1 not trusted (issued by an unknown CA): pass --ca-cert for a private CA";

    let bundled_roots_only =
        FetchOptions { ca_certs: vec![], ..fixture.options(Some(&sha256_hex(&image))) };
    assert_eq!(fixture.fetch(&bundled_roots_only).unwrap_err().to_string(), expected);

    let other_ca = TestCa::new("some other CA");
    let other_dir = tempfile::tempdir().unwrap();
    let wrong_ca = FetchOptions {
        ca_certs: vec![other_ca.write_pem(other_dir.path())],
        ..fixture.options(Some(&sha256_hex(&image)))
    };
    assert_eq!(fixture.fetch(&wrong_ca).unwrap_err().to_string(), expected);

    assert!(fixture.server.served().is_empty(), "no request may pass an untrusted handshake");
    assert!(!part_path(&fixture.dest()).exists());
}

#[test]
fn a_finished_download_is_reused_without_a_request() {
    let image = image_bytes();
    let fixture = Fixture::new(vec![(IMAGE_PATH, Route::file(image.clone()))]);
    let opts = fixture.options(Some(&sha256_hex(&image)));
    fixture.fetch(&opts).unwrap();
    let again = fixture.fetch(&opts).unwrap();
    assert_eq!(again.size, Bytes(IMAGE_LEN as u64));
    assert_eq!(fixture.server.served().len(), 1);
}

#[test]
fn an_unreadable_ca_file_names_the_file_and_the_fix() {
    let fixture = Fixture::new(vec![]);
    let not_pem = fixture.dir.path().join("not-a-cert.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let opts = FetchOptions {
        ca_certs: vec![not_pem.clone()],
        ..fixture.options(Some(&sha256_hex(b"x")))
    };
    assert_eq!(
        fixture.fetch(&opts).unwrap_err().to_string(),
        format!(
            "cannot use CA certificate {} (no PEM certificate in it): pass a PEM file with the private CA's certificate",
            not_pem.display()
        )
    );
}

#[test]
fn plain_http_is_refused_unless_allowed_and_then_needs_an_explicit_sha256() {
    let image = image_bytes();
    let server = TestServer::http(vec![(IMAGE_PATH, Route::file(image.clone()))]);
    let url = server.url(IMAGE_PATH);
    let source = ImageSource::parse(&url).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("resin.img");
    let base = FetchOptions {
        progress: ProgressMode::Quiet,
        retry_backoff: Duration::from_millis(10),
        ..FetchOptions::default()
    };

    let refused = fetch_image(&source, &dest, &base).unwrap_err();
    assert_eq!(
        refused.to_string(),
        format!("refusing plain http for {url}: use an https:// URL (plain http needs the allow-plain-http option and an explicit --sha256)")
    );
    let allowed = FetchOptions { allow_plain_http: true, ..base.clone() };
    let needs_hash = fetch_image(&source, &dest, &allowed).unwrap_err();
    assert_eq!(
        needs_hash.to_string(),
        format!("plain http download of {url} needs an explicit sha256: pass --sha256")
    );
    assert!(server.served().is_empty());

    let with_hash =
        FetchOptions { sha256: Some(Sha256Hex::parse(&sha256_hex(&image)).unwrap()), ..allowed };
    let fetched = fetch_image(&source, &dest, &with_hash).unwrap();
    assert_eq!(std::fs::read(fetched.path).unwrap(), image);
}

#[test]
fn a_stalled_transfer_times_out_and_resumes() {
    let image = image_bytes();
    let route = Route::file(image.clone()).cut(Cut::StallFirstResponseAfter(200_000));
    let fixture = Fixture::new(vec![(IMAGE_PATH, route)]);
    let opts = FetchOptions {
        stall_timeout: Duration::from_millis(700),
        max_retries: 5,
        ..fixture.options(Some(&sha256_hex(&image)))
    };
    let fetched = fixture.fetch(&opts).unwrap();
    assert_eq!(std::fs::read(&fetched.path).unwrap(), image);
    let served = fixture.server.served();
    assert_eq!((served[0].status, served[0].body_bytes_sent), (200, 200_000));
    let last = served.last().unwrap();
    assert_eq!((last.range.as_deref(), last.status), (Some("bytes=200000-"), 206), "{served:?}");
}

#[test]
fn server_errors_are_retried_then_reported() {
    let image = image_bytes();
    let fixture =
        Fixture::new(vec![(IMAGE_PATH, Route::file(image.clone()).failing_first(2, 503))]);
    let fetched = fixture.fetch(&fixture.options(Some(&sha256_hex(&image)))).unwrap();
    assert_eq!(std::fs::read(&fetched.path).unwrap(), image);
    let statuses: Vec<u16> =
        fixture.server.served().into_iter().map(|served| served.status).collect();
    assert_eq!(statuses, [503, 503, 200]);

    let always_failing =
        Fixture::new(vec![(IMAGE_PATH, Route::file(image.clone()).failing_first(100, 503))]);
    let opts = FetchOptions { max_retries: 1, ..always_failing.options(Some(&sha256_hex(&image))) };
    assert_eq!(
        always_failing.fetch(&opts).unwrap_err().to_string(),
        format!(
            "transfer of {} failed after 2 attempts (server answered HTTP 503 Service Unavailable): run again to resume",
            always_failing.server.url(IMAGE_PATH)
        )
    );
}

#[test]
fn a_complete_part_is_verified_and_placed_without_downloading_it_again() {
    let image = image_bytes();
    let fixture = Fixture::new(vec![(IMAGE_PATH, Route::file(image.clone()))]);
    std::fs::write(part_path(&fixture.dest()), &image).unwrap();
    let fetched = fixture.fetch(&fixture.options(Some(&sha256_hex(&image)))).unwrap();
    assert_eq!(std::fs::read(&fetched.path).unwrap(), image);
    let served = fixture.server.served();
    assert_eq!(served.len(), 1, "{served:?}");
    assert_eq!(served[0].status, 416);
    assert_eq!(served[0].range, Some(format!("bytes={IMAGE_LEN}-")));
}

#[test]
fn a_part_longer_than_the_image_is_discarded_and_downloaded_again() {
    let image = image_bytes();
    let fixture = Fixture::new(vec![(IMAGE_PATH, Route::file(image.clone()))]);
    let mut too_long = image.clone();
    too_long.extend_from_slice(b"left over from another image");
    std::fs::write(part_path(&fixture.dest()), &too_long).unwrap();
    let fetched = fixture.fetch(&fixture.options(Some(&sha256_hex(&image)))).unwrap();
    assert_eq!(std::fs::read(&fetched.path).unwrap(), image);
    let statuses: Vec<u16> =
        fixture.server.served().into_iter().map(|served| served.status).collect();
    assert_eq!(statuses, [416, 200]);
}

#[test]
fn https_redirects_are_followed_but_not_to_plain_http() {
    let image = image_bytes();
    let fixture = Fixture::new(vec![
        (IMAGE_PATH, Route::file(image.clone())),
        ("/moved.img", Route::redirect(IMAGE_PATH)),
        ("/downgrade.img", Route::redirect("http://127.0.0.1:9/resin.img")),
    ]);
    let opts = fixture.options(Some(&sha256_hex(&image)));

    let moved = ImageSource::parse(&fixture.server.url("/moved.img")).unwrap();
    let fetched = fetch_image(&moved, &fixture.dest(), &opts).unwrap();
    assert_eq!(std::fs::read(&fetched.path).unwrap(), image);

    let downgrade_url = fixture.server.url("/downgrade.img");
    let downgrade = ImageSource::parse(&downgrade_url).unwrap();
    let error = fetch_image(&downgrade, &fixture.dir.path().join("other.img"), &opts).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, FetchError::Redirect { .. }), "{text}");
    assert!(text.starts_with(&format!("redirect refused for {downgrade_url} (")), "{text}");
    assert!(text.contains("http://127.0.0.1:9/resin.img"), "{text}");
    assert!(text.ends_with("): give the final https:// URL of the image"), "{text}");
}
