//! The end of the migration on resin-boot when the firmware boots the migrator from it
//! through one text file (docs/arm-1x-contract.md §2.5): `uEnv.txt` on the U-Boot route
//! (BeagleBone Black), `config.txt` on the Raspberry Pi route. Until the switch that file
//! boots the migrator; [`super::boot_update`] leaves the image's copy of it, and the boot
//! blobs, waiting as `X.swapover-new`. The switch renames the blobs in the route's order,
//! removes the old blobs the image does not have, then renames the image's switch file over the migrator's (from then on the firmware boots 2.x),
//! then removes `swapover/`.

use std::io;
use std::path::Path;
use std::time::Instant;

use plan::{GrubRoute, Plan};

use super::fat_replace::{self, io_err, FatReplaceError, NEW_SUFFIX};

/// The directory of the migrator's boot files on resin-boot (contract §2.3, §2.4).
pub const BOOT_DIR: &str = "swapover";

/// The BeagleBone's blobs, renamed last and in this order (the ROM loads MLO, MLO loads
/// u-boot.img: this order keeps an old MLO with a new u-boot.img for the shortest time and
/// never leaves a new MLO with an old u-boot.img). Contract §2.5 step 4.
pub const UBOOT_BLOBS_LAST: [&str; 2] = ["u-boot.img", "MLO"];

/// What the switch changes on one route.
#[derive(Debug, Clone)]
pub struct BootSwitch {
    /// The file the firmware reads to choose what to boot: `uEnv.txt` or `config.txt`.
    pub file: &'static str,
    /// Names or `*` patterns (one path segment per `*`, no case), renamed in this order.
    pub blobs_last: Vec<String>,
    /// Whether a text of [`Self::file`] still boots the migrator: with no image copy waiting,
    /// the switch removes such a file (the image has none).
    still_ours: fn(&str) -> bool,
}

fn uenv_is_ours(text: &str) -> bool {
    uboot_env::imported_value(text, "swapover_boot").is_some()
}

fn config_txt_is_ours(text: &str) -> bool {
    let ours = format!("cmdline={}", pi_firmware::CMDLINE);
    text.lines().any(|l| l.trim() == ours)
}

impl BootSwitch {
    /// The switch of the plan's route; `None` on routes that do not boot the migrator
    /// through a file on resin-boot.
    pub fn for_plan(plan: &Plan) -> Option<BootSwitch> {
        match plan.grub.route {
            GrubRoute::UbootTrial => Some(BootSwitch {
                file: super::uboot_resume::UENV,
                blobs_last: UBOOT_BLOBS_LAST.iter().map(|b| b.to_string()).collect(),
                still_ours: uenv_is_ours,
            }),
            GrubRoute::PiFirmwareTrial => Some(BootSwitch {
                file: pi_firmware::CONFIG_TXT,
                blobs_last: plan.grub.pi.as_ref().map(|p| p.blobs_last.clone()).unwrap_or_default(),
                still_ours: config_txt_is_ours,
            }),
            _ => None,
        }
    }

    /// Whether `path` (relative to resin-boot's root) is the switch file.
    pub fn is_switch_file(&self, path: &str) -> bool {
        path.eq_ignore_ascii_case(self.file)
    }

    /// The position (from 0) of the first blob pattern `path` matches, if any.
    pub fn blob_rank(&self, path: &str) -> Option<usize> {
        self.blobs_last.iter().position(|p| pattern_matches(p, path))
    }

    /// Whether `path` is a blob waiting for the switch (`X.swapover-new` of a blob `X`).
    pub fn is_waiting_blob(&self, path: &str) -> bool {
        strip_suffix_nocase(path, NEW_SUFFIX).is_some_and(|blob| self.blob_rank(blob).is_some())
    }

    /// The list of old blobs the image does not have (one path from resin-boot's root a
    /// line), written by the update and read by the switch: `swapover/` lives until then.
    pub const OBSOLETE_LIST: &'static str = "swapover/blobs-obsolete";

    /// Part of the boot partition's update: record the old blobs the image does not have
    /// (the migrator's boot may still load them; the switch removes them).
    pub fn prepare_obsolete(
        &self,
        boot: &Path,
        obsolete: &[String],
    ) -> Result<(), FatReplaceError> {
        let text: String = obsolete.iter().map(|p| format!("{p}\n")).collect();
        if text.is_empty() {
            return fat_replace::remove_synced(&boot.join(Self::OBSOLETE_LIST));
        }
        std::fs::create_dir_all(boot.join(BOOT_DIR))
            .map_err(io_err("create", &boot.join(BOOT_DIR)))?;
        fat_replace::replace_file(boot, Self::OBSOLETE_LIST, text.as_bytes())
    }

