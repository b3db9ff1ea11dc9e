//! Pointing an ARM board's boot files at the migration environment, and undoing it.
//!
//! Pure text edits on the files' bytes, chosen by the profile's `bootloader_config_files`:
//!
//! `config.txt` (Raspberry Pi GPU firmware; raspberrypi.org documentation,
//! configuration/config-txt/boot.md and conditional.md):
//! - `kernel=FILE` names the kernel file on the boot partition; `cmdline=FILE` names the file
//!   the kernel command line is read from (default `cmdline.txt`);
//! - `initramfs FILE followkernel` loads FILE right after the kernel in memory; unlike the
//!   other settings it takes no `=`;
//! - lines starting with `#` are comments; `[pi3]`-style filters apply to the lines after
//!   them until the next filter, and `[all]` ends every filter — so the block added here
//!   starts with `[all]` and wins wherever the file ended.
//!
//! `uEnv.txt` (BeagleBone U-Boot) is not edited here: the board's U-Boot trial replaces it
//! whole with `uboot_env`'s text ([`super::uboot_trial`]).
//!
//! Every edit comments out the lines it overrides with [`DISABLED`] and appends one block
//! between [`BEGIN`] and [`END`]; [`revert`] gives back the original bytes exactly (line
//! endings, a missing final newline and all), and the original is also kept as a byte copy
//! next to the file ([`backup_name`]) for the migrator or `stager abort`.

use std::io::{Read, Seek, Write};

/// Prefix of a line the edit turned into a comment.
pub const DISABLED: &str = "#swapover-disabled# ";
/// First line of the added block.
pub const BEGIN: &str =
    "# swapover-begin: boot the migration environment once; undone by restoring the original";
/// The same, when the original's last line had no newline (so that the undo drops it again).
pub const BEGIN_NO_FINAL_NEWLINE: &str =
    "# swapover-begin: boot the migration environment once; undone by restoring the original (no final newline)";
/// Last line of the added block.
pub const END: &str = "# swapover-end";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EditError {
    #[error("{file} already carries a swapover edit; run `stager abort` (or restore {file}.swapover-orig) first")]
    AlreadyEdited { file: String },
    #[error("{file} is not text (UTF-8); restore the board's original {file}")]
    NotText { file: String },
    #[error("{file} was not edited by swapover (no complete swapover block); nothing to undo")]
    NotEdited { file: String },
    #[error("{file} on the boot partition: {problem}")]
    Fat { file: String, problem: String },
}

/// What a boot file needs done, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditKind {
    /// Raspberry Pi `config.txt`.
    ConfigTxt,
    /// BeagleBone `uEnv.txt`: replaced by the U-Boot trial ([`super::uboot_trial`]), not edited.
    UbootTrial,
    /// Read by the bootloader but left alone (`cmdline.txt`: config.txt points at our own file).
    Kept,
    /// Needs an edit this stager does not make yet (`EFI/BOOT/grub.cfg` of 1.x Intel NUC).
    Unsupported,
}

impl EditKind {
    pub fn of(file: &str) -> EditKind {
        match file.rsplit('/').next().unwrap_or(file) {
            "config.txt" => EditKind::ConfigTxt,
            "uEnv.txt" => EditKind::UbootTrial,
            "cmdline.txt" | "resinOS_uEnv.txt" => EditKind::Kept,
            _ => EditKind::Unsupported,
        }
    }
}

/// Where the migration environment is and how it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationBoot {
    /// Kernel file on the boot partition.
    pub kernel: String,
    pub initramfs: String,
    /// config.txt: the command-line file written next to the kernel on the boot partition.
    pub cmdline_file: String,
    /// Kernel arguments.
    pub args: Vec<String>,
}

/// Name of the byte copy of the original, next to it.
pub fn backup_name(file: &str) -> String {
    format!("{file}.swapover-orig")
}

/// Lines with their terminators kept (`\n`, or `\r\n` as part of the line), so that joining
/// them gives the input back.
fn lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

fn as_text<'a>(file: &str, bytes: &'a [u8]) -> Result<&'a str, EditError> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| EditError::NotText { file: file.to_string() })?;
    if text.contains(BEGIN) || text.contains(DISABLED) {
        return Err(EditError::AlreadyEdited { file: file.to_string() });
    }
    Ok(text)
}

