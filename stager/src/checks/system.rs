//! Checks of the running system: user, OS, architecture, firmware, boot loader.

use super::{Check, CheckId};
use crate::host::os_release::OsVersion;
use crate::host::HostFacts;
use board_profiles::BootMode;

const MIN_UBUNTU: OsVersion = OsVersion { major: 14, minor: 4 };
const SUPPORTED_ARCH: &str = "x86_64";

pub fn root_user(facts: &HostFacts) -> Check {
    let id = CheckId::RootUser;
    let found = format!("effective user id {}", facts.euid);
    if facts.euid == 0 {
        Check::pass(id, found, "root may change partitions, swap and GRUB files")
    } else {
        Check::fail(
            id,
            found,
            "staging changes partitions, swap and GRUB files, which only root may do",
            "run it again as root: sudo stager check",
        )
    }
}

pub fn os_release(facts: &HostFacts) -> Check {
    let id = CheckId::OsRelease;
    let release = match &facts.os_release {
        Ok(release) => release,
        Err(error) => {
            return Check::fail(
                id,
                error.clone(),
                "the OS cannot be identified without /etc/os-release",
                "run the stager on the Ubuntu device itself (os-release comes with base-files)",
            )
        }
    };
    let name = release.display_name();
    if release.id == "ubuntu" {
        return match release.version() {
            Some(version) if version >= MIN_UBUNTU => {
                Check::pass(id, name, format!("Ubuntu {version} is at least {MIN_UBUNTU}"))
            }
            Some(version) => Check::fail(
                id,
                name,
                format!("Ubuntu {version} is older than {MIN_UBUNTU}, the oldest release this tool supports"),
                format!("upgrade the device to Ubuntu {MIN_UBUNTU} or later first"),
            ),
            None => Check::fail(
                id,
                name,
                "VERSION_ID is missing or not a version number",
                "restore /etc/os-release from the base-files package",
            ),
        };
    }
    if release.is_like("debian") || release.is_like("ubuntu") {
        return Check::warn(
            id,
            name,
            "a Debian-family system: accepted, but the migration is tested on Ubuntu",
            "migrate one device and check the result before a fleet",
        );
    }
    Check::fail(
        id,
        name,
        format!("`{}` is neither Ubuntu nor of the Debian family", release.id),
        "this tool migrates Ubuntu (and Debian-family) devices only",
    )
}

pub fn architecture(facts: &HostFacts) -> Check {
    let id = CheckId::Architecture;
    if facts.arch == SUPPORTED_ARCH {
        Check::pass(id, facts.arch.clone(), "x86_64 is supported")
    } else {
        Check::fail(
            id,
            facts.arch.clone(),
            format!(
                "{} is not supported; only {SUPPORTED_ARCH} devices can be migrated",
                facts.arch
            ),
            "use a stager build and board profile made for this architecture",
        )
    }
}

pub fn boot_mode(facts: &HostFacts, expected: Option<BootMode>) -> Check {
    let id = CheckId::BootMode;
    let found = format!(
        "{} (/sys/firmware/efi {})",
        facts.boot_mode,
        if facts.boot_mode == BootMode::Uefi { "exists" } else { "absent" }
    );
    match expected {
        None => Check::not_evaluated(
            id,
            found,
            "the profile's boot mode",
            "pass --profile (or --expect-boot-mode)",
        ),
        Some(expected) if expected == facts.boot_mode => {
            Check::pass(id, found, format!("the profile expects {expected}"))
        }
        Some(expected) => Check::fail(
            id,
            found,
            format!("the profile expects {expected} but the device booted in {}", facts.boot_mode),
            format!(
                "choose a profile for {} devices, or boot the device in {expected} mode",
                facts.boot_mode
            ),
        ),
    }
}

