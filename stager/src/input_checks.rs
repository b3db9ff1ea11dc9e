//! `stager check --profile P --image I --config C`: the checks of what the command line
//! gives, made from the same planning functions `stage` refuses with (no rule is written
//! twice). Each planning result is turned into a [`Check`] by a small adapter: a
//! [`Refusal`]'s problem is the check's reason, its fix the check's fix.

use crate::checks::{self, Check, CheckId, CheckInputs, CheckReport, Status};
use crate::fetch::digest::hash_file;
use crate::fetch::ImageSource;
use crate::host::{HostFacts, HostRoot};
use crate::migrator_payload::PayloadError;
use crate::stage::image_probe::{self, ImageFacts};
use crate::stage::prepare::{self, Prepared};
use crate::stage::refusal::RefusalText;
use crate::stage::ubuntu::gather;
use crate::stage::ubuntu::planning::{self, StagePlan};
use crate::stage::{config_json, Refusal};
use board_profiles::Profile;
use plan::{Bytes, TableKind};
use std::path::{Path, PathBuf};

/// What `check` was given besides the host.
#[derive(Debug)]
pub struct CheckRequest {
    pub profile: Option<Profile>,
    /// `--image`: an https URL or a local path.
    pub image: Option<String>,
    pub config: Option<PathBuf>,
    /// Requirements given as flags; they win over the profile's and the image's.
    pub flags: CheckInputs,
    /// `uname -r` of the kernel the migration environment would boot.
    pub kernel_release: String,
    /// The migrator's bytes (sizes the initramfs), or why they cannot be had.
    pub migrator: Result<Vec<u8>, PayloadError>,
}

/// A failed check from a refusal's two parts: its problem is the reason, its fix the fix.
fn fail_with(id: CheckId, found: impl Into<String>, text: RefusalText) -> Check {
    let fix = text.fix.unwrap_or_else(|| "see the reason".to_string());
    Check::fail(id, found, text.problem, fix)
}

/// Where the image's layout ends, as `make_plan` compares it with the old root's space.
fn image_end(image: &ImageFacts) -> Bytes {
    Bytes(image.table.end().0.saturating_mul(512))
}

/// The profile's typical layout (head alignment, every partition's typical size, and an
/// alignment gap before each MBR logical partition): an estimate for when no image is given.
pub fn typical_layout_size(profile: &Profile) -> Option<Bytes> {
    let align = profile.target.alignment_kib.checked_mul(1024)?;
    let logicals = match profile.target.partition_table {
        TableKind::Mbr => profile.target.partitions.iter().filter(|p| p.order > 3).count() as u64,
        TableKind::Gpt => 0,
    };
    let mut total = align.checked_add(align.checked_mul(logicals)?)?;
    for partition in &profile.target.partitions {
        total = total.checked_add(partition.typical_size().ok()?.get())?;
    }
    Some(Bytes(total))
}

/// The local image's facts, or the `image` check that says why there are none. A zip, gzip
/// or flasher download is prepared first, as `stage` does (in the download cache; the
/// caller discards the prepared file when the checks are done).
fn probe_image(
    root: &HostRoot,
    text: &str,
    profile: Option<&Profile>,
) -> Result<(ImageFacts, Prepared), Check> {
    let found = text.to_string();
    let path = match ImageSource::parse(text) {
        Ok(ImageSource::Path(path)) => path,
        Ok(ImageSource::Url(_)) => {
            return Err(Check::not_evaluated(
                CheckId::Image,
                found,
                "the image's contents (check downloads nothing)",
                "download the image and pass its local path to --image",
            ))
        }
        Err(e) => return Err(fail_with(CheckId::Image, found, e.text())),
    };
    let fail = |text: RefusalText| fail_with(CheckId::Image, found.clone(), text);
    let (sha256, size) = hash_file(&path).map_err(|e| fail(e.text()))?;
    let cache = root.path(crate::stage::DOWNLOAD_DIR);
    let request = prepare::PrepareRequest {
        download: &path,
        download_sha256: sha256.as_str(),
        download_size: Bytes(size),
        cache_dir: &cache,
        firmware: profile.map(crate::stage::firmware_of).unwrap_or(prepare::Firmware::Unknown),
        progress: crate::fetch::ProgressMode::Auto,
    };
    let prepared = prepare::prepare(&request).map_err(|e| fail(e.text()))?;
    match image_probe::probe(&prepared.path) {
        Ok(mut image) => {
            image.origin = prepared.origin.clone();
            Ok((image, prepared))
        }
        Err(e) => {
            prepared.discard();
            Err(fail(e.text()))
        }
    }
}

