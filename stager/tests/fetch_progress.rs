//! Off a terminal, download progress is reported as plain log lines every 5 %.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use sha2::{Digest, Sha256};
use stager::fetch::{fetch_image, FetchOptions, ImageSource, ProgressMode, Sha256Hex};
use support::https_server::{Route, TestServer};
use support::test_ca::TestCa;

/// Keeps every info line logged by the stager.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }
    fn log(&self, record: &log::Record) {
        if record.target().starts_with("stager") {
            self.0.lock().unwrap().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

#[test]
fn progress_lines_step_by_five_percent_up_to_100() {
    log::set_logger(&CAPTURE).unwrap();
    log::set_max_level(log::LevelFilter::Info);

    // 5 % of the image (400 000 bytes) is more than one read (256 KiB), so no single read
    // can jump over a whole step: every step must get its own line.
    let image: Vec<u8> =
        (0..8_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("progress test CA");
    let server = TestServer::https(
        ca.issue_server(&["127.0.0.1"]),
        vec![("/resin.img", Route::file(image.clone()))],
    );
    let opts = FetchOptions {
        sha256: Some(Sha256Hex::parse(&hex::encode(Sha256::digest(&image))).unwrap()),
        ca_certs: vec![ca.write_pem(dir.path())],
        progress: ProgressMode::Lines,
        retry_backoff: Duration::from_millis(10),
        ..FetchOptions::default()
    };
    let source = ImageSource::parse(&server.url("/resin.img")).unwrap();
    fetch_image(&source, &dir.path().join("resin.img"), &opts).unwrap();

    let lines = CAPTURE.0.lock().unwrap().clone();
    let percents: Vec<u64> = lines
        .iter()
        .filter(|line| line.starts_with("resin.img: "))
        .map(|line| {
            let open = line.rfind('(').unwrap();
            line[open + 1..line.len() - 2].parse().unwrap()
        })
        .collect();
    // One line per 5 % step; a loaded machine may add the 10-second lines in between, so
    // the test asks for every step to be there and for nothing to go backwards.
    assert!(percents.len() >= 15 && percents.len() <= 40, "one line per 5 % step: {lines:#?}");
    assert!(percents.windows(2).all(|pair| pair[1] >= pair[0]), "{percents:?}");
    for step in 1..=20u64 {
        assert!(
            percents.iter().any(|p| p / 5 == step),
            "no line in the {}% step: {percents:?}",
            step * 5
        );
    }
    assert_eq!(percents.last(), Some(&100));
    assert!(
        lines.iter().any(|line| line.starts_with("image ")
            && line.ends_with(&format!("verified (sha256 {})", opts.sha256.as_ref().unwrap()))),
        "{lines:#?}"
    );
}
