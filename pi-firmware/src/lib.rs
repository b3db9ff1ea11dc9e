//! The Raspberry Pi resinOS 1.x trial as the GPU firmware sees it (docs/arm-1x-contract.md
//! §2.2): the `config.txt` that boots the migration environment, on the spare partition
//! (phase A, the stager) and on `resin-boot` (phase B, the migrator's commit), and the
//! trial's `cmdline.txt` turned into the resume one. Pure text: no I/O.
//!
//! One rule for both `config.txt` files: the board's own lines (`dtparam=`, `dtoverlay=`,
//! `gpu_mem=`, …) are kept, every line that chooses what the firmware loads (`kernel=`,
//! `initramfs`, `cmdline=`, `ramfsfile=`, `device_tree=`, `os_prefix=`) is dropped, and ours
//! are appended. Sources (raspberrypi/documentation `documentation/asciidoc/computers/
//! config_txt/boot.adoc` for `kernel`, `initramfs … followkernel`, `cmdline`, `ramfsfile`,
//! `os_prefix`, `device_tree`; `conditional.adoc` for `[filter]` sections and `[all]`):
//! comments are whole lines starting with `#`; a `[filter]` line applies to the lines after
//! it until the next filter, and `[all]` ends every filter.

/// The firmware's configuration file, at a FAT partition's root.
pub const CONFIG_TXT: &str = "config.txt";
/// The migration environment's initramfs, relative to the partition the firmware boots.
pub const INITRAMFS: &str = "swapover/initramfs.img";
/// The migration environment's kernel command line (one line), same place.
pub const CMDLINE: &str = "swapover/cmdline.txt";
/// The kernel argument of the trial boot (phase A) and of every boot after the commit.
pub const STAGE_TRIAL: &str = "swapover.stage=trial";
pub const STAGE_RESUME: &str = "swapover.stage=resume";

/// `config.txt` keys (`key=value`) that choose what the firmware loads: ours replace them.
const DROPPED_KEYS: [&str; 5] = ["kernel", "cmdline", "ramfsfile", "device_tree", "os_prefix"];
/// `initramfs <file> <address>` is a command with a space, not a `key=value`.
const DROPPED_COMMAND: &str = "initramfs";

/// Whether the firmware reads `line` as one that chooses what it loads.
fn chooses_boot_files(line: &str) -> bool {
    let line = line.trim_start();
    if let Some((key, _)) = line.split_once('=') {
        if DROPPED_KEYS.iter().any(|k| key.trim().eq_ignore_ascii_case(k)) {
            return true;
        }
    }
    line.split_whitespace().next().is_some_and(|word| word.eq_ignore_ascii_case(DROPPED_COMMAND))
}

fn is_filter(line: &str) -> bool {
    line.trim_start().starts_with('[')
}

/// `existing` (a board's `config.txt`) with the lines that choose boot files dropped, then
/// `kernel=<kernel>`, `initramfs swapover/initramfs.img followkernel`,
/// `cmdline=swapover/cmdline.txt`. `kernel` is the file to boot relative to the partition's
/// root: the board's kernel (`kernel7.img`) on the spare, `swapover/kernel7.img` on
/// resin-boot. When `existing` has `[filter]` sections, `[all]` goes before ours, so that
/// they apply on every board. Lines end in `\n`.
pub fn boot_config(existing: &str, kernel: &str) -> String {
    let mut out = String::new();
    let mut filtered = false;
    for line in existing.lines() {
        if chooses_boot_files(line) {
            continue;
        }
        filtered |= is_filter(line);
        out.push_str(line);
        out.push('\n');
    }
    if filtered {
        out.push_str("[all]\n");
    }
    out.push_str(&format!(
        "kernel={kernel}\n{DROPPED_COMMAND} {INITRAMFS} followkernel\ncmdline={CMDLINE}\n"
    ));
    out
}

/// The trial's one-line `swapover/cmdline.txt` from the board's `cmdline.txt`: its `console=`
/// arguments (a serial console last, so that it is the kernel's `/dev/console`), then
/// `swapover.stage=trial panic=10`. No `root=` (the migrator is the initramfs's `/init`) and
/// no `rootwait`: without its initramfs the kernel then panics and `panic=10` restarts into
/// 1.x, where with `rootwait` it would wait for a root forever (contract §2.2 step 3, measured;
/// shown by run 2 of `qemu-tests/tests/resinos1x_pi_migration.rs`).
pub fn trial_cmdline(board_cmdline: &str) -> String {
    let consoles: Vec<&str> =
        board_cmdline.split_whitespace().filter(|a| a.starts_with("console=")).collect();
    let is_serial = |a: &&str| a.contains("serial") || a.contains("ttyAMA") || a.contains("ttyS");
    let mut args: Vec<&str> = consoles.iter().copied().filter(|a| !is_serial(a)).collect();
    args.extend(consoles.iter().copied().filter(is_serial));
    args.extend([STAGE_TRIAL, "panic=10"]);
    format!("{}\n", args.join(" "))
}