/// What the `image` check says besides "readable": which entry or inner image is staged.
fn image_reason(image: &ImageFacts) -> String {
    let mut parts = image.origin.clone();
    parts.push("an MBR image the stager can read".into());
    parts.join("; ")
}

fn image_found(image: &ImageFacts) -> String {
    format!(
        "{}: {} partitions, layout ends at {}, device type {}",
        image.path.display(),
        image.data_partitions().len(),
        image_end(image).rounded(),
        match &image.device_type {
            Ok(slug) => slug.clone(),
            Err(problem) => format!("unknown ({problem})"),
        }
    )
}

/// `image-device-type` and `image-layout`, from `planning::check_image`.
fn image_checks(image: &ImageFacts, profile: &Profile) -> [Check; 2] {
    let found = image_found(image);
    let device_type = match planning::check_image(image, profile, false) {
        Err(refusal @ (Refusal::ImageDeviceType { .. } | Refusal::ImageDeviceTypeUnknown(_))) => {
            fail_with(CheckId::ImageDeviceType, found.clone(), refusal.text())
        }
        _ => Check::pass(
            CheckId::ImageDeviceType,
            found.clone(),
            format!("profile {} expects {}", profile.name, profile.device_type),
        ),
    };
    // The layout rule alone: the same function with the device type taken as matching.
    let mut same_type = image.clone();
    same_type.device_type = Ok(profile.device_type.clone());
    let layout = match planning::check_image(&same_type, profile, false) {
        Ok(_) => Check::pass(
            CheckId::ImageLayout,
            found,
            format!(
                "profile {} expects {} partitions",
                profile.name,
                profile.target.partitions.len()
            ),
        ),
        Err(refusal) => fail_with(CheckId::ImageLayout, found, refusal.text()),
    };
    [device_type, layout]
}

fn config_check(path: &Path, profile: Option<&Profile>) -> Check {
    let id = CheckId::ConfigJson;
    let found = path.display().to_string();
    let facts = match config_json::read(path) {
        Ok(facts) => facts,
        Err(e) => return fail_with(id, found, Refusal::from(e).text()),
    };
    let found = format!("{found}: deviceType {}", facts.device_type);
    match profile {
        None => Check::not_evaluated(id, found, "the profile's device type", "pass --profile"),
        Some(profile) => match facts.require_device_type(&profile.device_type) {
            Ok(()) => Check::pass(
                id,
                found,
                format!("profile {} is for {}", profile.name, profile.device_type),
            ),
            Err(e) => fail_with(id, found, Refusal::from(e).text()),
        },
    }
}

/// `profile`: the profile's own refusals from `planning::precheck_host` (its source kind,
/// GPT disk vs MBR target); its boot mode and the host checks are reported on their own.
fn profile_check(facts: &HostFacts, profile: &Profile) -> Check {
    let found = format!(
        "profile {} ({}): {} source, target table {}",
        profile.name,
        profile.origin,
        profile.source.kind,
        match profile.target.partition_table {
            TableKind::Mbr => "MBR",
            TableKind::Gpt => "GPT",
        }
    );
    match planning::precheck_host(facts, profile) {
        Err(refusal @ (Refusal::NotAGrubHostProfile { .. } | Refusal::HostGpt { .. })) => {
            fail_with(CheckId::Profile, found, refusal.text())
        }
        _ => Check::pass(CheckId::Profile, found, "this stager stages this kind of host"),
    }
}