/// Comments out the lines `overrides` says are replaced, then appends `block`.
fn edit(text: &str, overrides: impl Fn(&str) -> bool, block: &[String]) -> Vec<u8> {
    let mut out = String::with_capacity(text.len() + 512);
    for line in lines(text) {
        if overrides(line.trim_start()) {
            out.push_str(DISABLED);
        }
        out.push_str(line);
    }
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let no_final_newline = !text.is_empty() && !text.ends_with('\n');
    if no_final_newline {
        out.push_str(newline);
    }
    out.push_str(if no_final_newline { BEGIN_NO_FINAL_NEWLINE } else { BEGIN });
    out.push_str(newline);
    for line in block {
        out.push_str(line);
        out.push_str(newline);
    }
    out.push_str(END);
    out.push_str(newline);
    out.into_bytes()
}

/// config.txt booting `boot.kernel` with `boot.initramfs` and `boot.cmdline_file`.
pub fn edit_config_txt(original: &[u8], boot: &MigrationBoot) -> Result<Vec<u8>, EditError> {
    let text = as_text("config.txt", original)?;
    let overrides = |line: &str| {
        let key = line.split(['=', ' ', '\t']).next().unwrap_or("");
        matches!(
            key,
            "kernel" | "initramfs" | "cmdline" | "ramfsfile" | "ramfsaddr" | "initramfs_addr"
        )
    };
    let block = vec![
        "[all]".to_string(),
        format!("kernel={}", boot.kernel),
        format!("initramfs {} followkernel", boot.initramfs),
        format!("cmdline={}", boot.cmdline_file),
    ];
    Ok(edit(text, overrides, &block))
}

/// The command-line file config.txt points at: one line, as the firmware reads it.
pub fn cmdline_txt(boot: &MigrationBoot) -> Vec<u8> {
    format!("{}\n", boot.args.join(" ")).into_bytes()
}

/// The original bytes of a file edited by [`edit_config_txt`].
pub fn revert(file: &str, edited: &[u8]) -> Result<Vec<u8>, EditError> {
    let not_edited = || EditError::NotEdited { file: file.to_string() };
    let text = std::str::from_utf8(edited).map_err(|_| not_edited())?;
    let all = lines(text);
    let begin = all
        .iter()
        .rposition(|l| l.trim_end() == BEGIN || l.trim_end() == BEGIN_NO_FINAL_NEWLINE)
        .ok_or_else(not_edited)?;
    if !all[begin..].iter().any(|l| l.trim_end() == END) {
        return Err(not_edited());
    }
    let mut out = String::with_capacity(text.len());
    for line in &all[..begin] {
        out.push_str(line.strip_prefix(DISABLED).unwrap_or(line));
    }
    if all[begin].trim_end() == BEGIN_NO_FINAL_NEWLINE {
        let trimmed = out.strip_suffix("\r\n").or_else(|| out.strip_suffix('\n')).map(str::len);
        if let Some(len) = trimmed {
            out.truncate(len);
        }
    }
    Ok(out.into_bytes())
}

/// What one [`apply_on_fat`] did, for the plan and the undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub file: String,
    /// The bytes before (`None`: the file did not exist and was created).
    pub original: Option<Vec<u8>>,
    pub edited: Vec<u8>,
}

fn fat_error(file: &str, e: impl std::fmt::Display) -> EditError {
    EditError::Fat { file: file.to_string(), problem: e.to_string() }
}

