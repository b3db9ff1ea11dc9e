//! Reading the board's existing 1.x `uEnv.txt`: its lines are kept as they are, and a file
//! that already steers the boot (`uenvcmd`) or already carries swapover's variables is
//! refused, so that an armed or committed trial is never armed again on top of itself.

use crate::trial::BootPart;

/// Why an existing `uEnv.txt` cannot be the base of a trial.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UenvError {
    #[error("uEnv.txt is not text (UTF-8); restore the board's original uEnv.txt")]
    NotText,
    #[error("uEnv.txt line {line} already sets uenvcmd, so something else steers this board's boot; swapover will not replace it (restore the board's original uEnv.txt, or run `stager abort` if swapover armed it)")]
    HasUenvcmd { line: usize },
    #[error("uEnv.txt line {line} already sets the swapover variable `{name}`: a trial is armed or committed; run `stager abort` (or `status`) instead of staging again")]
    HasSwapoverVariable { line: usize, name: String },
    #[error("uEnv.txt sets `{name}={found}`, but the trial needs `{name}={wanted}` to boot the same 1.x system; refusing to change how 1.x boots")]
    Conflicting { name: &'static str, found: String, wanted: String },
}

/// Why a `uEnv.txt` does not say where the board boots from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    #[error("it sets no bootpart=DEVICE:PARTITION, so the storage the trial boots from is unknown; restore the board's original uEnv.txt (mmcdev=1, bootpart=1:2 on the eMMC)")]
    NoBootpart,
    #[error(
        "bootpart={0} is not DEVICE:PARTITION in decimal; restore the board's original uEnv.txt"
    )]
    BadBootpart(String),
    #[error("mmcdev={0} is not a number; restore the board's original uEnv.txt")]
    BadMmcdev(String),
}

/// A 1.x `uEnv.txt`, accepted as the base of a trial: its lines, without line endings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingUenv {
    lines: Vec<String>,
}

/// The variable a `uEnv.txt` line sets, as `env import -t` reads it (`#` lines and lines
/// without `=` set nothing).
pub(crate) fn variable_name(line: &str) -> Option<&str> {
    let line = line.trim_start();
    if line.starts_with('#') {
        return None;
    }
    line.split_once('=').map(|(name, _)| name.trim())
}

/// The value of the last line setting `name` (later lines win in `env import`).
fn value_of<'a>(lines: impl Iterator<Item = &'a str>, name: &str) -> Option<&'a str> {
    lines
        .filter(|l| variable_name(l) == Some(name))
        .filter_map(|l| l.split_once('=').map(|(_, v)| v.trim()))
        .last()
}

/// The value `env import -t` would give `name` from any `uEnv.txt` text (armed, committed or
/// not): the last line setting it wins.
pub fn imported_value<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    value_of(text.lines().map(|l| l.trim_end_matches('\r')), name)
}

impl ExistingUenv {
    /// Reads the bytes of the board's `uEnv.txt` (an absent file is the empty text).
    pub fn parse(bytes: &[u8]) -> Result<ExistingUenv, UenvError> {
        let text = std::str::from_utf8(bytes).map_err(|_| UenvError::NotText)?;
        let lines: Vec<String> =
            text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect();
        for (index, line) in lines.iter().enumerate() {
            match variable_name(line) {
                Some("uenvcmd") => return Err(UenvError::HasUenvcmd { line: index + 1 }),
                Some(name) if name.starts_with("swapover_") => {
                    return Err(UenvError::HasSwapoverVariable {
                        line: index + 1,
                        name: name.to_string(),
                    })
                }
                _ => {}
            }
        }
        Ok(ExistingUenv { lines })
    }

    /// `mmcdev` as the file sets it, if it does.
    pub fn mmcdev(&self) -> Option<&str> {
        value_of(self.lines.iter().map(String::as_str), "mmcdev")
    }

    /// `bootpart` as the file sets it, if it does.
    pub fn bootpart(&self) -> Option<&str> {
        value_of(self.lines.iter().map(String::as_str), "bootpart")
    }