fn minimum_check(id: CheckId, what: &str, have: Result<Bytes, String>, min_mib: u64) -> Check {
    let min = Bytes(min_mib.saturating_mul(1024 * 1024));
    match have {
        Err(problem) => Check::warn(
            id,
            problem,
            format!("the {what} size cannot be read"),
            "see the host checks above",
        ),
        Ok(have) if have >= min => Check::pass(
            id,
            format!("{what} is {}", have.rounded()),
            format!("the profile asks for at least {}", min.rounded()),
        ),
        Ok(have) => Check::warn(
            id,
            format!("{what} is {}", have.rounded()),
            format!(
                "the profile recommends at least {}; staging does not enforce it",
                min.rounded()
            ),
            "expect the migrated device to run short; prefer a larger device",
        ),
    }
}

fn disk_bytes(root: &HostRoot, facts: &HostFacts) -> Result<Bytes, String> {
    let disk = facts.root_disk.clone()?;
    let sectors = gather::disk_size(root, facts).map_err(|e| e.to_string())?;
    Ok(Bytes(sectors.0.saturating_mul(disk.table.sector_size.get())))
}

/// Why `stage` would not plan: its one-line refusal, and the room staging needs when the
/// refusal is that the swap partition is too small.
#[derive(Debug, Clone)]
struct PlanFailure {
    text: RefusalText,
    needed_swap: Option<Bytes>,
}

impl From<&PayloadError> for PlanFailure {
    fn from(error: &PayloadError) -> Self {
        PlanFailure { text: error.text(), needed_swap: None }
    }
}

impl From<Refusal> for PlanFailure {
    fn from(refusal: Refusal) -> Self {
        let needed_swap = match &refusal {
            Refusal::SwapTooSmall { needed, .. } => Some(*needed),
            _ => None,
        };
        PlanFailure { text: refusal.text(), needed_swap }
    }
}

/// Everything `stage` plans, up to (not including) any change.
fn plan(
    root: &HostRoot,
    facts: &HostFacts,
    profile: &Profile,
    image: &ImageFacts,
    config: &Path,
    req: &CheckRequest,
) -> Result<StagePlan, PlanFailure> {
    let migrator = req.migrator.as_ref().map_err(PlanFailure::from)?;
    let wanted = gather::Wanted {
        config,
        backups: &[],
        kernel_release: &req.kernel_release,
        allow_unknown_device_type: false,
    };
    let gathered = gather::gather(root, facts, profile, &wanted, migrator)?;
    Ok(planning::make_plan(&gathered, image)?)
}

/// Every check: the host's (with requirements from flags, profile and image), then the
/// profile's, the image's, config.json's, and whether `stage` could make its plan.
pub fn run(root: &HostRoot, facts: &HostFacts, req: &CheckRequest) -> CheckReport {
    let profile = req.profile.as_ref();
    let probed = req.image.as_deref().map(|text| probe_image(root, text, profile));
    let prepared = probed.as_ref().and_then(|p| p.as_ref().ok()).map(|(_, p)| p.clone());
    let image = probed.map(|p| p.map(|(image, _)| image));
    let report = run_with_image(root, facts, req, image);
    if let Some(prepared) = prepared {
        prepared.discard();
    }
    report
}