fn read_fat_file<T: Read + Write + Seek>(
    fs: &fatfs::FileSystem<T>,
    file: &str,
) -> Result<Option<Vec<u8>>, EditError> {
    match fs.root_dir().open_file(file) {
        Ok(mut f) => {
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).map_err(|e| fat_error(file, e))?;
            Ok(Some(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(fat_error(file, e)),
    }
}

fn write_fat_file<T: Read + Write + Seek>(
    fs: &fatfs::FileSystem<T>,
    file: &str,
    bytes: &[u8],
) -> Result<(), EditError> {
    let mut f = fs.root_dir().create_file(file).map_err(|e| fat_error(file, e))?;
    f.truncate().map_err(|e| fat_error(file, e))?;
    f.write_all(bytes).map_err(|e| fat_error(file, e))?;
    f.flush().map_err(|e| fat_error(file, e))
}

/// The edit a file gets, from its original bytes.
pub fn edited_bytes(
    file: &str,
    original: &[u8],
    boot: &MigrationBoot,
) -> Result<Option<Vec<u8>>, EditError> {
    match EditKind::of(file) {
        EditKind::ConfigTxt => edit_config_txt(original, boot).map(Some),
        EditKind::UbootTrial | EditKind::Kept | EditKind::Unsupported => Ok(None),
    }
}

/// Edits `file` on the FAT file system in `storage` (a boot partition or its image): the
/// original is first copied byte for byte to [`backup_name`], then the file is rewritten.
/// A missing `config.txt` is created (its undo removes it).
pub fn apply_on_fat<T: Read + Write + Seek>(
    storage: T,
    file: &str,
    boot: &MigrationBoot,
) -> Result<Applied, EditError> {
    let fs =
        fatfs::FileSystem::new(storage, fatfs::FsOptions::new()).map_err(|e| fat_error(file, e))?;
    let original = read_fat_file(&fs, file)?;
    let edited = match edited_bytes(file, original.as_deref().unwrap_or_default(), boot)? {
        Some(edited) => edited,
        None => return Err(fat_error(file, "this file is not edited by swapover")),
    };
    if let Some(original) = &original {
        write_fat_file(&fs, &backup_name(file), original)?;
    }
    write_fat_file(&fs, file, &edited)?;
    fs.unmount().map_err(|e| fat_error(file, e))?;
    Ok(Applied { file: file.to_string(), original, edited })
}

/// Undoes [`apply_on_fat`]: the byte copy goes back over the file (and is removed); a file
/// that was created is removed.
pub fn undo_on_fat<T: Read + Write + Seek>(storage: T, file: &str) -> Result<(), EditError> {
    let fs =
        fatfs::FileSystem::new(storage, fatfs::FsOptions::new()).map_err(|e| fat_error(file, e))?;
    let backup = backup_name(file);
    match read_fat_file(&fs, &backup)? {
        Some(original) => {
            write_fat_file(&fs, file, &original)?;
            fs.root_dir().remove(&backup).map_err(|e| fat_error(file, e))?;
        }
        None => {
            let current = read_fat_file(&fs, file)?
                .ok_or_else(|| EditError::NotEdited { file: file.to_string() })?;
            // Created by the edit: nothing but our block; refuse to remove anything else.
            if !revert(file, &current)?.is_empty() {
                return Err(EditError::NotEdited { file: file.to_string() });
            }
            fs.root_dir().remove(file).map_err(|e| fat_error(file, e))?;
        }
    }
    fs.unmount().map_err(|e| fat_error(file, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot() -> MigrationBoot {
        MigrationBoot {
            kernel: "swapover/vmlinuz".into(),
            initramfs: "swapover/initramfs.img".into(),
            cmdline_file: "swapover/cmdline.txt".into(),
            args: vec!["console=tty1".into(), "swapover.migrate=1".into()],
        }
    }

    #[test]
    fn config_txt_edit_comments_out_overrides_and_reverts_byte_exact() {
        let original = b"# resinOS\r\ngpu_mem=16\r\n[pi3]\r\nkernel=kernel7.img\r\ninitramfs old.img followkernel\r\nkernel_address=0x8000";
        let edited = edit_config_txt(original, &boot()).unwrap();
        let text = String::from_utf8(edited.clone()).unwrap();
        assert!(text.contains("#swapover-disabled# kernel=kernel7.img\r\n"), "{text}");
        assert!(text.contains("#swapover-disabled# initramfs old.img"), "{text}");
        assert!(
            text.contains("kernel_address=0x8000\r\n# swapover-begin"),
            "kernel_address is not kernel: {text}"
        );
        assert!(text.ends_with("[all]\r\nkernel=swapover/vmlinuz\r\ninitramfs swapover/initramfs.img followkernel\r\ncmdline=swapover/cmdline.txt\r\n# swapover-end\r\n"), "{text}");
        assert_eq!(revert("config.txt", &edited).unwrap(), original.to_vec());
        assert_eq!(
            edit_config_txt(&edited, &boot()),
            Err(EditError::AlreadyEdited { file: "config.txt".into() })
        );
    }

    #[test]
    fn an_empty_or_missing_config_txt_reverts_to_empty() {
        let edited = edit_config_txt(b"", &boot()).unwrap();
        assert!(String::from_utf8_lossy(&edited).starts_with(BEGIN));
        assert_eq!(revert("config.txt", &edited).unwrap(), Vec::<u8>::new());
        assert_eq!(
            revert("config.txt", b"gpu_mem=16\n"),
            Err(EditError::NotEdited { file: "config.txt".into() })
        );
    }

    #[test]
    fn kinds_follow_the_file_name() {
        assert_eq!(EditKind::of("config.txt"), EditKind::ConfigTxt);
        assert_eq!(EditKind::of("uEnv.txt"), EditKind::UbootTrial);
        assert_eq!(EditKind::of("cmdline.txt"), EditKind::Kept);
        assert_eq!(EditKind::of("EFI/BOOT/grub.cfg"), EditKind::Unsupported);
    }
}
