//! Why `stager stage` will not stage: each refusal names the problem and the fix, kept apart
//! ([`RefusalText`]) and joined into one line for people.
//! A refusal is always reached before anything on the host changed.

use super::backup_estimate::EstimateError;
use super::config_json::ConfigJsonError;
use super::host_extras::HostExtraError;
use super::image_probe::ProbeError;
use crate::checks::Check;
use disk_layout::LayoutError;
use plan::{Bytes, UnitError};
use std::fmt;

/// A refusal's two parts: what is wrong and what to do about it. `check` prints them as a
/// check's reason and fix; the one line `stage` prints joins them with "; ". The type lives
/// in `plan` so the other crates' errors (plan's, resin-image's, disk-layout's) give it too.
pub use plan::RefusalText;

const IMAGE_DOES_NOT_FIT: &str = "the image does not fit the old root's space";

/// Why `stage` will not stage. Its text ([`Refusal::text`]) keeps the problem and the fix
/// apart; the one line printed for people joins them with "; ".
#[derive(Debug)]
pub enum Refusal {
    AlreadyStaged {
        path: String,
    },
    Check {
        id: String,
        found: String,
        reason: String,
        fix: String,
    },
    NotAGrubHostProfile {
        profile: String,
        kind: String,
    },
    ResinosHost {
        found: String,
        profile: String,
        suggestions: String,
    },
    HostGpt {
        disk: String,
        profile: String,
    },
    BootMode {
        profile: String,
        expected: String,
        found: String,
    },
    HostFact(String),
    GrubCfg(String),
    GrubNoNextEntry(String),
    GrubNoCustomCfg(String),
    Config(ConfigJsonError),
    NoApplicationId,
    Image(ProbeError),
    ImageDeviceType {
        found: String,
        expected: String,
    },
    ImageDeviceTypeUnknown(String),
    ImageLayout {
        found: usize,
        expected: usize,
        profile: String,
        names: String,
    },
    /// The image's table does not fit before the staging area.
    ImageTooLarge(LayoutError),
    /// The image's sizes cannot be converted to the host disk's (`partition`: which one).
    ImageSizes {
        partition: Option<String>,
        source: UnitError,
    },
    SwapTooSmall {
        device: String,
        have: Bytes,
        needed: Bytes,
        kernel: Bytes,
        initramfs: Bytes,
        image: Bytes,
        backup: Bytes,
        margin: Bytes,
    },
    BackupTooLarge {
        paths: String,
        backup: Bytes,
        room: Bytes,
        device: String,
        have: Bytes,
        kernel: Bytes,
        initramfs: Bytes,
        image: Bytes,
        margin: Bytes,
    },
    Backup(EstimateError),
    Kernel(HostExtraError),
    Initramfs(String),
    Prepare(super::prepare::PrepareError),
    ImageFilesystem {
        name: String,
        number: u32,
        found: String,
        usage: &'static str,
        expected: String,
    },
    Plan(plan::PlanError),
}