fn run_with_image(
    root: &HostRoot,
    facts: &HostFacts,
    req: &CheckRequest,
    image: Option<Result<ImageFacts, Check>>,
) -> CheckReport {
    let mut inputs = req.flags.clone();
    let profile = req.profile.as_ref();
    if let Some(profile) = profile {
        inputs.expected_boot_mode =
            inputs.expected_boot_mode.or(profile.boot_mode.host_detectable());
        inputs.min_memory = inputs.min_memory.or(Some(planning::MIN_MEMORY_WITHOUT_SWAP));
    }
    let mut layout_is_estimate = false;
    if inputs.target_layout_size.is_none() {
        match (&image, profile) {
            (Some(Ok(image)), _) => inputs.target_layout_size = Some(image_end(image)),
            (_, Some(profile)) => {
                inputs.target_layout_size = typical_layout_size(profile);
                layout_is_estimate = inputs.target_layout_size.is_some();
            }
            _ => {}
        }
    }
    let planned = match (profile, &image, &req.config) {
        (Some(profile), Some(Ok(image)), Some(config)) => {
            Some(plan(root, facts, profile, image, config, req))
        }
        _ => None,
    };
    if inputs.needed_swap.is_none() {
        inputs.needed_swap = match &planned {
            Some(Ok(sp)) => Some(sp.budget.needed),
            Some(Err(failure)) => failure.needed_swap,
            None => None,
        };
    }

    let mut report = checks::run_all(facts, &inputs).checks;
    if layout_is_estimate {
        for check in
            report.iter_mut().filter(|c| c.id == CheckId::RootSpace && c.status == Status::Fail)
        {
            check.status = Status::Warn;
            check.reason =
                format!("{} (the profile's typical layout; the image's own decides)", check.reason);
            check.fix = Some("pass --image to check the real layout".into());
        }
    }
    if let Some(profile) = profile {
        report.push(profile_check(facts, profile));
        report.push(checks::profile_memory(facts, &profile.name, profile.requirements.min_ram_mib));
        report.push(minimum_check(
            CheckId::ProfileDisk,
            "the disk",
            disk_bytes(root, facts),
            profile.requirements.min_disk_mib,
        ));
    }
    match (&image, profile) {
        (Some(Ok(image)), Some(profile)) => {
            report.push(Check::pass(CheckId::Image, image_found(image), image_reason(image)));
            report.extend(image_checks(image, profile));
        }
        (Some(Ok(image)), None) => {
            report.push(Check::pass(CheckId::Image, image_found(image), image_reason(image)));
        }
        (Some(Err(check)), _) => report.push(check.clone()),
        (None, _) => {}
    }
    if let Some(config) = &req.config {
        report.push(config_check(config, profile));
    }
    let asked_for_inputs = profile.is_some() || req.image.is_some() || req.config.is_some();
    let plan_check = match planned {
        Some(Ok(sp)) => Check::pass(
            CheckId::StagingPlan,
            format!(
                "staging needs {} of {} on the swap partition",
                sp.budget.needed, sp.budget.have
            ),
            "`stager stage` would stage with this profile, image and config.json",
        ),
        Some(Err(failure)) => {
            fail_with(CheckId::StagingPlan, "`stager stage` would refuse", failure.text)
        }
        None => Check::not_evaluated(
            CheckId::StagingPlan,
            "-",
            "a readable local image, a config.json and a profile",
            "pass --profile, --image PATH and --config",
        ),
    };
    if asked_for_inputs {
        report.push(plan_check);
    }
    CheckReport::new(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intel_nuc_typical_layout_matches_the_documented_2x_layout() {
        // [S2] in the profile: resin-data starts at 696 MiB; with its typical 256 MiB, 952 MiB.
        let profile = Profile::builtin("intel-nuc").unwrap();
        assert_eq!(typical_layout_size(&profile), Some(Bytes(952 * 1024 * 1024)));
    }

    #[test]
    fn a_check_refusal_keeps_its_problem_and_fix_apart() {
        // Seen on a real host: "fix: fix: migrate a device…", the fix word doubled, when the
        // fix was found by splitting the refusal's one line at its last "; " (a reason or a
        // fix holding "; " moved the split).
        let refusal = Refusal::Check {
            id: "memory-without-swap".into(),
            found: "1 GiB".into(),
            reason: "too little; swap is off while staging".into(),
            fix: "migrate a device with at least 2 GiB of RAM; or stop services first".into(),
        };
        let check = fail_with(CheckId::StagingPlan, "-", refusal.text());
        assert_eq!(
            check.reason,
            "check memory-without-swap failed: 1 GiB: too little; swap is off while staging"
        );
        let fix = "migrate a device with at least 2 GiB of RAM; or stop services first";
        assert_eq!(check.fix.as_deref(), Some(fix));
        let json = serde_json::to_value(&check).unwrap();
        assert_eq!(json["reason"], check.reason.as_str());
        assert_eq!(json["fix"], fix);
        let text = crate::commands::check::render_text(&CheckReport::new(vec![check]));
        assert_eq!(text.matches("fix:").count(), 1, "{text}");
        assert!(text.contains(&format!("      fix:    {fix}\n")), "{text}");
        // The one line `stage` prints still names the problem and the fix.
        assert_eq!(
            refusal.to_string(),
            format!("check memory-without-swap failed: 1 GiB: too little; swap is off while staging; fix: {fix}")
        );
    }
}
