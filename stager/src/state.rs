//! The stager's undo journal, `/var/lib/swapover/state.json` on the old root: every change
//! is recorded here *before* it is made (status `begun`) and marked `done` after, so that a
//! failure — or a later `stager abort` — can undo exactly what was (or may have been) done,
//! in reverse order. The file's existence means "a migration is staged or half-staged".

use crate::host::HostRoot;
use crate::stage::host_extras::Region;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "/var/lib/swapover/state.json";
pub const SWAP_HEADER_BACKUP: &str = "/var/lib/swapover/swap-header.orig";
pub const FSTAB_BACKUP: &str = "/var/lib/swapover/fstab.orig";
pub const MOUNT_POINT: &str = "/var/lib/swapover/mnt";
pub const STATE_FORMAT: u32 = 1;

/// One change the stager makes, with what undoing it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Change {
    /// Swap turned off on `device` (undo: swapon).
    SwapOff { device: String },
    /// The swap partition's first page copied to [`SWAP_HEADER_BACKUP`] (undo: nothing; the
    /// copy is what undoing `mkfs` writes back).
    SaveSwapHeader { backup: String },
    /// fstab's swap line(s) commented out; `backup` holds the original bytes.
    CommentFstab { fstab: String, backup: String },
    /// The staging partition made available as a block device (a loop device over an image
    /// file in tests; the partition node itself on a device).
    Attach { device: Option<String> },
    /// `mkfs.ext4` on the staging partition (undo: write the saved swap header back).
    Mkfs { uuid: String },
    /// Staging mounted at `mount_point` (undo: unmount).
    Mount { mount_point: String },
    /// The staging files written (undone by undoing `mkfs`).
    WriteStaging,
    /// Staging unmounted (undo: nothing).
    Unmount,
    /// custom.cfg written; `backup` holds its original bytes when it existed (undo: put them
    /// back, or remove the file).
    WriteCustomCfg { path: String, backup: Option<String> },
    /// next_entry armed in grubenv (undo: the record puts the file back byte for byte).
    ArmGrubenv { undo: Option<grub::UndoRecord> },
    /// resinOS 1.x: the staging directory `dir` written into the spare root's own file
    /// system, which is otherwise left as it was (undo: remove the directory).
    WriteStagingDir { dir: String },
    /// resinOS 1.x: the migration kernel and initramfs written to the directory `dir` on the
    /// mounted boot partition (undo: remove the directory).
    WriteBootDir { dir: String },
    /// resinOS 1.x on UEFI: a `Boot####` option and `BootNext` written in `efivars` (undo:
    /// the record removes our option and puts BootNext back as it was).
    ArmUefiBootNext { efivars: String, undo: Option<efivars::UefiUndo> },
    /// resinOS 1.x on U-Boot: `uEnv.txt` on the boot partition mounted at `boot_mount`
    /// copied to `swapover/uEnv.txt.1x` and replaced by the trial that runs at the boot
    /// counting `trial_count` (undo: the copy renamed back).
    ArmUbootTrial { boot_mount: String, trial_count: u32 },
    /// Raspberry Pi: the MBR type byte of primary partition `number` of `disk` (the path
    /// given as `--disk`) set to FAT32 LBA; `old` is the byte before (undo: write it back).
    SetPartitionType { disk: String, number: u32, old: u8 },
    /// Raspberry Pi: the spare formatted as an empty FAT32 labelled resin-updt with
    /// `volume_id` (blkid's `XXXX-XXXX`) and `bytes_per_cluster`. Its ext3 cannot come back
    /// (contract R1): undo formats it empty again, which also removes whatever was written.
    FormatSpare { volume_id: String, bytes_per_cluster: u32 },
    /// Raspberry Pi: the trial set and the staging directory written into the spare's FAT
    /// (undone by undoing `format-spare`).
    WritePiTrial,
    /// Raspberry Pi: the firmware told to boot `partition` once: `reboot_part` written when
    /// the kernel has it (undo: write 0 there), the partition given to RESTART2 at reboot.
    ArmPiTrial { reboot_part: Option<String>, partition: u32 },
    /// resinOS 1.x: the device marked for a supervisor update in the resin API (undo: set
    /// its supervisor release back, with the key read again from `config`).
    MarkSupervisorUpdate {
        config: String,
        ca_cert: Option<String>,
        mark: crate::stage::resinos1x::supervisor_mark::Mark,
    },
}