    /// Remove the old blobs [`Self::prepare_obsolete`] listed, and directories they leave
    /// empty. Idempotent: a listed file that is gone is done.
    fn remove_obsolete(&self, boot: &Path) -> Result<(), FatReplaceError> {
        let list = boot.join(Self::OBSOLETE_LIST);
        let text = match std::fs::read_to_string(&list) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("read", &list)(e)),
        };
        for rel in text.lines().filter(|l| !l.is_empty() && !l.split('/').any(|p| p == "..")) {
            let path = boot.join(rel);
            fat_replace::remove_synced(&path)?;
            let mut dir = path.parent();
            while let Some(d) = dir.filter(|d| *d != boot) {
                if std::fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
        }
        Ok(())
    }

    /// Part of the boot partition's update (before the switch): the image's switch file
    /// waits as `X.swapover-new` (fsynced); an image without one leaves no such file.
    pub fn prepare(&self, boot: &Path, image_file: Option<&[u8]>) -> Result<(), FatReplaceError> {
        let new = boot.join(format!("{}{NEW_SUFFIX}", self.file));
        match image_file {
            Some(bytes) => fat_replace::write_synced(&new, bytes),
            None => fat_replace::remove_synced(&new),
        }
    }

    /// The window (contract §2.5 step 4, R10): rename the waiting blobs over the old ones,
    /// in pattern order (by path within a pattern), each followed by a directory fsync.
    /// Idempotent: a blob without its `.swapover-new` is already in.
    pub fn rename_blobs(&self, boot: &Path) -> Result<(), FatReplaceError> {
        let started = Instant::now();
        let mut waiting: Vec<(usize, String)> = files_under(boot)?
            .into_iter()
            .filter(|p| !p.to_ascii_lowercase().starts_with(&format!("{BOOT_DIR}/")))
            .filter_map(|p| {
                let blob = strip_suffix_nocase(&p, NEW_SUFFIX)?.to_string();
                Some((self.blob_rank(&blob)?, blob))
            })
            .collect();
        waiting.sort();
        for (_, blob) in &waiting {
            let target = boot.join(blob);
            fat_replace::rename_synced(&fat_replace::with_suffix(&target), &target)?;
        }
        if !waiting.is_empty() {
            log::info!(
                "finalize: {} boot blob(s) renamed in {:.1} ms (the window where a cut leaves blobs of two versions)",
                waiting.len(),
                started.elapsed().as_secs_f64() * 1000.0
            );
        }
        Ok(())
    }

    /// The last write of the migration: the blobs, then the switch file becomes the image's
    /// (the file [`Self::prepare`] left, renamed over it) or, when the image has none and it
    /// still boots the migrator, is removed; then `swapover/` goes. From the switch file's
    /// rename on, the firmware boots resinOS 2.x. Needs nothing from staging (the relay runs
    /// it after staging is written over) and is idempotent. A cut between the rename and the
    /// removal leaves `swapover/` behind, unused.
    pub fn switch_to_new_system(&self, boot: &Path) -> Result<(), FatReplaceError> {
        self.rename_blobs(boot)?;
        self.remove_obsolete(boot)?;
        let path = boot.join(self.file);
        let new = fat_replace::with_suffix(&path);
        if new.exists() {
            fat_replace::rename_synced(&new, &path)?;
        } else if std::fs::read_to_string(&path).is_ok_and(|t| (self.still_ours)(&t)) {
            fat_replace::remove_synced(&path)?;
        }
        fat_replace::remove_dir_synced(&boot.join(BOOT_DIR))?;
        log::info!(
            "{} is the new system's; {BOOT_DIR}/ removed: resinOS boots from now on",
            self.file
        );
        Ok(())
    }
}

fn strip_suffix_nocase<'a>(path: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = path.len().checked_sub(suffix.len())?;
    (path.is_char_boundary(cut) && path[cut..].eq_ignore_ascii_case(suffix)).then(|| &path[..cut])
}