/// Why a trial `cmdline.txt` cannot become the resume one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    #[error("the trial's cmdline.txt has no {STAGE_TRIAL} argument: it is not the staged one")]
    NoTrialStage,
}

/// The trial's `cmdline.txt` with `swapover.stage=trial` replaced by `swapover.stage=resume`
/// (every other byte kept). A text already saying `resume` is returned as it is.
pub fn resume_cmdline(trial: &str) -> Result<String, CmdlineError> {
    let words: Vec<&str> = trial.split_whitespace().collect();
    if words.contains(&STAGE_RESUME) && !words.contains(&STAGE_TRIAL) {
        return Ok(trial.to_string());
    }
    if !words.contains(&STAGE_TRIAL) {
        return Err(CmdlineError::NoTrialStage);
    }
    let out = trial
        .split_inclusive(char::is_whitespace)
        .map(|piece| {
            let word = piece.trim_end_matches(char::is_whitespace);
            if word == STAGE_TRIAL {
                format!("{STAGE_RESUME}{}", &piece[word.len()..])
            } else {
                piece.to_string()
            }
        })
        .collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resinOS 1.x Pi 3 config.txt shape (balena-raspberrypi 1.X writes gpu_mem, dtparams
    /// and, on some releases, a kernel= line), with an old initramfs and a filter section.
    const BOARD: &str = "# resinOS\ngpu_mem=16\ndtparam=i2c_arm=on\nkernel=kernel7.img\n  initramfs old.img followkernel\ncmdline=cmdline.txt\nramfsfile=x\ndevice_tree=bcm2710-rpi-3-b.dtb\nos_prefix=a/\nKERNEL=other.img\ninitramfsx=kept\n";

    #[test]
    fn the_board_lines_stay_and_the_boot_choices_are_ours() {
        let spare = boot_config(BOARD, "kernel7.img");
        assert_eq!(
            spare,
            "# resinOS\ngpu_mem=16\ndtparam=i2c_arm=on\ninitramfsx=kept\n\
             kernel=kernel7.img\ninitramfs swapover/initramfs.img followkernel\ncmdline=swapover/cmdline.txt\n"
        );
        let boot = boot_config(BOARD, "swapover/kernel7.img");
        assert!(boot.ends_with(
            "kernel=swapover/kernel7.img\ninitramfs swapover/initramfs.img followkernel\ncmdline=swapover/cmdline.txt\n"
        ));
        // Rendering our own output again gives the same text (a repeated commit).
        assert_eq!(boot_config(&boot, "swapover/kernel7.img"), boot);
    }

    #[test]
    fn an_empty_or_unterminated_config_gets_only_ours_and_filters_are_closed() {
        assert_eq!(
            boot_config("", "kernel.img"),
            "kernel=kernel.img\ninitramfs swapover/initramfs.img followkernel\ncmdline=swapover/cmdline.txt\n"
        );
        assert!(boot_config("gpu_mem=16", "k").starts_with("gpu_mem=16\nkernel=k\n"));
        let filtered = boot_config("gpu_mem=16\n[pi4]\narm_64bit=1\n", "kernel7.img");
        assert!(filtered.contains("arm_64bit=1\n[all]\nkernel=kernel7.img\n"), "{filtered}");
    }

    #[test]
    fn the_trial_cmdline_keeps_the_consoles_serial_last_without_root_or_rootwait() {
        let board = "dwc_otg.lpm_enable=0 console=serial0,115200 console=tty1 root=/dev/mmcblk0p2 rootfstype=ext4 rootwait\n";
        assert_eq!(
            trial_cmdline(board),
            "console=tty1 console=serial0,115200 swapover.stage=trial panic=10\n"
        );
        assert_eq!(
            trial_cmdline("console=null root=/dev/mmcblk0p2"),
            "console=null swapover.stage=trial panic=10\n"
        );
        assert_eq!(resume_cmdline(&trial_cmdline("")).unwrap(), "swapover.stage=resume panic=10\n");
    }

    #[test]
    fn the_trial_cmdline_becomes_the_resume_one_and_nothing_else_changes() {
        let trial = "dwc_otg.lpm_enable=0 console=tty1 console=ttyAMA0,115200 swapover.stage=trial panic=10\n";
        let resume = resume_cmdline(trial).unwrap();
        assert_eq!(resume, trial.replace("swapover.stage=trial", "swapover.stage=resume"));
        assert_eq!(resume_cmdline(&resume).unwrap(), resume, "repeatable");
        assert_eq!(
            resume_cmdline("x swapover.stage=trialx swapover.stage=trial").unwrap(),
            "x swapover.stage=trialx swapover.stage=resume"
        );
        assert_eq!(resume_cmdline("console=tty1 panic=10"), Err(CmdlineError::NoTrialStage));
    }
}