pub fn grub2(facts: &HostFacts) -> Check {
    let id = CheckId::Grub2;
    let grub = &facts.grub;
    match (&grub.grub_cfg, &grub.grub_editenv) {
        (Some(cfg), Some(editenv)) => {
            Check::pass(id, format!("{cfg}, {editenv}"), "GRUB 2 is installed")
        }
        (None, _) if grub.legacy_menu_lst => Check::fail(
            id,
            "/boot/grub/menu.lst only (GRUB legacy)",
            "GRUB legacy cannot boot the migration environment one-shot",
            "install GRUB 2: apt-get install grub-pc && update-grub",
        ),
        (None, _) => Check::fail(
            id,
            "no /boot/grub/grub.cfg",
            "the migration environment is booted through the host's GRUB 2",
            "install GRUB 2: apt-get install grub-pc && update-grub",
        ),
        (Some(cfg), None) => Check::fail(
            id,
            format!("{cfg}, but no grub-editenv in $PATH or /usr/bin"),
            "grub-editenv is needed to arm the one-shot boot entry",
            "install it: apt-get install grub-common",
        ),
    }
}

pub fn grub_next_entry(facts: &HostFacts) -> Check {
    let id = CheckId::GrubNextEntry;
    let grub = &facts.grub;
    match &grub.grub_cfg {
        None => Check::fail(
            id,
            "no /boot/grub/grub.cfg",
            "there is no GRUB 2 configuration to read next_entry",
            "install GRUB 2 first (see grub2)",
        ),
        Some(cfg) if grub.grub_cfg_uses_next_entry => Check::pass(
            id,
            format!("{cfg} loads grubenv and reads next_entry"),
            "a one-shot entry can be armed",
        ),
        Some(cfg) => Check::fail(
            id,
            format!("{cfg} does not load_env and read next_entry"),
            "without it the one-shot entry would be ignored and the device would boot the old OS",
            "regenerate it with update-grub (Ubuntu's 00_header writes the next_entry handling)",
        ),
    }
}

pub fn grub_entry_route(facts: &HostFacts) -> Check {
    let id = CheckId::GrubEntryRoute;
    let grub = &facts.grub;
    if grub.grub_cfg_sources_custom_cfg {
        return Check::pass(
            id,
            "grub.cfg sources /boot/grub/custom.cfg (41_custom)",
            "the entry is added by writing custom.cfg; grub.cfg stays as it is",
        );
    }
    match (&grub.custom_template, &grub.update_grub) {
        (Some(template), Some(update_grub)) => Check::pass(
            id,
            format!("grub.cfg does not source custom.cfg; {template} and {update_grub} exist"),
            "the entry is added to 40_custom and grub.cfg regenerated with update-grub",
        ),
        _ => Check::fail(
            id,
            "grub.cfg does not source custom.cfg, and 40_custom or update-grub is missing",
            "there is no way to add the migration entry that survives GRUB's own tools",
            "reinstall grub-common (it brings 41_custom and update-grub), then run update-grub",
        ),
    }
}

/// Warns when the old OS's initramfs resumes from the swap partition: while the device is
/// staged (and should the old OS boot again, the one-shot's fallback) that partition holds
/// the staging file system, and Debian's initramfs waits ~30 s for the swap UUID before it
/// boots on. `stager abort` writes the swap header (and its UUID) back.
pub fn swap_resume(facts: &HostFacts) -> Check {
    let id = CheckId::SwapResume;
    let (Ok(header), Ok(device)) = (&facts.swap_header, &facts.swap_device) else {
        return Check::not_evaluated(
            id,
            "-",
            "the swap partition and its UUID",
            "see swap-partition and swap-signature",
        );
    };
    let naming: Vec<String> = facts
        .resume
        .iter()
        .filter(|setting| setting.names_swap(&header.uuid, &device.name))
        .map(|setting| format!("resume {} in {}", setting.value, setting.source))
        .collect();
    if naming.is_empty() {
        return Check::pass(
            id,
            "no RESUME=/resume= names the swap partition",
            "the old OS's initramfs does not wait for the swap while it holds staging",
        );
    }
    Check::warn(
        id,
        naming.join(", "),
        format!(
            "while the device is staged /dev/{} holds the staging file system, so if the old OS boots (the one-shot's fallback) its initramfs waits for the swap UUID {} (~30 s on Debian) before booting on; `stager abort` writes the UUID back",
            device.name, header.uuid
        ),
        "nothing is needed for the migration; to avoid the wait, set RESUME=none in /etc/initramfs-tools/conf.d/resume and run update-initramfs -u",
    )
}