/// Whether `path` matches `pattern`: segment by segment (`/`), ASCII case ignored (FAT), `*`
/// standing for any run of characters inside one segment.
pub fn pattern_matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    pattern.len() == path.len()
        && pattern.iter().zip(&path).all(|(p, s)| {
            segment_matches(p.to_ascii_lowercase().as_bytes(), s.to_ascii_lowercase().as_bytes())
        })
}

fn segment_matches(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| segment_matches(rest, &name[skip..])),
        Some((c, rest)) => {
            name.split_first().is_some_and(|(n, tail)| n == c && segment_matches(rest, tail))
        }
    }
}

/// Every file under `root`, as `/`-separated paths relative to it.
pub fn files_under(root: &Path) -> Result<Vec<String>, FatReplaceError> {
    let mut out = Vec::new();
    let mut pending = vec![(String::new(), root.to_path_buf())];
    while let Some((prefix, dir)) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound && prefix.is_empty() => continue,
            Err(e) => return Err(io_err("list", &dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("list", &dir))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let rel = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            let path = entry.path();
            if entry.file_type().map_err(io_err("inspect", &path))?.is_dir() {
                pending.push((rel, path));
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_within_a_segment_and_without_case() {
        assert!(pattern_matches("start*.elf", "start.elf"));
        assert!(pattern_matches("start*.elf", "START_X.ELF"));
        assert!(pattern_matches("*.dtb", "bcm2710-rpi-3-b.dtb"));
        assert!(!pattern_matches("*.dtb", "overlays/x.dtb"), "* stays in its segment");
        assert!(pattern_matches("overlays/*", "overlays/i2c-rtc.dtbo"));
        assert!(!pattern_matches("overlays/*", "overlays"));
        assert!(pattern_matches("MLO", "mlo"));
        assert!(!pattern_matches("kernel7.img", "kernel7.img.swapover-new"));
    }

    fn pi() -> BootSwitch {
        BootSwitch {
            file: "config.txt",
            blobs_last: ["bootcode.bin", "start*.elf", "*.dtb", "overlays/*", "kernel7.img"]
                .map(String::from)
                .to_vec(),
            still_ours: config_txt_is_ours,
        }
    }

    #[test]
    fn the_blobs_are_renamed_in_pattern_order_then_the_switch_file() {
        let dir = tempfile::tempdir().unwrap();
        let boot = dir.path();
        std::fs::create_dir_all(boot.join("overlays")).unwrap();
        std::fs::create_dir_all(boot.join("swapover")).unwrap();
        for (name, body) in [
            ("kernel7.img.swapover-new", "k2"),
            ("start.elf.swapover-new", "s2"),
            ("bootcode.bin.swapover-new", "b2"),
            ("overlays/a.dtbo.swapover-new", "o2"),
            ("x.dtb.swapover-new", "d2"),
            ("config.txt", "cmdline=swapover/cmdline.txt\n"),
            ("config.txt.swapover-new", "2.x\n"),
            ("swapover/initramfs.img", "migrator"),
            ("swapover/kernel7.img.swapover-new", "not a blob: under swapover/"),
        ] {
            std::fs::write(boot.join(name), body).unwrap();
        }
        let switch = pi();
        assert!(switch.is_waiting_blob("overlays/a.dtbo.swapover-new"));
        assert!(!switch.is_waiting_blob("config.json.swapover-new"));
        switch.switch_to_new_system(boot).unwrap();
        switch.switch_to_new_system(boot).unwrap();
        assert_eq!(
            files_under(boot).unwrap(),
            ["bootcode.bin", "config.txt", "kernel7.img", "overlays/a.dtbo", "start.elf", "x.dtb"]
        );
        assert_eq!(std::fs::read_to_string(boot.join("config.txt")).unwrap(), "2.x\n");
    }

    #[test]
    fn an_image_without_the_switch_file_leaves_none_but_a_foreign_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let boot = dir.path();
        std::fs::write(boot.join("config.txt"), "gpu_mem=16\ncmdline=swapover/cmdline.txt\n")
            .unwrap();
        pi().switch_to_new_system(boot).unwrap();
        assert!(!boot.join("config.txt").exists());
        std::fs::write(boot.join("config.txt"), "gpu_mem=16\n").unwrap();
        pi().switch_to_new_system(boot).unwrap();
        assert!(boot.join("config.txt").exists(), "not ours: left alone");
    }
}
