//! What a customer downloads, staged (issue 15, stager side): `.img.gz`, `.zip`, flasher
//! images in a `.zip` (local or over HTTPS) are planned on the fixture STEM host with the
//! image that will really be written — for a flasher its inner image plus what the flasher
//! would have added (grub.cfg at both paths, BIOS boot code) — and every download that
//! cannot become a bootable image is refused in one line, leaving the host byte-identical
//! and no prepared file in the download cache.
//!
//! Images are built with the real tools by resin-image's test builder (sfdisk, mkfs.vfat +
//! mtools, mkfs.ext4 -d, gzip, xz, the zip crate's writer).

#[path = "../../resin-image/tests/support/mod.rs"]
mod images;
#[path = "stage_support/mod.rs"]
mod stage_support;
mod support;

use images::{Content, FlasherSpec, Part, BOOT_IMG, GRUB_CFG_INTERNAL, INNER_NAME, MIB};
use stage_support::{sha256_hex, StageHost};
use stager::stage::engine::system::FixtureSystem;
use stager::stage::{run_stage, StageOutcome, StageRequest};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::https_server::{Route, TestServer};
use support::test_ca::TestCa;

/// A request for the local file `image` with its sha256.
fn request_for(host: &StageHost, image: &Path) -> StageRequest {
    let mut request = host.request();
    request.image = image.display().to_string();
    request.sha256 = Some(sha256_hex(&std::fs::read(image).unwrap()));
    request
}

fn download_dir(host: &StageHost) -> PathBuf {
    host.host.path("/var/lib/swapover/download")
}

/// Files in the download cache whose name starts with `prepared-`.
fn prepared_files(host: &StageHost) -> Vec<String> {
    match std::fs::read_dir(download_dir(host)) {
        Err(_) => Vec::new(),
        Ok(dir) => dir
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("prepared-"))
            .collect(),
    }
}

/// Dry run: the plan's text and the file that would be staged.
fn dry_run(host: &StageHost, mut request: StageRequest) -> (String, PathBuf) {
    request.dry_run = true;
    match run_stage(&request, &mut FixtureSystem::default()) {
        Ok(StageOutcome::DryRun { text, plan }) => {
            assert_eq!(plan.plan.profile.device_type, "intel-nuc");
            assert_eq!(plan.plan.image.file, "resinos.img.xz");
            assert!(plan.image_path.starts_with(download_dir(host)), "{:?}", plan.image_path);
            (text, plan.image_path.clone())
        }
        other => panic!("expected a dry run, got {other:?}"),
    }
}

/// The decoded bytes of an xz file.
fn unxz(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    xz2::read::XzDecoder::new(std::fs::File::open(path).unwrap()).read_to_end(&mut out).unwrap();
    out
}

/// Runs `request`, expects a refusal containing every `needles`, an unchanged host, and no
/// prepared file left behind.
fn refused(host: &StageHost, request: StageRequest, needles: &[&str]) {
    let state = host.host.path("/var/lib/swapover/state.json");
    let before = (host.files(), host.disk_whole(), std::fs::read(&state).ok());
    let mut system = FixtureSystem::default();
    let err = run_stage(&request, &mut system).expect_err("must refuse");
    let text = err.to_string();
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} not in: {text}");
    }
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(system.calls.is_empty(), "{:?}", system.calls);
    assert_eq!(
        (host.files(), host.disk_whole(), std::fs::read(&state).ok()),
        before,
        "host changed by: {text}"
    );
    assert_eq!(prepared_files(host), Vec::<String>::new(), "left by: {text}");
    if let Ok(dir) = std::fs::read_dir(download_dir(host)) {
        let parts: Vec<_> = dir
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".part"))
            .collect();
        assert!(parts.is_empty(), "{parts:?} left by: {text}");
    }
}