    /// Where the board boots from: `bootpart` (`DEVICE:PARTITION`, decimal) and `mmcdev`
    /// (the device of `bootpart` where the file sets none).
    pub fn storage(&self) -> Result<(u32, BootPart), StorageError> {
        let bootpart = self.bootpart().ok_or(StorageError::NoBootpart)?;
        let number = |text: &str| text.trim().parse::<u32>().ok();
        let (device, partition) = bootpart
            .split_once(':')
            .and_then(|(d, p)| Some((number(d)?, number(p)?)))
            .ok_or_else(|| StorageError::BadBootpart(bootpart.to_string()))?;
        let mmcdev = match self.mmcdev() {
            None => device,
            Some(text) => number(text).ok_or_else(|| StorageError::BadMmcdev(text.to_string()))?,
        };
        Ok((mmcdev, BootPart { device, partition }))
    }

    /// The kept lines, minus those setting one of `names` (the trial writes those itself).
    pub(crate) fn lines_without<'a>(
        &'a self,
        names: &'a [&str],
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.lines
            .iter()
            .filter(move |l| variable_name(l).is_none_or(|n| !names.contains(&n)))
            .map(String::as_str)
    }

    /// Refuses when the file sets `name` to something else than `wanted`.
    pub(crate) fn agrees(&self, name: &'static str, wanted: &str) -> Result<(), UenvError> {
        match value_of(self.lines.iter().map(String::as_str), name) {
            Some(found) if found != wanted => Err(UenvError::Conflicting {
                name,
                found: found.to_string(),
                wanted: wanted.to_string(),
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_internal_flasher_file() {
        // balena-beaglebone 1.X recipes-bsp/u-boot/u-boot-ti-staging/uEnv.txt_internal.
        let env = ExistingUenv::parse(b"mmcdev=1\nbootpart=1:2\n").unwrap();
        assert_eq!(env.mmcdev(), Some("1"));
        assert_eq!(env.bootpart(), Some("1:2"));
    }

    #[test]
    fn refuses_a_file_with_uenvcmd() {
        let err = ExistingUenv::parse(b"mmcdev=1\nuenvcmd=run something\n").unwrap_err();
        assert_eq!(err, UenvError::HasUenvcmd { line: 2 });
    }

    #[test]
    fn refuses_a_file_already_armed() {
        let err = ExistingUenv::parse(b"mmcdev=1\r\nswapover_trial=3\r\n").unwrap_err();
        assert_eq!(err, UenvError::HasSwapoverVariable { line: 2, name: "swapover_trial".into() });
    }

    #[test]
    fn comments_set_nothing() {
        let env =
            ExistingUenv::parse(b"#uenvcmd=run x\n# swapover_trial=2\noptargs=quiet\n").unwrap();
        assert_eq!(env.mmcdev(), None);
    }

    #[test]
    fn refuses_bytes_that_are_not_text() {
        assert_eq!(ExistingUenv::parse(&[0xff, 0xfe]).unwrap_err(), UenvError::NotText);
    }

    #[test]
    fn the_last_line_wins_as_in_env_import() {
        let env = ExistingUenv::parse(b"bootpart=1:2\nbootpart=1:3\n").unwrap();
        assert_eq!(env.bootpart(), Some("1:3"));
    }
}

#[cfg(test)]
mod storage_tests {
    use super::*;

    fn storage(text: &str) -> Result<(u32, BootPart), StorageError> {
        ExistingUenv::parse(text.as_bytes()).unwrap().storage()
    }

    #[test]
    fn the_storage_is_bootpart_with_mmcdev_defaulting_to_its_device() {
        assert_eq!(
            storage("mmcdev=1\nbootpart=1:2\n"),
            Ok((1, BootPart { device: 1, partition: 2 }))
        );
        assert_eq!(storage("bootpart=0:3\n"), Ok((0, BootPart { device: 0, partition: 3 })));
        assert_eq!(storage("mmcdev=1\n"), Err(StorageError::NoBootpart));
        assert_eq!(storage("bootpart=1\n"), Err(StorageError::BadBootpart("1".into())));
        assert_eq!(storage("mmcdev=x\nbootpart=1:2\n"), Err(StorageError::BadMmcdev("x".into())));
    }

    #[test]
    fn the_imported_value_is_the_last_line_setting_it() {
        let text = "# swapover_boot=commented\r\nswapover_boot=a\nswapover_boot=b\r\n";
        assert_eq!(imported_value(text, "swapover_boot"), Some("b"));
        assert_eq!(imported_value("# swapover_boot=x\n", "swapover_boot"), None);
    }
}