impl Refusal {
    /// The problem and the fix, apart.
    pub fn text(&self) -> RefusalText {
        match self {
            Refusal::AlreadyStaged { path } => RefusalText::new(
                format!("a migration is already staged ({path} exists)"),
                "run `stager status` to see it, or `stager abort` to undo it first".into(),
            ),
            Refusal::Check { id, found, reason, fix } => RefusalText::new(
                format!("check {id} failed: {found}: {reason}"),
                fix.clone(),
            ),
            Refusal::NotAGrubHostProfile { profile, kind } => RefusalText::new(
                format!("profile {profile} migrates a {kind} device; `stager stage` only stages Ubuntu/Debian GRUB hosts"),
                format!("plan a resinOS 1.x device with `stager plan-image --profile {profile}` (stage a UEFI one with `stager stage-1x`), or pick an x86 Ubuntu profile for an Ubuntu host"),
            ),
            Refusal::ResinosHost { found, profile, suggestions } => RefusalText::new(
                format!("this device runs {found}, not Ubuntu/Debian; profile {profile} is for Ubuntu/GRUB hosts"),
                format!("plan a resinOS 1.x device with `stager plan-image --profile {suggestions}` (stage a UEFI one with `stager stage-1x`)"),
            ),
            Refusal::HostGpt { disk, profile } => RefusalText::new(
                format!("the disk {disk} has a GPT partition table but profile {profile} expects MBR"),
                "this device cannot be migrated with this profile".into(),
            ),
            Refusal::BootMode { profile, expected, found } => RefusalText::new(
                format!("profile {profile} expects {expected} boot but this device booted in {found} mode"),
                format!("choose a profile for {found} devices"),
            ),
            Refusal::HostFact(e) => RefusalText::new(
                format!("host fact missing: {e}"),
                "run `stager check` for details".into(),
            ),
            Refusal::GrubCfg(e) => RefusalText::new(
                format!("grub.cfg cannot be inspected: {e}"),
                "check /boot/grub/grub.cfg".into(),
            ),
            Refusal::GrubNoNextEntry(e) => RefusalText::new(
                format!("grub.cfg does not honour a one-shot next_entry ({e})"),
                "regenerate it with `update-grub` from Ubuntu's /etc/grub.d scripts".into(),
            ),
            Refusal::GrubNoCustomCfg(e) => RefusalText::new(
                format!("grub.cfg does not source /boot/grub/custom.cfg ({e})"),
                "regenerate it with `update-grub` so that 41_custom is included".into(),
            ),
            Refusal::Config(e) => e.text(),
            Refusal::NoApplicationId => RefusalText::new(
                "config.json has no applicationId but backups were asked for (they are restored under the application's data)".into(),
                "download config.json from the application's dashboard".into(),
            ),
            Refusal::Image(e) => e.text(),
            Refusal::ImageDeviceType { found, expected } => RefusalText::new(
                format!("the image is for device type {found}, the profile is for {expected}"),
                format!("download the {expected} image"),
            ),
            Refusal::ImageDeviceTypeUnknown(e) => RefusalText::new(
                format!("the image's device type cannot be read ({e})"),
                "pass --allow-unknown-device-type only if you are sure the image is for this board".into(),
            ),
            Refusal::ImageLayout { found, expected, profile, names } => RefusalText::new(
                format!("the image has {found} partitions but profile {profile} expects {expected} ({names})"),
                "download the right image for the profile".into(),
            ),
            Refusal::ImageTooLarge(e) => e.text().within(IMAGE_DOES_NOT_FIT),
            Refusal::ImageSizes { partition: None, source } => source.text().within(IMAGE_DOES_NOT_FIT),
            Refusal::ImageSizes { partition: Some(name), source } => source
                .text()
                .within(&format!("{IMAGE_DOES_NOT_FIT}: partition {name} of the image")),
            Refusal::SwapTooSmall { device, have, needed, kernel, initramfs, image, backup, margin } => RefusalText::new(
                format!("the swap partition {device} is {have} but staging needs {needed} (kernel {kernel} + initramfs {initramfs} + image {image} + backup {backup} + margin {margin})"),
                "grow the swap partition or use a smaller image".into(),
            ),
            Refusal::BackupTooLarge { paths, backup, room, device, have, kernel, initramfs, image, margin } => RefusalText::new(
                format!("the backup set ({paths}) is {backup} but the staging space has {room} left for it (swap partition {device} is {have}; kernel {kernel} + initramfs {initramfs} + image {image} + margin {margin} come first)"),
                "back up less or grow the swap partition".into(),
            ),
            Refusal::Backup(e) => e.text(),
            Refusal::Kernel(e) => e.text(),
            Refusal::Initramfs(e) => RefusalText::new(
                format!("the initramfs cannot be built: {e}"),
                "check /lib/modules of the running kernel".into(),
            ),
            Refusal::Prepare(e) => e.text(),
            Refusal::ImageFilesystem { name, number, found, usage, expected } => RefusalText::new(
                format!("the image's {name} partition ({number}) holds {found}, where the migration {usage} {expected}: this is not a bootable resinOS image (a flasher's data partitions are empty)"),
                "give the resinOS download for this device type (the .zip as downloaded)".into(),
            ),
            Refusal::Plan(e) => e.text().within("the plan is inconsistent"),
        }
    }

    /// What is wrong.
    pub fn problem(&self) -> String {
        self.text().problem
    }

    /// What to do about it, when the refusal names it.
    pub fn fix(&self) -> Option<String> {
        self.text().fix
    }

