//! The free-space check before a download, with the `.part` on a real, small ext4 file
//! system (mkfs.ext4 on a loop device, mounted) and the image served over real HTTPS.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use stager::fetch::{
    fetch_image, part_path, FetchError, FetchOptions, ImageSource, ProgressMode, Sha256Hex,
};
use stager::stage::engine::system::{RealSystem, System};
use stager::stage::host_extras::Region;
use support::https_server::{Route, TestServer};
use support::test_ca::TestCa;

const IMAGE_PATH: &str = "/images/resin.img";
const MIB: u64 = 1024 * 1024;
/// The margin the fetcher keeps free beyond the image.
const MARGIN: u64 = 32 * MIB;
const FS_SIZE: u64 = 64 * MIB;

/// A 64 MiB ext4 file system on a loop device, mounted on a temporary directory.
struct SmallFs {
    system: RealSystem,
    loop_device: String,
    mount: tempfile::TempDir,
    _backing: tempfile::TempDir,
}

impl SmallFs {
    fn new() -> SmallFs {
        let backing = tempfile::tempdir().unwrap();
        let file = backing.path().join("fs.img");
        std::fs::File::create(&file).unwrap().set_len(FS_SIZE).unwrap();
        let status =
            std::process::Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&file).status().unwrap();
        assert!(status.success(), "mkfs.ext4 failed");
        let mut system = RealSystem;
        let region = Region {
            file,
            offset: plan::Bytes(0),
            size: plan::Bytes(FS_SIZE),
            host_path: "fs.img".into(),
        };
        let (device, loop_device) = system.attach(&region).unwrap();
        let loop_device = loop_device.expect("a loop device over the image file");
        let mount = tempfile::tempdir().unwrap();
        if let Err(error) = system.mount(&device, mount.path(), false) {
            let _ = system.detach(&loop_device);
            panic!("mount {device}: {error}");
        }
        SmallFs { system, loop_device, mount, _backing: backing }
    }

    fn dir(&self) -> &Path {
        self.mount.path()
    }

    fn dest(&self) -> PathBuf {
        self.dir().join("resin.img")
    }

    /// f_bavail × f_frsize, as the fetcher reads it.
    #[allow(clippy::useless_conversion)]
    fn free(&self) -> u64 {
        let stats = nix::sys::statvfs::statvfs(self.dir()).unwrap();
        u64::from(stats.blocks_available()) * u64::from(stats.fragment_size())
    }

    /// f_bfree × f_frsize: free blocks including those ext4 reserves for root, which the
    /// tests (running as root) could write into.
    #[allow(clippy::useless_conversion)]
    fn free_for_root(&self) -> u64 {
        let stats = nix::sys::statvfs::statvfs(self.dir()).unwrap();
        u64::from(stats.blocks_free()) * u64::from(stats.fragment_size())
    }

    /// Every name in the mounted file system but ext4's own lost+found.
    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name != "lost+found")
            .collect();
        names.sort();
        names
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = self.system.unmount(self.mount.path());
        let _ = self.system.detach(&self.loop_device);
    }
}

/// Deterministic bytes of `len`.
fn image_bytes(len: u64) -> Vec<u8> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

struct Served {
    server: TestServer,
    ca_pem: PathBuf,
    sha256: String,
    _ca_dir: tempfile::TempDir,
}

fn serve(image: Vec<u8>) -> Served {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("swapover test CA");
    let ca_pem = ca.write_pem(ca_dir.path());
    let sha256 = hex::encode(Sha256::digest(&image));
    let server =
        TestServer::https(ca.issue_server(&["127.0.0.1"]), vec![(IMAGE_PATH, Route::file(image))]);
    Served { server, ca_pem, sha256, _ca_dir: ca_dir }
}

impl Served {
    fn fetch(&self, dest: &Path) -> Result<stager::fetch::FetchedImage, FetchError> {
        let options = FetchOptions {
            sha256: Some(Sha256Hex::parse(&self.sha256).unwrap()),
            ca_certs: vec![self.ca_pem.clone()],
            max_retries: 1,
            retry_backoff: Duration::from_millis(10),
            connect_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(60),
            progress: ProgressMode::Lines,
            ..FetchOptions::default()
        };
        let source = ImageSource::parse(&self.server.url(IMAGE_PATH)).unwrap();
        fetch_image(&source, dest, &options)
    }
}

#[test]
fn an_image_larger_than_the_free_space_is_refused_before_a_byte_is_written() {
    let fs = SmallFs::new();
    let free = fs.free();
    // Larger than what even root could write there, so that without the check the
    // download would run into ENOSPC and leave a `.part`.
    let served = serve(image_bytes(fs.free_for_root() + MIB));

    let error = served.fetch(&fs.dest()).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, FetchError::NoRoom { .. }), "{text}");
    let expected_start = format!("not enough free space in {} for the image: ", fs.dir().display());
    assert!(text.starts_with(&expected_start), "{text}");
    assert!(text.contains("still to download + 32.0 MiB margin"), "{text}");
    assert!(
        text.ends_with("; free space there, or download the image to a larger file system yourself and pass its path as --image"),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");

    assert_eq!(fs.entries(), Vec::<String>::new(), "nothing may be left");
    assert!(!part_path(&fs.dest()).exists());
    assert_eq!(fs.free(), free);
    // The length comes from the answer to the download's own GET: one request, no retry.
    // (The server log counts what it queued, not what the client read.)
    let requests = served.server.served();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!((requests[0].path.as_str(), requests[0].range.as_deref()), (IMAGE_PATH, None));
}

#[test]
fn an_image_that_fits_with_the_margin_is_downloaded() {
    let fs = SmallFs::new();
    let len = fs.free() - MARGIN - MIB;
    let image = image_bytes(len);
    let served = serve(image.clone());

    let fetched = served.fetch(&fs.dest()).unwrap();
    assert_eq!(fetched.path, fs.dest());
    assert_eq!(std::fs::read(fs.dest()).unwrap(), image);
    assert_eq!(fs.entries(), vec!["resin.img".to_string()]);
}

/// With a `.part` already on the file system, only the rest of the image must fit: counting
/// the whole image again would ask for more than is free and refuse.
#[test]
fn a_resumed_download_needs_room_for_the_rest_only() {
    let fs = SmallFs::new();
    let len = fs.free() - MARGIN - MIB;
    let image = image_bytes(len);
    let had = 8 * MIB;
    std::fs::write(part_path(&fs.dest()), &image[..had as usize]).unwrap();
    assert!(fs.free() < len + MARGIN, "the whole image must not fit beside the .part");
    let served = serve(image.clone());

    served.fetch(&fs.dest()).unwrap();
    assert_eq!(std::fs::read(fs.dest()).unwrap(), image);
    let requests = served.server.served();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!((requests[0].range.as_deref(), requests[0].status), (Some("bytes=8388608-"), 206));
}