/// A flasher at `dir/flasher.img` like resin-image's builder makes, with `boot_files` on
/// flash-boot instead of the flag, grub.cfg_internal, boot.img and core.img, and `inner`
/// as its only inner image.
fn flasher_with_boot(dir: &Path, inner: &Path, boot_files: Vec<(String, Vec<u8>)>) -> PathBuf {
    let image = dir.join("flasher.img");
    let bytes = std::fs::read(inner).unwrap();
    let opt = format!("opt/{INNER_NAME}");
    let root = images::tree(dir, "custom-flasher-root", &[(opt.as_str(), &bytes)]);
    let mut files = boot_files;
    files.push(("device-type.json".into(), images::DEVICE_TYPE_JSON.as_bytes().to_vec()));
    images::disk_image(
        &image,
        &[
            Part { size_mib: 2, content: Content::Fat { label: "flash-boot", files } },
            Part {
                size_mib: bytes.len() as u64 / MIB * 5 / 4 + 4,
                content: Content::Ext4 { label: "flash-rootA", tree: root },
            },
            Part { size_mib: 4, content: Content::Empty },
            Part { size_mib: 1, content: Content::Empty },
            Part { size_mib: 1, content: Content::Empty },
        ],
    );
    image
}

/// A normal image whose boot partition says `device_type` and whose data partition holds
/// `data` (resin-image's normal layout otherwise).
fn normal_image_with(dir: &Path, name: &str, device_type: &str, data: Content) -> PathBuf {
    let image = dir.join(name);
    let root = images::tree(dir, &format!("{name}-root"), &[("etc/os-release", b"NAME=x\n")]);
    let json = format!(r#"{{"slug": "{device_type}", "arch": "amd64"}}"#);
    let boot = Content::Fat {
        label: "resin-boot",
        files: vec![
            ("resin-image".into(), b"DO NOT REMOVE THIS FILE\n".to_vec()),
            ("device-type.json".into(), json.into_bytes()),
        ],
    };
    images::disk_image(
        &image,
        &[
            Part { size_mib: 2, content: boot },
            Part { size_mib: 4, content: Content::Ext4 { label: "resin-rootA", tree: root } },
            Part { size_mib: 1, content: Content::Empty },
            Part { size_mib: 1, content: Content::Empty },
            Part { size_mib: 2, content: data },
        ],
    );
    image
}

/// Reads `path` inside the FAT at `offset` of `image` with mtools.
fn mtype(image: &Path, offset: u64, path: &str) -> Option<Vec<u8>> {
    let output = Command::new("mtype")
        .arg("-i")
        .arg(format!("{}@@{offset}", image.display()))
        .arg(format!("::{path}"))
        .output()
        .unwrap();
    output.status.success().then_some(output.stdout)
}

/// The prepared image is the inner image with the flasher's additions and nothing else:
/// boot code at 0..440 and core.img from 512 (the inner had none), the partition table bytes
/// 440..512 untouched, grub.cfg_internal at both grub.cfg paths of resin-boot, every byte
/// after resin-boot identical.
fn assert_inner_plus_additions(dir: &Path, prepared: &Path, inner: &Path) {
    let inner = std::fs::read(inner).unwrap();
    let got = unxz(prepared);
    assert_eq!(got.len(), inner.len());
    assert!(inner[..440].iter().all(|&b| b == 0), "the test's inner image has no boot code");
    assert_eq!(&got[..440], &BOOT_IMG[..440]);
    assert_eq!(&got[440..512], &inner[440..512], "partition table bytes");
    let core = images::core_img();
    assert_eq!(&got[512..512 + core.len()], &core[..]);
    let boot_start = 4 * MIB as usize;
    assert_eq!(&got[512 + core.len()..boot_start], &inner[512 + core.len()..boot_start]);
    let boot_end = boot_start + 2 * MIB as usize;
    assert_eq!(&got[boot_end..], &inner[boot_end..], "after resin-boot");
    let file = dir.join("prepared.raw");
    std::fs::write(&file, &got).unwrap();
    for path in ["EFI/BOOT/grub.cfg", "grub/grub.cfg"] {
        assert_eq!(mtype(&file, boot_start as u64, path).as_deref(), Some(GRUB_CFG_INTERNAL));
    }
    assert!(mtype(&file, boot_start as u64, "resin-image").is_some());
    assert!(mtype(&file, boot_start as u64, "device-type.json").is_some());
    let original = dir.join("inner.raw");
    std::fs::write(&original, &inner).unwrap();
    assert_eq!(mtype(&original, boot_start as u64, "grub/grub.cfg"), None);
}

fn flasher_line(inner: &Path) -> String {
    let size = plan::Bytes(std::fs::metadata(inner).unwrap().len());
    format!("flasher image: the inner image {INNER_NAME} ({size}) is what will be written")
}

#[test]
fn img_gz_is_planned_with_the_decompressed_image() {
    let host = StageHost::new();
    let normal = images::normal_image(host.inputs.path());
    let gz = images::gzip(&normal);
    let (text, prepared) = dry_run(&host, request_for(&host, &gz));
    assert!(text.contains("gzip download: the image decompressed from it"), "{text}");
    assert_eq!(unxz(&prepared), std::fs::read(&normal).unwrap());
}

#[test]
fn zip_with_one_image_is_planned_with_that_entry() {
    let host = StageHost::new();
    let normal = images::normal_image(host.inputs.path());
    let readme = host.write_input("README.txt", b"resinOS for intel-nuc\n");
    let zip = images::zip(
        &host.input("resin-intel-nuc.zip"),
        &[("README.txt", &readme), ("resin-intel-nuc-2.12.7.img", &normal)],
    );
    let (text, prepared) = dry_run(&host, request_for(&host, &zip));
    assert!(text.contains("zip download: the entry resin-intel-nuc-2.12.7.img is the image"));
    assert!(!text.contains("flasher image"), "{text}");
    assert_eq!(unxz(&prepared), std::fs::read(&normal).unwrap());
}

#[test]
fn flasher_zip_stages_the_inner_image_with_what_the_flasher_adds() {
    let host = StageHost::new();
    let dir = host.inputs.path();
    let inner = images::normal_image(dir);
    let flasher = images::flasher_image(dir, &FlasherSpec::real(&inner));
    let zip = images::zip(&host.input("flasher.zip"), &[("resin-intel-nuc.img", &flasher)]);
    let (text, prepared) = dry_run(&host, request_for(&host, &zip));
    assert!(text.contains(&format!("\n{}\n", flasher_line(&inner))), "{text}");
    assert!(text.contains("added the flasher's grub.cfg_internal"), "{text}");
    assert!(text.contains("added the flasher's BIOS boot code"), "{text}");
    assert_inner_plus_additions(dir, &prepared, &inner);
}

#[test]
fn flasher_img_zip_over_https_is_planned_from_the_download_cache() {
    let host = StageHost::new();
    let dir = host.inputs.path();
    let inner = images::normal_image(dir);
    let flasher = images::flasher_image(dir, &FlasherSpec::real(&inner));
    let zip = images::zip(&host.input("flasher.img.zip"), &[("resin.img", &flasher)]);
    let bytes = std::fs::read(&zip).unwrap();
    let ca = TestCa::new("swapover test CA");
    let ca_pem = ca.write_pem(dir);
    let server = TestServer::https(
        ca.issue_server(&["127.0.0.1"]),
        vec![("/images/resin-intel-nuc-2.12.7.img.zip", Route::file(bytes.clone()))],
    );
    let mut request = host.request();
    request.image = server.url("/images/resin-intel-nuc-2.12.7.img.zip");
    request.sha256 = Some(sha256_hex(&bytes));
    request.ca_certs = vec![ca_pem];
    let (text, prepared) = dry_run(&host, request);
    assert!(text.contains(&flasher_line(&inner)), "{text}");
    // The download is named by its role, not by the URL's suffix; the content decided.
    assert_eq!(std::fs::read(download_dir(&host).join("resinos.download")).unwrap(), bytes);
    let short = &sha256_hex(&bytes)[..16];
    assert_eq!(prepared, download_dir(&host).join(format!("prepared-{short}.img.xz")));
    assert_inner_plus_additions(dir, &prepared, &inner);
}

#[test]
fn check_prints_the_flasher_line_and_leaves_no_prepared_file() {
    let host = StageHost::new();
    let dir = host.inputs.path();
    let inner = images::normal_image(dir);
    let flasher = images::flasher_image(dir, &FlasherSpec::real(&inner));
    let zip = images::zip(&host.input("flasher.zip"), &[("resin.img", &flasher)]);
    let migrator = host.write_input("migrator", b"\x7fELF pretend migrator");
    let output = Command::new(env!("CARGO_BIN_EXE_stager"))
        .arg("check")
        .arg("--root")
        .arg(host.host.root())
        .args(["--profile", "intel-nuc", "--kernel-release", stage_support::KERNEL])
        .arg("--migrator")
        .arg(&migrator)
        .arg("--image")
        .arg(&zip)
        .arg("--config")
        .arg(host.input("config.json"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(text.contains(&flasher_line(&inner)), "{text}");
    assert!(text.contains("zip download: the entry resin.img is the image"), "{text}");
    assert!(text.contains("staging-plan"), "{text}");
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(prepared_files(&host), Vec::<String>::new());
}

#[test]
fn zip_with_two_images() {
    let host = StageHost::new();
    let normal = images::normal_image(host.inputs.path());
    let zip = images::zip(&host.input("two.zip"), &[("a.img", &normal), ("b.img", &normal)]);
    refused(
        &host,
        request_for(&host, &zip),
        &["holds 2 disk images (a.img, b.img); give one image"],
    );
}

#[test]
fn zip_with_no_image() {
    let host = StageHost::new();
    let readme = host.write_input("README.txt", b"nothing here\n");
    let zip = images::zip(&host.input("none.zip"), &[("README.txt", &readme)]);
    refused(&host, request_for(&host, &zip), &["holds no disk image (entries: README.txt)"]);
}

#[test]
fn flasher_without_an_inner_image() {
    let host = StageHost::new();
    let spec = FlasherSpec { flags: vec!["resin-image-flasher"], opt: Vec::new() };
    let flasher = images::flasher_image(host.inputs.path(), &spec);
    let zip = images::zip(&host.input("empty-flasher.zip"), &[("resin.img", &flasher)]);
    refused(&host, request_for(&host, &zip), &["has no inner image in /opt of flash-rootA"]);
}

#[test]
fn inner_image_for_another_device_type() {
    let host = StageHost::new();
    let dir = host.inputs.path();
    let data = images::tree(dir, "data", &[("docker/README", b"supervisor\n")]);
    let inner = normal_image_with(
        dir,
        "rpi.img",
        "raspberrypi3",
        Content::Ext4 { label: "resin-data", tree: data },
    );
    let flasher = images::flasher_image(dir, &FlasherSpec::real(&inner));
    let zip = images::zip(&host.input("flasher.zip"), &[("resin.img", &flasher)]);
    refused(
        &host,
        request_for(&host, &zip),
        &["image is for device type raspberrypi3", "download the intel-nuc image"],
    );
}

#[test]
fn truncated_gz() {
    let host = StageHost::new();
    let gz = images::gzip(&images::normal_image(host.inputs.path()));
    let bytes = std::fs::read(&gz).unwrap();
    for keep in [bytes.len() / 2, bytes.len() - 4] {
        let cut = host.write_input(&format!("cut-{keep}.img.gz"), &bytes[..keep]);
        refused(
            &host,
            request_for(&host, &cut),
            &[&format!("the image {} is truncated: its gzip stream ends early", cut.display())],
        );
    }
}

#[test]
fn corrupt_zip_entry() {
    let host = StageHost::new();
    let normal = images::normal_image(host.inputs.path());
    let zip = images::zip(&host.input("good.zip"), &[("resin.img", &normal)]);
    let mut bytes = std::fs::read(&zip).unwrap();
    // Inside the entry's deflated data, well past its first sector.
    let at = bytes.len() * 2 / 3;
    bytes[at] ^= 0x55;
    let corrupt = host.write_input("corrupt.zip", &bytes);
    refused(&host, request_for(&host, &corrupt), &["entry resin.img of the zip", "is corrupt"]);
}

#[test]
fn efi_only_inner_image_on_the_bios_profile() {
    let host = StageHost::new();
    let dir = host.inputs.path();
    let inner = images::normal_image(dir);
    // A flasher of up to v2.9.2: flag and grub.cfg_internal, but no grub/boot.img, core.img.
    let flasher = flasher_with_boot(
        dir,
        &inner,
        vec![
            ("resin-image-flasher".into(), b"DO NOT REMOVE THIS FILE\n".to_vec()),
            ("grub.cfg_internal".into(), GRUB_CFG_INTERNAL.to_vec()),
        ],
    );
    let zip = images::zip(&host.input("efi-only.zip"), &[("resin.img", &flasher)]);
    refused(
        &host,
        request_for(&host, &zip),
        &[&format!("EFI-only inner image {INNER_NAME} on a BIOS device"), "; download a newer"],
    );
}

#[test]
fn inner_image_without_grub_cfg_when_the_flasher_has_none_to_give() {
    let host = StageHost::new();
    let dir = host.inputs.path();
    let inner = images::normal_image(dir);
    let flasher = flasher_with_boot(
        dir,
        &inner,
        vec![
            ("resin-image-flasher".into(), b"DO NOT REMOVE THIS FILE\n".to_vec()),
            ("grub/boot.img".into(), BOOT_IMG.to_vec()),
            ("grub/core.img".into(), images::core_img()),
        ],
    );
    let zip = images::zip(&host.input("no-cfg.zip"), &[("resin.img", &flasher)]);
    refused(
        &host,
        request_for(&host, &zip),
        &[&format!("the inner image {INNER_NAME} has no grub/grub.cfg and the flasher has no grub.cfg_internal")],
    );
}

#[test]
fn image_whose_data_partition_holds_no_file_system() {
    let host = StageHost::new();
    let image = normal_image_with(host.inputs.path(), "nodata.img", "intel-nuc", Content::Empty);
    let xz = images::xz(&image);
    refused(
        &host,
        request_for(&host, &xz),
        &["the image's resin-data partition (6) holds no file system, where the migration restores data into ext4: this is not a bootable resinOS image"],
    );
}

#[test]
fn unpacked_flasher_given_raw_is_still_taken_apart() {
    // The field case of issue 15 point 8: a raw flasher .img. It is recognised by content
    // and its inner image is what gets planned, never the flasher itself.
    let host = StageHost::new();
    let dir = host.inputs.path();
    let inner = images::normal_image(dir);
    let flasher = images::flasher_image(dir, &FlasherSpec::real(&inner));
    let (text, prepared) = dry_run(&host, request_for(&host, &flasher));
    assert!(text.contains(&flasher_line(&inner)), "{text}");
    assert_inner_plus_additions(dir, &prepared, &inner);
}

#[test]
fn the_probe_refuses_a_flasher_that_skipped_preparation() {
    let dir = tempfile::tempdir().unwrap();
    let inner = images::normal_image(dir.path());
    let flasher = images::flasher_image(dir.path(), &FlasherSpec::real(&inner));
    let error = stager::stage::image_probe::probe(&flasher).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!(
            "the image {} is a flasher image (its boot partition holds /resin-image-flasher)",
            flasher.display()
        )),
        "{error}"
    );
    assert!(stager::stage::image_probe::probe(&inner).is_ok());
}