impl Change {
    /// Step name, as in messages and `SWAPOVER_FAIL_AFTER`.
    pub fn name(&self) -> &'static str {
        match self {
            Change::SwapOff { .. } => "swapoff",
            Change::SaveSwapHeader { .. } => "save-swap-header",
            Change::CommentFstab { .. } => "comment-fstab",
            Change::Attach { .. } => "attach",
            Change::Mkfs { .. } => "mkfs",
            Change::Mount { .. } => "mount",
            Change::WriteStaging => "write-staging",
            Change::Unmount => "unmount",
            Change::WriteCustomCfg { .. } => "write-custom-cfg",
            Change::ArmGrubenv { .. } => "arm-grubenv",
            Change::WriteStagingDir { .. } => "write-staging-dir",
            Change::WriteBootDir { .. } => "write-boot-dir",
            Change::ArmUefiBootNext { .. } => "arm-uefi-bootnext",
            Change::ArmUbootTrial { .. } => "arm-uboot-trial",
            Change::MarkSupervisorUpdate { .. } => "mark-supervisor-update",
            Change::SetPartitionType { .. } => "set-partition-type",
            Change::FormatSpare { .. } => "format-spare",
            Change::WritePiTrial => "write-pi-trial",
            Change::ArmPiTrial { .. } => "arm-pi-trial",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Progress {
    /// Recorded before the change: it may be partly done.
    Begun,
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub change: Change,
    pub progress: Progress,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageState {
    pub format: u32,
    pub stager_version: String,
    /// The staging partition as the stager wrote it on the boot it staged; its device path
    /// is information only — disk names can change at the next boot. Used as is only for a
    /// state file written before `staging_partition` existed.
    pub staging: Region,
    /// The staging partition by identity (disk identifier, start, size): status, abort and
    /// rollback find its current device node from this ([`crate::stage::engine::current_staging`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging_partition: Option<plan::PartitionIdentity>,
    pub staging_fs_uuid: String,
    /// The swap UUID before staging (restored by undoing `mkfs`).
    pub swap_uuid: String,
    /// Set once every change is done and the device is armed.
    pub armed: bool,
    pub entries: Vec<Entry>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot {action} {path}: {source}; check that / is writable")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path} is not a stager state file ({problem}); move it away only if no migration is staged", path = .path.display())]
    Corrupt { path: PathBuf, problem: String },
}

/// Where the state lives for one host root.
#[derive(Debug, Clone)]
pub struct StateStore {
    pub root: HostRoot,
}

impl StateStore {
    pub fn new(root: &HostRoot) -> Self {
        StateStore { root: root.clone() }
    }

    pub fn path(&self) -> PathBuf {
        self.root.path(STATE_FILE)
    }

    pub fn exists(&self) -> bool {
        self.path().exists()
    }

    pub fn load(&self) -> Result<Option<StageState>, StateError> {
        let path = self.path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Io { action: "read", path, source }),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StateError::Corrupt { path, problem: e.to_string() })
    }

    /// Writes the state durably (temp file, fsync, rename, fsync of the directory).
    pub fn save(&self, state: &StageState) -> Result<(), StateError> {
        let path = self.path();
        let text = serde_json::to_vec_pretty(state)
            .map_err(|e| StateError::Corrupt { path: path.clone(), problem: e.to_string() })?;
        write_durably(&path, &text).map_err(|source| StateError::Io {
            action: "write",
            path,
            source,
        })
    }

    pub fn remove(&self) -> Result<(), StateError> {
        let path = self.path();
        match std::fs::remove_file(&path) {
            Ok(()) => sync_dir_of(&path).map_err(|source| StateError::Io {
                action: "sync the directory of",
                path,
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Io { action: "remove", path, source }),
        }
    }
}

/// Replaces `path` with `bytes`: `<path>.swapover-new`, fsync, rename, fsync the directory.
/// Creates the parent directory when missing.
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut temp = path.as_os_str().to_owned();
    temp.push(".swapover-new");
    let temp = PathBuf::from(temp);
    {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    if let Ok(meta) = std::fs::metadata(path) {
        std::fs::set_permissions(&temp, meta.permissions())?;
    }
    std::fs::rename(&temp, path)?;
    sync_dir_of(path)
}

pub fn sync_dir_of(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => std::fs::File::open(parent)?.sync_all(),
        _ => Ok(()),
    }
}
