//! `stager stage`: validate, fetch and verify, plan, run the backup hook, then execute with
//! an undo journal (see [`engine::execute`]). `--dry-run` stops after planning and prints the plan
//! and the steps, touching nothing on the host.
//!
//! Where the image goes before staging: a local `--image PATH` is verified in place; a URL
//! is downloaded (resumable) to `/var/lib/swapover/download/` on the old root, because the
//! image's partition table and device type must be read — and every refusal reached —
//! before swap is turned off. Streaming to staging after swapoff would make those checks
//! come after the first change. The download directory is a cache: a refusal leaves it.
//!
//! A URL download is named `resinos.download` whatever the URL says: its content decides
//! what it is ([`prepare`] turns a zip, gzip or flasher download into the `.img.xz` that is
//! staged, in the same cache, before the probe; a refusal after that removes it again).

pub mod backup_estimate;
pub mod config_json;
pub mod engine;
pub mod hook;
pub mod host_extras;
pub mod image_probe;
pub mod prepare;
pub mod refusal;
pub mod resinos1x;
pub mod ubuntu;

use crate::fetch::{self, FetchOptions, ImageSource};
use crate::host::{HostFacts, HostRoot};
use crate::state::StateStore;
use board_profiles::Profile;
use engine::execute::{ExecuteError, ExecuteOptions, ExecuteReport};
use engine::system::System;
use hook::{Hook, HookError, HookVerdict};
pub use refusal::Refusal;
use std::path::PathBuf;
use ubuntu::planning::StagePlan;

pub const DOWNLOAD_DIR: &str = "/var/lib/swapover/download";

#[derive(Debug, Clone)]
pub struct StageRequest {
    pub root: HostRoot,
    pub facts: HostFacts,
    pub profile: Profile,
    /// `--image`: an https URL or a local path.
    pub image: String,
    pub sha256: Option<String>,
    pub ca_certs: Vec<PathBuf>,
    pub config: PathBuf,
    pub backups: Vec<PathBuf>,
    pub hook: Option<Hook>,
    pub dry_run: bool,
    /// `uname -r` of the kernel the migration environment boots.
    pub kernel_release: String,
    /// The migrator binary's bytes (from the stager's trailer or `--migrator`).
    pub migrator: Vec<u8>,
    pub allow_unknown_device_type: bool,
    pub execute: ExecuteOptions,
}

