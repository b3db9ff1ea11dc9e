//! Reading what planning needs, in the order that lets cheap refusals come first: host
//! checks, GRUB, config.json, backup paths, kernel and initramfs — all before the image is
//! fetched and probed.

use super::planning::{self, BackupPath, Gathered, InitramfsEstimate, CUSTOM_CFG, GRUBENV};
use crate::host::{HostFacts, HostRoot};
use crate::stage::backup_estimate;
use crate::stage::config_json;
use crate::stage::host_extras::{self, Region};
use crate::stage::refusal::Refusal;
use board_profiles::Profile;
use plan::Bytes;
use std::path::{Path, PathBuf};

/// Room for the plan inside the initramfs, added to the measured archive size.
const PLAN_ALLOWANCE: u64 = 64 * 1024;

/// What the request says, besides the host.
#[derive(Debug, Clone)]
pub struct Wanted<'a> {
    pub config: &'a Path,
    pub backups: &'a [PathBuf],
    pub kernel_release: &'a str,
    pub allow_unknown_device_type: bool,
}

/// Measures the initramfs the stager will build (uncompressed) and resolves its modules.
pub fn initramfs_estimate(
    root: &HostRoot,
    module_tree: &str,
    profile: &Profile,
    migrator: &[u8],
) -> Result<InitramfsEstimate, Refusal> {
    let tree_dir = root.path(module_tree);
    let tree =
        initramfs::ModuleTree::open(&tree_dir).map_err(|e| Refusal::Initramfs(e.to_string()))?;
    let mut wanted = Vec::new();
    let mut unknown = Vec::new();
    for name in planning::wanted_modules(profile) {
        match tree.resolve(std::slice::from_ref(&name)) {
            Ok(_) => wanted.push(name),
            Err(_) => unknown.push(name),
        }
    }
    let set = tree.resolve(&wanted).map_err(|e| Refusal::Initramfs(e.to_string()))?;
    let report = initramfs::InitramfsBuilder::new()
        .init(migrator.to_vec())
        .modules(tree_dir, wanted.clone())
        .write_to(std::io::sink())
        .map_err(|e| Refusal::Initramfs(e.to_string()))?;
    Ok(InitramfsEstimate {
        wanted,
        unknown,
        load_order: set.load_order.iter().map(|m| m.name.clone()).collect(),
        size: Bytes(report.cpio_bytes + PLAN_ALLOWANCE),
    })
}

/// Everything but the image, refusing at the first problem.
pub fn gather(
    root: &HostRoot,
    facts: &HostFacts,
    profile: &Profile,
    wanted: &Wanted<'_>,
    migrator: &[u8],
) -> Result<Gathered, Refusal> {
    planning::precheck_host(facts, profile)?;
    let grub_cfg = root.path(crate::host::grub::GRUB_CFG);
    let report = grub::inspect_file(&grub_cfg).map_err(|e| Refusal::GrubCfg(e.to_string()))?;
    planning::grub_route(&report)?;
    let config = config_json::read(wanted.config)?;
    config.require_device_type(&profile.device_type)?;
    let mut backups = Vec::new();
    for path in wanted.backups {
        let estimate = backup_estimate::estimate(&root.path(path), path)?;
        backups.push(BackupPath { path: path.clone(), estimate });
    }
    let kernel = host_extras::kernel(root, wanted.kernel_release)?;
    let initramfs = initramfs_estimate(root, &kernel.module_tree, profile, migrator)?;
    let root_device = facts.root_device.clone().map_err(Refusal::HostFact)?;
    let swap_device = facts.swap_device.clone().map_err(Refusal::HostFact)?;
    let old_root_fs_uuid = host_extras::ext_fs_uuid(&Region::of_partition(root, &root_device))?;
    let staging_fs_uuid =
        host_extras::new_uuid().map_err(|e| Refusal::HostFact(format!("no random UUID: {e}")))?;
    let disk_size = disk_size(root, facts)?;
    let next_entry_before = grub::GrubEnv::load(&root.path(GRUBENV))
        .ok()
        .and_then(|env| env.get("next_entry").map(str::to_string));
    Ok(Gathered {
        facts: facts.clone(),
        profile: profile.clone(),
        grub: report,
        next_entry_before,
        custom_cfg_original: std::fs::read(root.path(CUSTOM_CFG)).ok(),
        config,
        backups,
        kernel,
        initramfs,
        old_root_fs_uuid,
        staging_fs_uuid,
        staging: Region::of_partition(root, &swap_device),
        network: host_extras::network_sources(root),
        hostname: host_extras::hostname(root),
        allow_unknown_device_type: wanted.allow_unknown_device_type,
        disk_size,
    })
}

/// The whole disk's size in its logical sectors, from sysfs.
pub fn disk_size(root: &HostRoot, facts: &HostFacts) -> Result<plan::Sectors, Refusal> {
    let disk = facts.root_disk.clone().map_err(Refusal::HostFact)?;
    let device = crate::host::block::by_name(root, &disk.name)
        .map_err(|e| Refusal::HostFact(e.to_string()))?;
    let sector = disk.table.sector_size.get().max(1);
    Ok(plan::Sectors(device.size.bytes().get() / sector))
}
