//! The relay: how a migration whose staging area lies inside the partition written last
//! (resinOS 1.x: staging is the spare root resin-updt, inside 2.x resin-rootB) survives a
//! power cut during and after that write, which destroys the journal.
//!
//! Before staging is sealed, finalize writes to `swapover-relay/` on the new resin-data
//! everything the rest of the migration needs: the written-last partition's non-zero
//! bytes, the final head (first MiB with the final partition table) and the firmware
//! boot option to remove. The manifest is written last, so a relay without one is
//! incomplete and ignored. A migrator that finds its staging file system gone (it no
//! longer mounts, or holds another file system) looks for the relay and finishes from it:
//! writes the partition again, commits the head, removes the boot option and the relay.
//! Every one of those is idempotent, so a power cut anywhere in them repeats them.

use std::path::{Path, PathBuf};

use efivars::{EfiVars, PermanentBoot};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::written_last::HeldBytes;
use crate::flash::HeldRange;

/// The relay directory at resin-data's root.
pub const RELAY_DIR: &str = "swapover-relay";
const MANIFEST_FILE: &str = "relay.json";
const WRITTEN_LAST_FILE: &str = "written-last.bin";
const HEAD_FILE: &str = "head.bin";

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("cannot {action} {path}: {reason}")]
    Io { action: &'static str, path: PathBuf, reason: String },
    #[error("the relay {path} belongs to plan {found}, not this one ({expected}); remove it, then re-stage")]
    OtherPlan { path: PathBuf, found: String, expected: String },
    #[error("the relay file {path} does not match its manifest (sha256 {actual}, expected {expected}); resin-data is damaged, reflash the device by hand")]
    Damaged { path: PathBuf, expected: String, actual: String },
    #[error(transparent)]
    WrittenLast(#[from] super::written_last::WrittenLastError),
}

/// What the relay's manifest says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub plan_id: String,
    pub written_last: String,
    pub start: u64,
    pub end: u64,
    pub written_last_sha256: String,
    pub head_sha256: String,
    /// The firmware boot option that brings the migrator back (UEFI route).
    pub permanent_boot: Option<PermanentBoot>,
}

/// A complete relay, read back and checked.
#[derive(Debug)]
pub struct Relay {
    pub manifest: Manifest,
    pub held: HeldBytes,
    pub head: Vec<u8>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(String) -> RelayError {
    let path = path.to_path_buf();
    move |reason| RelayError::Io { action, path, reason }
}

/// Write the relay under `data_root` (the new resin-data, mounted), manifest last.
pub fn write(
    data_root: &Path,
    plan_id: &str,
    held: &HeldBytes,
    head: &[u8],
    permanent_boot: Option<&PermanentBoot>,
) -> Result<(), RelayError> {
    let dir = data_root.join(RELAY_DIR);
    let manifest_path = dir.join(MANIFEST_FILE);
    // An older, possibly different relay stops counting before its files change.
    match std::fs::remove_file(&manifest_path) {
        Ok(()) => crate::durable::sync_parent(&manifest_path)
            .map_err(|e| io("sync", &dir)(e.to_string()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("remove", &manifest_path)(e.to_string())),
    }
    std::fs::create_dir_all(&dir).map_err(|e| io("create", &dir)(e.to_string()))?;
    crate::durable::sync_parent(&dir).map_err(|e| io("sync", data_root)(e.to_string()))?;
    let granules = held.encode_granules();
    let durably = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        crate::durable::write_durably(&path, bytes).map_err(|e| io("write", &path)(e.to_string()))
    };
    durably(WRITTEN_LAST_FILE, &granules)?;
    durably(HEAD_FILE, head)?;
    let manifest = Manifest {
        plan_id: plan_id.to_string(),
        written_last: held.name.clone(),
        start: held.range.start,
        end: held.range.end,
        written_last_sha256: sha256_hex(&granules),
        head_sha256: sha256_hex(head),
        permanent_boot: permanent_boot.cloned(),
    };
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| io("encode", &manifest_path)(e.to_string()))?;
    durably(MANIFEST_FILE, &json)?;
    log::info!(
        "finalize: relay written to {} ({} bytes of {}, head, manifest)",
        dir.display(),
        granules.len(),
        held.name
    );
    Ok(())
}

/// The complete relay of this plan under `data_root`; `None` when there is none (or only an
/// incomplete one, without manifest).
pub fn read(data_root: &Path, plan_id: &str) -> Result<Option<Relay>, RelayError> {
    let dir = data_root.join(RELAY_DIR);
    let manifest_path = dir.join(MANIFEST_FILE);
    let json = match std::fs::read(&manifest_path) {
        Ok(json) => json,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("read", &manifest_path)(e.to_string())),
    };
    let manifest: Manifest =
        serde_json::from_slice(&json).map_err(|e| io("parse", &manifest_path)(e.to_string()))?;
    if manifest.plan_id != plan_id {
        return Err(RelayError::OtherPlan {
            path: dir,
            found: manifest.plan_id,
            expected: plan_id.to_string(),
        });
    }
    let checked = |name: &str, expected: &str| -> Result<Vec<u8>, RelayError> {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| io("read", &path)(e.to_string()))?;
        let actual = sha256_hex(&bytes);
        if actual != expected {
            return Err(RelayError::Damaged { path, expected: expected.to_string(), actual });
        }
        Ok(bytes)
    };
    let granules = checked(WRITTEN_LAST_FILE, &manifest.written_last_sha256)?;
    let head = checked(HEAD_FILE, &manifest.head_sha256)?;
    let range = HeldRange { start: manifest.start, end: manifest.end };
    let held = HeldBytes::decode_granules(range, &manifest.written_last, &granules)?;
    Ok(Some(Relay { manifest, held, head }))
}

/// Remove the relay (idempotent).
pub fn remove(data_root: &Path) -> Result<(), RelayError> {
    let dir = data_root.join(RELAY_DIR);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {
            crate::durable::sync_parent(&dir).map_err(|e| io("sync", data_root)(e.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("remove", &dir)(e.to_string())),
    }
}

/// After the head commit: take the firmware option out of `BootOrder` and delete it, then
/// remove the relay — in that order, so that while the option can still start the
/// migrator, the relay is there for it to finish from again. Failures are logged: resinOS
/// is on the disk and its head committed; what is left is a dead boot entry or a stale
/// `swapover-relay/` on resin-data.
pub fn complete(vars: &EfiVars, data_root: &Path, permanent_boot: Option<&PermanentBoot>) {
    if let Some(boot) = permanent_boot {
        if let Err(e) = boot.remove(vars) {
            log::warn!(
                "finalize: cannot remove the migration's boot option Boot{:04X} ({e}); the relay stays so that it can finish again; remove it with efibootmgr -b {:04X} -B",
                boot.boot_number,
                boot.boot_number
            );
            return;
        }
    }
    match remove(data_root) {
        Ok(()) => log::info!("finalize: relay removed"),
        Err(e) => log::warn!(
            "finalize: cannot remove the relay ({e}); delete {RELAY_DIR}/ on resin-data by hand"
        ),
    }
}
