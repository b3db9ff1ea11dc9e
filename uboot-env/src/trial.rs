//! The trial (phase A) and commit (phase B) `uEnv.txt` text, contract §2.3.

use crate::existing::{ExistingUenv, UenvError};
use crate::{TRIAL_DTB, TRIAL_INITRAMFS, TRIAL_KERNEL};
use std::fmt;

/// The block-device command family U-Boot loads from: `mmc` on the board, `virtio` in the
/// QEMU test (the test profile carries it; the text is otherwise the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UbootInterface {
    Mmc,
    Virtio,
}

impl UbootInterface {
    pub fn as_str(self) -> &'static str {
        match self {
            UbootInterface::Mmc => "mmc",
            UbootInterface::Virtio => "virtio",
        }
    }
}

/// `bootpart`: U-Boot's `device:partition` of the 1.x root (`1:2` on the BBB's eMMC, contract B2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootPart {
    pub device: u32,
    pub partition: u32,
}

impl fmt::Display for BootPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.device, self.partition)
    }
}

/// The boot counter's value now, before the stager's `reboot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootCount(pub u16);

/// The upper half of a stored counter word: v2015.07 `include/common.h`
/// `BOOTCOUNT_MAGIC 0xB001C041`; `bootcount_load()` gives 0 unless the word's upper 16 bits
/// match it, else the lower 16 bits (`drivers/bootcount/bootcount_davinci.c`, contract B6).
const BOOTCOUNT_MAGIC_HIGH: u32 = 0xB001;

impl BootCount {
    /// The count U-Boot would load from the counter word (already in host byte order; the
    /// AM33XX RTC word is stored big-endian, contract B5).
    pub fn from_counter_word(word: u32) -> BootCount {
        if word >> 16 == BOOTCOUNT_MAGIC_HIGH {
            BootCount((word & 0xffff) as u16)
        } else {
            BootCount(0)
        }
    }
}

/// Why no trial can be armed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrialError {
    #[error("the boot counter is at {0}, the top of its 16 bits: the next boot would not count to a value the trial can match; power the board off and on (the counter restarts at 1) and stage again")]
    CounterAtLimit(u16),
}

/// The counter value of the one boot that runs the trial: the one after the stager's reboot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrialCount(u32);

impl TrialCount {
    pub fn after(now: BootCount) -> Result<TrialCount, TrialError> {
        if now.0 == u16::MAX {
            return Err(TrialError::CounterAtLimit(now.0));
        }
        Ok(TrialCount(u32::from(now.0) + 1))
    }

    pub fn value(self) -> u32 {
        self.0
    }
}

/// The armed trial: boots the migration environment from `resin-boot` when the counter
/// equals `trial_count`, and 1.x otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialEnv {
    pub interface: UbootInterface,
    /// U-Boot's device number of the board's storage (`mmcdev`; 1 = eMMC on the BBB).
    pub mmcdev: u32,
    pub bootpart: BootPart,
    pub trial_count: TrialCount,
}

/// The committed migration: boots the migration environment on every boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitEnv {
    pub interface: UbootInterface,
    pub mmcdev: u32,
    pub bootpart: BootPart,
}

/// `resin-boot`, where the trial's files are.
const BOOT_PARTITION: u32 = 1;

/// Loads the trial's kernel, dtb and initramfs from `resin-boot` and boots them; any failed
/// load ends the command, and `mmcboot` goes on to boot 1.x.
fn swapover_boot(interface: UbootInterface, stage: &str) -> String {
    let from = format!("{} ${{mmcdev}}:{BOOT_PARTITION}", interface.as_str());
    format!(
        "swapover_boot=echo swapover: {stage} boot ${{bootcount}}; \
         if load {from} ${{loadaddr}} {TRIAL_KERNEL}; then \
         if load {from} ${{fdtaddr}} {TRIAL_DTB}; then \
         if load {from} ${{rdaddr}} {TRIAL_INITRAMFS}; then \
         setenv bootargs console=${{console}} panic=10 swapover.stage={stage}; \
         bootz ${{loadaddr}} ${{rdaddr}}:${{filesize}} ${{fdtaddr}}; fi; fi; fi"
    )
}

/// `mmcdev` and `bootpart` first (the 1.x file's own values, checked to agree), then the
/// 1.x file's other lines, then `swapover_lines`.
fn render(
    existing: &ExistingUenv,
    mmcdev: u32,
    bootpart: BootPart,
    swapover_lines: &[String],
) -> Result<String, UenvError> {
    let (mmcdev, bootpart) = (mmcdev.to_string(), bootpart.to_string());
    existing.agrees("mmcdev", &mmcdev)?;
    existing.agrees("bootpart", &bootpart)?;
    let mut text = format!("mmcdev={mmcdev}\nbootpart={bootpart}\n");
    for line in existing.lines_without(&["mmcdev", "bootpart"]) {
        text.push_str(line);
        text.push('\n');
    }
    for line in swapover_lines {
        text.push_str(line);
        text.push('\n');
    }
    Ok(text)
}

