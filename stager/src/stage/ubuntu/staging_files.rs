//! Writing the staging file system's contents (see docs/migration-contract.md) into its
//! mount point, each file fsynced, the image verified against its sha256 as it is copied.

use super::planning::{StagePlan, STAGING_DIR};
use crate::host::HostRoot;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

pub const GRUB_PC_DIR: &str = grub::bootcode::DEFAULT_GRUB_PC_DIR;
/// core.img's modules (the contract's list). `search` holds the `search` command itself
/// (`search_fs_uuid` only its `search.fs_uuid` variant). `normal` is deliberately NOT in
/// core: GRUB loads it from the prefix after the embedded config has set that prefix, and only
/// then does normal mode read `$prefix/i386-pc/command.lst`, through which `linux`/`initrd`
/// autoload (a core with `normal` built in read command.lst under the compiled-in prefix, on
/// the wrong device, and then knew no `linux` command). serial/terminal/echo let the embedded
/// config report on the console.
pub const CORE_IMG_MODULES: [&str; 8] =
    ["biosdisk", "part_msdos", "ext2", "search", "search_fs_uuid", "serial", "terminal", "echo"];

/// Where the plan sits inside the initramfs.
pub const PLAN_IN_INITRAMFS: &str = "etc/swapover/plan.json";

#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error("cannot {action} {path}: {source}", path = .path.display())]
    Io { action: &'static str, path: PathBuf, source: io::Error },
    #[error("the image changed while it was copied to staging (sha256 {actual}, planned {expected}); run the stager again")]
    ImageChanged { expected: String, actual: String },
    #[error("cannot build the initramfs: {0}")]
    Initramfs(#[from] initramfs::Error),
    #[error("cannot build core.img: {0}; install grub-pc-bin")]
    CoreImg(#[from] grub::bootcode::BootCodeError),
    #[error("the plan cannot be written: {0}")]
    Plan(#[from] plan::PlanError),
    #[error("{0} while {1} was copied to staging")]
    Interrupted(crate::interrupt::Interrupted, String),
}

fn io_err<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> StagingError + 'p {
    move |source| StagingError::Io { action, path: path.to_path_buf(), source }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), StagingError> {
    let mut file = File::create(path).map_err(io_err("create", path))?;
    file.write_all(bytes).map_err(io_err("write", path))?;
    file.sync_all().map_err(io_err("fsync", path))
}

/// Copies `from` to `to`, fsyncs, returns the sha256 of what was copied.
pub(crate) fn copy_file(from: &Path, to: &Path) -> Result<String, StagingError> {
    let mut source = File::open(from).map_err(io_err("open", from))?;
    let mut target = File::create(to).map_err(io_err("create", to))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("read", from)(e)),
        };
        hasher.update(&buf[..n]);
        target.write_all(&buf[..n]).map_err(io_err("write", to))?;
        // A signal stops a long copy (the image) within a MiB, for the rollback.
        let name = to.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        crate::interrupt::test_point(&format!("copy:{name}"));
        crate::interrupt::check().map_err(|i| StagingError::Interrupted(i, name))?;
    }
    target.sync_all().map_err(io_err("fsync", to))?;
    Ok(hex::encode(hasher.finalize()))
}

fn sync_dir(path: &Path) -> Result<(), StagingError> {
    File::open(path).and_then(|d| d.sync_all()).map_err(io_err("fsync", path))
}

/// The initramfs builder for this plan: migrator as /init, the kernel's modules, the plan.
pub fn initramfs_builder(
    sp: &StagePlan,
    root: &HostRoot,
    migrator: &[u8],
    plan_json: &str,
) -> initramfs::InitramfsBuilder {
    let compression = match &sp.kernel.config {
        Some(config) => initramfs::Compression::best_supported(config),
        None => initramfs::Compression::Gzip,
    };
    initramfs::InitramfsBuilder::new()
        .init(migrator.to_vec())
        .modules(root.path(&sp.kernel.module_tree), sp.initramfs.wanted.clone())
        .data_file(PLAN_IN_INITRAMFS, plan_json.as_bytes().to_vec())
        .compression(compression)
}

/// Writes everything under `<mount>/swapover`; returns the staged paths (relative to the mount).
pub fn write_all(
    mount: &Path,
    sp: &StagePlan,
    root: &HostRoot,
    migrator: &[u8],
) -> Result<Vec<String>, StagingError> {
    let dir = mount.join(STAGING_DIR.trim_start_matches('/'));
    let grub_dir = dir.join("grub");
    let modules_dir = grub_dir.join("i386-pc");
    std::fs::create_dir_all(&modules_dir).map_err(io_err("create", &modules_dir))?;
    let mut staged = Vec::new();
    let plan_json = sp.plan.to_json_pretty()?;

    copy_file(&root.path(&sp.kernel.vmlinuz), &dir.join("vmlinuz"))?;
    staged.push("vmlinuz".to_string());

    let initramfs_path = dir.join("initramfs.img");
    let report =
        initramfs_builder(sp, root, migrator, &plan_json).write_to_path(&initramfs_path)?;
    log::info!(
        "initramfs: {} bytes ({:?}), {} modules",
        report.archive_bytes,
        report.compression,
        report.modules.len()
    );
    staged.push("initramfs.img".to_string());

    write_file(&dir.join("plan.json"), plan_json.as_bytes())?;
    staged.push("plan.json".to_string());

    let image_target = dir.join(&sp.plan.image.file);
    let copied = copy_file(&sp.image_path, &image_target)?;
    if copied != sp.plan.image.compressed_sha256.0 {
        return Err(StagingError::ImageChanged {
            expected: sp.plan.image.compressed_sha256.0.clone(),
            actual: copied,
        });
    }
    staged.push(sp.plan.image.file.clone());

    write_file(&dir.join("config.json"), &sp.config_bytes)?;
    staged.push("config.json".to_string());

    let pc_dir = root.path(GRUB_PC_DIR);
    copy_file(&pc_dir.join("boot.img"), &grub_dir.join("boot.img"))?;
    let entries = std::fs::read_dir(&pc_dir).map_err(io_err("list", &pc_dir))?;
    for entry in entries {
        let entry = entry.map_err(io_err("list", &pc_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".mod") || name.ends_with(".lst") {
            copy_file(&entry.path(), &modules_dir.join(&name))?;
        }
    }
    let embedded = grub_dir.join("core-embedded.cfg");
    write_file(&embedded, sp.core_img_config.as_bytes())?;
    let core = grub_dir.join("core.img");
    grub::bootcode::build_core_img_with_config(
        &format!("{STAGING_DIR}/grub"),
        &CORE_IMG_MODULES,
        &embedded,
        &core,
    )?;
    File::open(&core).and_then(|f| f.sync_all()).map_err(io_err("fsync", &core))?;
    write_file(&grub_dir.join("grub.cfg"), sp.staging_grub_cfg.as_bytes())?;
    staged.extend(
        ["grub/boot.img", "grub/core.img", "grub/i386-pc/", "grub/grub.cfg"].map(String::from),
    );

    for d in [&modules_dir, &grub_dir, &dir, &mount.to_path_buf()] {
        sync_dir(d)?;
    }
    Ok(staged)
}
