//! The image fetcher with a local image file: checked in place against a sha256.

use std::path::PathBuf;

use sha2::{Digest, Sha256};
use stager::fetch::{fetch_image, Bytes, FetchOptions, ImageSource, ProgressMode, Sha256Hex};

const IMAGE: &[u8] = b"a stand-in resinOS image, long enough to be hashed\n";

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn image_in(dir: &tempfile::TempDir) -> PathBuf {
    let path = dir.path().join("resin.img");
    std::fs::write(&path, IMAGE).unwrap();
    path
}

fn options(sha256: Option<&str>) -> FetchOptions {
    FetchOptions {
        sha256: sha256.map(|hex| Sha256Hex::parse(hex).unwrap()),
        progress: ProgressMode::Quiet,
        ..FetchOptions::default()
    }
}

fn unused_dest(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("unused-dest.img")
}

#[test]
fn a_local_image_matching_the_given_sha256_is_used_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let image = image_in(&dir);
    let source = ImageSource::parse(image.to_str().unwrap()).unwrap();
    let fetched =
        fetch_image(&source, &unused_dest(&dir), &options(Some(&sha256_hex(IMAGE)))).unwrap();
    assert_eq!(fetched.path, image);
    assert_eq!(fetched.size, Bytes(IMAGE.len() as u64));
    assert_eq!(fetched.sha256.as_str(), sha256_hex(IMAGE));
    assert!(!unused_dest(&dir).exists(), "a local image is not copied");
}

#[test]
fn a_local_image_is_checked_against_a_sha256_file_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let image = image_in(&dir);
    std::fs::write(
        dir.path().join("resin.img.sha256"),
        format!("{}  resin.img\n", sha256_hex(IMAGE)),
    )
    .unwrap();
    let fetched =
        fetch_image(&ImageSource::Path(image.clone()), &unused_dest(&dir), &options(None)).unwrap();
    assert_eq!(fetched.sha256.as_str(), sha256_hex(IMAGE));

    std::fs::write(&image, b"changed after the sum was written").unwrap();
    let error = fetch_image(&ImageSource::Path(image.clone()), &unused_dest(&dir), &options(None))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "sha256 mismatch for {}: expected {}, got {}; the file is corrupt or the sha256 is wrong",
            image.display(),
            sha256_hex(IMAGE),
            sha256_hex(b"changed after the sum was written")
        )
    );
}

#[test]
fn a_local_image_with_the_wrong_sha256_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = image_in(&dir);
    let wrong = sha256_hex(b"something else");
    let error =
        fetch_image(&ImageSource::Path(image.clone()), &unused_dest(&dir), &options(Some(&wrong)))
            .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "sha256 mismatch for {}: expected {wrong}, got {}; the file is corrupt or the sha256 is wrong",
            image.display(),
            sha256_hex(IMAGE)
        )
    );
    assert_eq!(std::fs::read(&image).unwrap(), IMAGE, "the source is never touched");
}

#[test]
fn a_local_image_without_any_sha256_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = image_in(&dir);
    let error = fetch_image(&ImageSource::Path(image.clone()), &unused_dest(&dir), &options(None))
        .unwrap_err();
    let shown = image.display();
    assert_eq!(
        error.to_string(),
        format!("no sha256 for {shown}: pass --sha256 or put a {shown}.sha256 file beside it")
    );
}

#[test]
fn a_missing_local_image_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.img");
    let error = fetch_image(
        &ImageSource::Path(missing.clone()),
        &unused_dest(&dir),
        &options(Some(&sha256_hex(IMAGE))),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("image file {} not found: check the --image path", missing.display())
    );

    let directory =
        fetch_image(&ImageSource::Path(dir.path().to_owned()), &unused_dest(&dir), &options(None))
            .unwrap_err();
    assert_eq!(
        directory.to_string(),
        format!(
            "image {} is not a regular file: give the path of an image file",
            dir.path().display()
        )
    );
}