    pub fn from_check(check: &Check) -> Refusal {
        Refusal::Check {
            id: check.id.to_string(),
            found: check.found.clone(),
            reason: check.reason.clone(),
            fix: check.fix.clone().unwrap_or_default(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text();
        match (self, &text.fix) {
            // A check's own fix is labelled in the one line: "...; fix: <fix>".
            (Refusal::Check { .. }, Some(fix)) => write!(f, "{}; fix: {fix}", text.problem),
            _ => write!(f, "{text}"),
        }
    }
}

impl std::error::Error for Refusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Refusal::Config(e) => Some(e),
            Refusal::Image(e) => Some(e),
            Refusal::Backup(e) => Some(e),
            Refusal::Kernel(e) => Some(e),
            Refusal::Prepare(e) => Some(e),
            Refusal::Plan(e) => Some(e),
            Refusal::ImageTooLarge(e) => Some(e),
            Refusal::ImageSizes { source, .. } => Some(source),
            _ => None,
        }
    }
}

macro_rules! refusal_from {
    ($($variant:ident($error:ty)),* $(,)?) => {
        $(impl From<$error> for Refusal {
            fn from(e: $error) -> Self {
                Refusal::$variant(e)
            }
        })*
    };
}

refusal_from!(
    Config(ConfigJsonError),
    Image(ProbeError),
    Backup(EstimateError),
    Kernel(HostExtraError),
    Prepare(super::prepare::PrepareError),
    Plan(plan::PlanError),
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn a_refusal_source_gives_its_problem_and_fix_apart_and_prints_them_as_before() {
        let truncated = ProbeError::TruncatedXz { path: PathBuf::from("/tmp/a.img.xz") };
        let text = Refusal::Image(truncated).text();
        assert_eq!(text.problem, "the image /tmp/a.img.xz is truncated: its xz stream ends early");
        assert_eq!(text.fix.as_deref(), Some("download it again (and its .sha256)"));
        // One line for people, as the error printed before its parts were kept apart.
        let truncated = ProbeError::TruncatedXz { path: PathBuf::from("/tmp/a.img.xz") };
        assert_eq!(
            truncated.to_string(),
            "the image /tmp/a.img.xz is truncated: its xz stream ends early; download it again (and its .sha256)"
        );
    }

    #[test]
    fn a_problem_holding_a_semicolon_is_not_taken_for_a_fix() {
        // Split at its last "; ", this line would have offered "the image is not a resinOS
        // image" as the fix.
        let text = Refusal::Image(ProbeError::BackwardSeek { at: 1024 }).text();
        assert_eq!(text.fix, None);
        assert!(text.problem.ends_with("; the image is not a resinOS image"), "{}", text.problem);
    }

    #[test]
    fn an_image_that_does_not_fit_keeps_the_layout_errors_fix() {
        let e = LayoutError::ImageTooLarge { needs_mib: 900, room_mib: 800, before: "swap" };
        let refusal = Refusal::ImageTooLarge(e);
        let text = refusal.text();
        assert_eq!(
            text.problem,
            "the image does not fit the old root's space: image needs 900 MiB but only 800 MiB lie before swap"
        );
        assert_eq!(text.fix.as_deref(), Some("use a smaller image or a larger old root partition"));
        assert_eq!(
            refusal.to_string(),
            "the image does not fit the old root's space: image needs 900 MiB but only 800 MiB lie before swap; use a smaller image or a larger old root partition"
        );
        let sizes = Refusal::ImageSizes {
            partition: Some("resin-boot".into()),
            source: UnitError::Overflow("a partition start"),
        };
        assert_eq!(sizes.fix(), None);
        assert_eq!(
            sizes.to_string(),
            "the image does not fit the old root's space: partition resin-boot of the image: size arithmetic overflowed while computing a partition start"
        );
    }

    #[test]
    fn an_inconsistent_plan_gives_the_plan_errors_parts() {
        let e = plan::PlanError::BackupTooLarge { estimate: Bytes(5), limit: Bytes(4) };
        let refusal = Refusal::Plan(e);
        assert_eq!(
            refusal.problem(),
            "the plan is inconsistent: backup estimate 5 B exceeds the limit 4 B for this migration path"
        );
        assert_eq!(
            refusal.fix().as_deref(),
            Some("remove paths from the backup set (data is never truncated)")
        );
        // A tail that diagnoses is part of the problem, not a fix.
        let extent = plan::Extent { start: plan::Sectors(2048), len: plan::Sectors(8) };
        let e = plan::PlanError::RootOverlapsStaging { root: extent, staging: extent };
        let refusal = Refusal::Plan(e);
        assert_eq!(refusal.fix(), None);
        assert!(refusal.problem().ends_with("; the partition table is inconsistent"));
        assert_eq!(refusal.to_string(), refusal.problem());
    }
}
