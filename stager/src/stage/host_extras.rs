//! Host facts only staging needs (beyond [`crate::host::HostFacts`]): the running kernel
//! and its modules, the old root's file system UUID, network settings, the hostname, and
//! the staging partition as a region of a file the stager can write.

use super::refusal::RefusalText;
use crate::host::block::BlockDevice;
use crate::host::HostRoot;
use plan::Bytes;
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

/// The running kernel the migration environment boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelFacts {
    /// `uname -r`.
    pub release: String,
    /// `/boot/vmlinuz-<release>` (host path).
    pub vmlinuz: String,
    pub vmlinuz_size: Bytes,
    /// `/lib/modules/<release>` (host path).
    pub module_tree: String,
    /// `/boot/config-<release>` text, when present (decides the initramfs compression).
    pub config: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{}", self.text())]
pub enum HostExtraError {
    NoKernelImage { release: String, path: String },
    NoModuleTree { release: String, path: String },
    Unreadable { what: &'static str, device: String, problem: String },
}

impl HostExtraError {
    /// What is missing on the host and, where there is one, what to do about it, kept apart.
    pub fn text(&self) -> RefusalText {
        match self {
            HostExtraError::NoKernelImage { release, path } => RefusalText::new(
                format!("the running kernel {release} has no {path} on this host"),
                "install the kernel image package or boot the kernel that is installed".into(),
            ),
            HostExtraError::NoModuleTree { release, path } => RefusalText::new(
                format!("the running kernel {release} has no module tree {path}"),
                "reinstall its linux-modules package".into(),
            ),
            HostExtraError::Unreadable { what, device, problem } => {
                RefusalText::problem_only(format!("{what} of {device} cannot be read: {problem}"))
            }
        }
    }
}

pub fn running_kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn kernel(root: &HostRoot, release: &str) -> Result<KernelFacts, HostExtraError> {
    let vmlinuz = format!("/boot/vmlinuz-{release}");
    let meta = std::fs::metadata(root.path(&vmlinuz)).map_err(|_| {
        HostExtraError::NoKernelImage { release: release.into(), path: vmlinuz.clone() }
    })?;
    let module_tree = format!("/lib/modules/{release}");
    if !root.path(format!("{module_tree}/modules.dep")).is_file() {
        return Err(HostExtraError::NoModuleTree { release: release.into(), path: module_tree });
    }
    Ok(KernelFacts {
        release: release.to_string(),
        vmlinuz,
        vmlinuz_size: Bytes(meta.len()),
        module_tree,
        config: root.read_to_string(format!("/boot/config-{release}")).ok(),
    })
}

/// A partition as the stager writes it: a block device node (offset 0), or in fixture
/// trees the whole-disk image file at the partition's offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    /// Path as the stager opens it (under the host root).
    pub file: PathBuf,
    pub offset: Bytes,
    pub size: Bytes,
    /// The host's name for it, e.g. `/dev/sda5` (for swapoff/swapon and messages).
    pub host_path: String,
}

impl Region {
    /// The partition `device`: its own node when that is a block device, else the disk.
    pub fn of_partition(root: &HostRoot, device: &BlockDevice) -> Region {
        let own = root.path(device.dev_path());
        let size = device.size.bytes();
        let is_block =
            std::fs::metadata(&own).map(|m| m.file_type().is_block_device()).unwrap_or(false);
        match (&device.parent_disk, device.start) {
            (Some(disk), Some(start)) if !is_block => Region {
                file: root.path(format!("/dev/{disk}")),
                offset: start.bytes(),
                size,
                host_path: device.dev_path(),
            },
            _ => Region { file: own, offset: Bytes(0), size, host_path: device.dev_path() },
        }
    }

    pub fn read_at(&self, at: Bytes, len: usize) -> std::io::Result<Vec<u8>> {
        let mut file = std::fs::File::open(&self.file)?;
        file.seek(SeekFrom::Start(self.offset.get() + at.get()))?;
        let mut buf = vec![0u8; len];
        file.read_exact(&mut buf)?;
        Ok(buf)
    }
}

/// The ext2/3/4 UUID in the superblock (1024 bytes in, UUID at 104, magic 0xEF53 at 56).
pub fn ext_fs_uuid(region: &Region) -> Result<String, HostExtraError> {
    let unreadable = |problem: String| HostExtraError::Unreadable {
        what: "the ext4 superblock",
        device: region.host_path.clone(),
        problem,
    };
    let head = region
        .read_at(Bytes(0), resin_image::EXT_UUID_BYTES)
        .map_err(|e| unreadable(e.to_string()))?;
    resin_image::ext_uuid(&head).ok_or_else(|| unreadable("no ext2/3/4 magic".into()))
}

/// A fresh random UUID for the staging file system (from the kernel's random source).
pub fn new_uuid() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(uuid::Builder::from_random_bytes(bytes).into_uuid().hyphenated().to_string())
}

/// Network settings present on the host, by kind.
pub fn network_sources(root: &HostRoot) -> plan::NetworkSources {
    let present = |paths: &[&str]| -> Vec<String> {
        paths.iter().filter(|p| root.exists(p)).map(|p| p.to_string()).collect()
    };
    plan::NetworkSources {
        networkmanager: present(&["/etc/NetworkManager/system-connections"]),
        wpa_supplicant: present(&[
            "/etc/wpa_supplicant/wpa_supplicant.conf",
            "/etc/wpa_supplicant.conf",
        ]),
        ifupdown: present(&["/etc/network/interfaces", "/etc/network/interfaces.d"]),
        connman: present(&["/var/lib/connman"]),
        config_json_network: false,
    }
}

pub fn hostname(root: &HostRoot) -> Option<String> {
    let name = root.read_to_string("/etc/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}
