//! Reading the board's existing 1.x `uEnv.txt`: its lines are kept as they are, and a file
//! that already steers the boot (`uenvcmd`) or already carries swapover's variables is
//! refused, so that an armed or committed trial is never armed again on top of itself.

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
fn value_of<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines
        .iter()
        .filter(|l| variable_name(l) == Some(name))
        .filter_map(|l| l.split_once('=').map(|(_, v)| v.trim()))
        .next_back()
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
        value_of(&self.lines, "mmcdev")
    }

    /// `bootpart` as the file sets it, if it does.
    pub fn bootpart(&self) -> Option<&str> {
        value_of(&self.lines, "bootpart")
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
        match value_of(&self.lines, name) {
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