#[derive(Debug)]
pub enum StageOutcome {
    /// `--dry-run`: the plan and the steps, as printed.
    DryRun {
        text: String,
        plan: Box<StagePlan>,
    },
    /// The backup hook asked to retry later; nothing was changed.
    NotNow,
    Staged {
        report: ExecuteReport,
        plan: Box<StagePlan>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("refused: {0}; nothing was changed")]
    Refused(#[from] Refusal),
    #[error("{0}; nothing on the host was changed")]
    Fetch(#[from] fetch::FetchError),
    #[error("{0}")]
    Hook(#[from] HookError),
    #[error("{0}")]
    Execute(#[from] ExecuteError),
}

impl StageError {
    pub fn exit_code(&self) -> i32 {
        match self {
            StageError::Refused(_) => crate::output::EXIT_REFUSED,
            _ => crate::output::EXIT_FAILED,
        }
    }
}

/// The file name of a URL download in [`DOWNLOAD_DIR`].
pub const DOWNLOAD_NAME: &str = "resinos.download";

/// Fetches (URL) or verifies (path) the image; returns the verified file.
fn fetch_image(req: &StageRequest) -> Result<fetch::FetchedImage, StageError> {
    let source = ImageSource::parse(&req.image)?;
    let sha256 = match &req.sha256 {
        Some(text) => Some(fetch::digest::parse_sha256(text)?),
        None => None,
    };
    let options =
        FetchOptions { sha256, ca_certs: req.ca_certs.clone(), ..FetchOptions::default() };
    let dest = match &source {
        ImageSource::Url(_) => {
            let dir = req.root.path(DOWNLOAD_DIR);
            std::fs::create_dir_all(&dir).map_err(|e| fetch::FetchError::io("create", &dir, e))?;
            dir.join(DOWNLOAD_NAME)
        }
        ImageSource::Path(path) => path.clone(),
    };
    Ok(fetch::fetch_image(&source, &dest, &options)?)
}

/// How a device of `profile` boots the staged image.
pub fn firmware_of(profile: &Profile) -> prepare::Firmware {
    match profile.boot_mode {
        board_profiles::BootMode::Bios => prepare::Firmware::Bios,
        board_profiles::BootMode::Uefi => prepare::Firmware::Uefi,
        board_profiles::BootMode::BoardFirmware => prepare::Firmware::Unknown,
    }
}

/// Prepares the verified download ([`prepare`]) in `root`'s download cache and probes the
/// result; a prepared file is removed again when the probe or `then` refuses.
pub fn prepare_and_probe<T, E: From<Refusal>>(
    root: &HostRoot,
    fetched: &fetch::FetchedImage,
    firmware: prepare::Firmware,
    then: impl FnOnce(&image_probe::ImageFacts) -> Result<T, E>,
) -> Result<T, E> {
    let cache = root.path(DOWNLOAD_DIR);
    let request = prepare::PrepareRequest {
        download: &fetched.path,
        download_sha256: fetched.sha256.as_str(),
        download_size: fetched.size,
        cache_dir: &cache,
        firmware,
        progress: fetch::ProgressMode::Auto,
    };
    let prepared = prepare::prepare(&request).map_err(Refusal::from)?;
    let result = image_probe::probe(&prepared.path)
        .map_err(|e| E::from(Refusal::from(e)))
        .and_then(|mut image| {
            image.origin = prepared.origin.clone();
            then(&image)
        });
    if result.is_err() {
        prepared.discard();
    }
    result
}

/// Validates and plans (reading only), as `--dry-run` and the real run share it.
pub fn plan_stage(req: &StageRequest) -> Result<StagePlan, StageError> {
    let store = StateStore::new(&req.root);
    if store.exists() {
        return Err(Refusal::AlreadyStaged { path: crate::state::STATE_FILE.into() }.into());
    }
    let wanted = ubuntu::gather::Wanted {
        config: &req.config,
        backups: &req.backups,
        kernel_release: &req.kernel_release,
        allow_unknown_device_type: req.allow_unknown_device_type,
    };
    let gathered =
        ubuntu::gather::gather(&req.root, &req.facts, &req.profile, &wanted, &req.migrator)?;
    let fetched = fetch_image(req)?;
    prepare_and_probe(&req.root, &fetched, firmware_of(&req.profile), |image| {
        Ok(ubuntu::planning::make_plan(&gathered, image)?)
    })
}

/// The steps `stage` would execute, for `--dry-run`.
pub fn steps_text(sp: &StagePlan, no_reboot: bool) -> String {
    let staging = &sp.staging.host_path;
    let mut steps = vec![
        format!("swapoff {staging}"),
        format!("save the first 4096 bytes of {staging} (swap signature, UUID {}) to {}", sp.swap_names.uuid, crate::state::SWAP_HEADER_BACKUP),
        format!("comment out the swap line of /etc/fstab (original kept in {})", crate::state::FSTAB_BACKUP),
        format!("mkfs.ext4 -L {} -U {} {staging}", ubuntu::planning::STAGING_LABEL, sp.plan.staging.fs_uuid),
        format!("mount {staging} and write {}/: vmlinuz ({}), initramfs.img (~{}, migrator as /init, {} modules, plan), plan.json, {} ({}), config.json, grub/ (boot.img, core.img, i386-pc, grub.cfg)",
            ubuntu::planning::STAGING_DIR, sp.budget.kernel, sp.budget.initramfs, sp.initramfs.load_order.len(), sp.plan.image.file, sp.plan.image.compressed_size),
        format!("fsync and unmount {staging}"),
        format!("write {} with the entry '{}' (--id {})", ubuntu::planning::CUSTOM_CFG, ubuntu::planning::ENTRY_TITLE, ubuntu::planning::ENTRY_ID),
        format!("arm next_entry={} in {} (one boot only)", ubuntu::planning::ENTRY_ID, ubuntu::planning::GRUBENV),
        "sync".to_string(),
    ];
    steps.push(if no_reboot {
        "do not reboot (--no-reboot): the migration starts at the next reboot".into()
    } else {
        "reboot".into()
    });
    let mut out = String::new();
    for line in &sp.origin {
        out.push_str(&format!("\n{line}"));
    }
    if !sp.origin.is_empty() {
        out.push('\n');
    }
    out.push_str("\nSteps (each recorded in /var/lib/swapover/state.json before it is done, undone in reverse on failure):\n");
    for (i, step) in steps.iter().enumerate() {
        out.push_str(&format!("  {:>2}. {step}\n", i + 1));
    }
    out.push_str(&format!(
        "\nStaging space: {} needed (kernel {}, initramfs {}, image+config+GRUB {}, backup {}, margin {}) of {}.\n",
        sp.budget.needed, sp.budget.kernel, sp.budget.initramfs, sp.budget.image, sp.budget.backup, sp.budget.margin, sp.budget.have
    ));
    for note in &sp.notes {
        out.push_str(&format!("Note: {note}\n"));
    }
    out
}

/// The whole `stage` command.
pub fn run_stage(req: &StageRequest, system: &mut dyn System) -> Result<StageOutcome, StageError> {
    let sp = plan_stage(req)?;
    if req.dry_run {
        let text = format!("{}{}", sp.plan.render_text(), steps_text(&sp, req.execute.no_reboot));
        return Ok(StageOutcome::DryRun { text, plan: Box::new(sp) });
    }
    if let Some(hook) = &req.hook {
        if hook::run(hook)? == HookVerdict::NotNow {
            log::info!("the backup hook asked to retry later; nothing was changed");
            return Ok(StageOutcome::NotNow);
        }
    }
    let report = ubuntu::steps::execute(&req.root, &sp, &req.migrator, system, &req.execute)?;
    Ok(StageOutcome::Staged { report, plan: Box::new(sp) })
}