impl TrialEnv {
    /// The `uEnv.txt` that arms the trial on top of the board's 1.x `existing` one.
    pub fn render(&self, existing: &ExistingUenv) -> Result<String, UenvError> {
        let lines = [
            format!("swapover_trial={}", self.trial_count.value()),
            swapover_boot(self.interface, "trial"),
            "uenvcmd=if test ${bootcount} -eq ${swapover_trial}; then run swapover_boot; fi"
                .to_string(),
        ];
        render(existing, self.mmcdev, self.bootpart, &lines)
    }
}

impl CommitEnv {
    /// The `uEnv.txt` that makes every boot resume the migration, on top of the board's 1.x
    /// `existing` one (the copy the stager kept, not the armed file).
    pub fn render(&self, existing: &ExistingUenv) -> Result<String, UenvError> {
        let lines = [swapover_boot(self.interface, "resume"), "uenvcmd=run swapover_boot".into()];
        render(existing, self.mmcdev, self.bootpart, &lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bbb(trial: u16) -> TrialEnv {
        TrialEnv {
            interface: UbootInterface::Mmc,
            mmcdev: 1,
            bootpart: BootPart { device: 1, partition: 2 },
            trial_count: TrialCount::after(BootCount(trial - 1)).unwrap(),
        }
    }

    #[test]
    fn trial_text_is_the_contracts() {
        let existing = ExistingUenv::parse(b"mmcdev=1\nbootpart=1:2\n").unwrap();
        // docs/arm-1x-contract.md §2.3, byte for byte.
        let expected = "mmcdev=1
bootpart=1:2
swapover_trial=7
swapover_boot=echo swapover: trial boot ${bootcount}; if load mmc ${mmcdev}:1 ${loadaddr} swapover/zImage; then if load mmc ${mmcdev}:1 ${fdtaddr} swapover/board.dtb; then if load mmc ${mmcdev}:1 ${rdaddr} swapover/initramfs.img; then setenv bootargs console=${console} panic=10 swapover.stage=trial; bootz ${loadaddr} ${rdaddr}:${filesize} ${fdtaddr}; fi; fi; fi
uenvcmd=if test ${bootcount} -eq ${swapover_trial}; then run swapover_boot; fi
";
        assert_eq!(bbb(7).render(&existing).unwrap(), expected);
    }

    #[test]
    fn commit_text_boots_the_migrator_every_time() {
        let existing = ExistingUenv::parse(b"mmcdev=1\nbootpart=1:2\n").unwrap();
        let env = CommitEnv {
            interface: UbootInterface::Mmc,
            mmcdev: 1,
            bootpart: BootPart { device: 1, partition: 2 },
        };
        let text = env.render(&existing).unwrap();
        assert!(text.ends_with("\nuenvcmd=run swapover_boot\n"), "{text}");
        assert!(text.contains("swapover.stage=resume;"), "{text}");
        assert!(!text.contains("swapover_trial") && !text.contains("test "), "{text}");
    }

    #[test]
    fn uses_only_v2015_07_commands() {
        let text = bbb(2).render(&ExistingUenv::parse(b"").unwrap()).unwrap();
        assert!(!text.contains("setexpr"), "setexpr is not in the BBB build (contract B10)");
        assert!(text.contains("-eq ${swapover_trial}"), "equality, not a limit (contract §2.3)");
    }

    #[test]
    fn keeps_the_other_1x_lines_and_writes_the_interface() {
        let existing = ExistingUenv::parse(b"# resin\noptargs=quiet\r\nmmcdev=0\n").unwrap();
        let env = TrialEnv {
            interface: UbootInterface::Virtio,
            mmcdev: 0,
            bootpart: BootPart { device: 0, partition: 2 },
            ..bbb(2)
        };
        let text = env.render(&existing).unwrap();
        assert!(
            text.starts_with("mmcdev=0\nbootpart=0:2\n# resin\noptargs=quiet\nswapover_trial=2\n"),
            "{text}"
        );
        assert!(text.contains("load virtio ${mmcdev}:1 ${loadaddr} swapover/zImage"), "{text}");
        assert!(!text.contains("load mmc"), "{text}");
    }

    #[test]
    fn refuses_to_change_how_1x_boots() {
        let existing = ExistingUenv::parse(b"mmcdev=1\nbootpart=1:3\n").unwrap();
        assert_eq!(
            bbb(2).render(&existing).unwrap_err(),
            UenvError::Conflicting { name: "bootpart", found: "1:3".into(), wanted: "1:2".into() }
        );
    }

    #[test]
    fn trial_count_is_one_above_the_counter_and_refuses_at_the_top() {
        assert_eq!(TrialCount::after(BootCount(0)).unwrap().value(), 1);
        assert_eq!(TrialCount::after(BootCount(65534)).unwrap().value(), 65535);
        assert_eq!(
            TrialCount::after(BootCount(65535)).unwrap_err(),
            TrialError::CounterAtLimit(65535)
        );
    }

    #[test]
    fn counter_word_needs_the_magic() {
        assert_eq!(BootCount::from_counter_word(0xB001_0003), BootCount(3));
        assert_eq!(BootCount::from_counter_word(0x0000_0003), BootCount(0));
        assert_eq!(BootCount::from_counter_word(0xB002_0000), BootCount(0));
    }
}
